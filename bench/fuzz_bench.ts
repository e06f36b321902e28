/**
 * Plugin overhead and fuzzer throughput.
 *   deno run -A bench/fuzz_bench.ts [--seconds S]
 * 1. A device-op loop (UART scratch register + RTC index/data, 200k accesses per round) with no plugin,
 *    with an empty plugin loaded (no hooks: dispatch stays the unhooked function), and with a plugin
 *    hooking an unrelated port (the hooked dispatch path). Interleaved rounds, medians.
 * 2. Fuzzer: execs/s and V8 blocks of devices/ reached in S seconds (default 20) with "v8" and
 *    "state" feedback, same seed.
 * @module
 */
import { PluginManager } from "../plugins/loader.ts";
import { buildFuzzMachine, resetFuzzMachine } from "../plugins/fuzz/machine.ts";
import { restoreFuzzSnapshot, takeFuzzSnapshot } from "../plugins/fuzz/snapshot.ts";
import { Fuzzer } from "../plugins/fuzz/engine.ts";
import type { Plugin } from "../plugins/api.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser
import { fuzzParallel } from "../shell/fuzz_par.ts";

const args = Deno.args;
const si = args.indexOf("--seconds");
const seconds = si >= 0 ? Number(args[si + 1]) : 20;

type Io = { read(a: number, s: 1 | 2 | 4): number; write(a: number, s: 1 | 2 | 4, v: number): void };
const LOOP_BODY = `let x = 0;
for (let i = 0; i < 50000; i++) {
  io.write(0x3ff, 1, i & 0xff);
  x += io.read(0x3ff, 1);
  io.write(0x70, 1, 0x0e + (i & 0x1f));
  x += io.read(0x71, 1);
}
return x;`;

/** An independent copy of the loop (own JIT feedback), so variants cannot disturb each other's call sites. */
function makeLoop(): (io: Io) => number {
  return new Function("io", LOOP_BODY) as (io: Io) => number;
}

/**
 * Three machines (no plugin, an empty plugin, a plugin hooking an unrelated port), each with its own copy
 * of the loop; rounds interleaved so host noise hits all alike. Returns median ms of each.
 */
async function opLoops(
  rounds: number,
): Promise<{ none: number; empty: number; hooked: number; sameFn: boolean }> {
  const empty: Plugin = { name: "empty", description: "", args: {}, setup() {} };
  const hooked: Plugin = {
    name: "hooked",
    description: "",
    args: {},
    setup: (ctx) => void ctx.onIo({ ranges: [{ addr: 0x600, size: 1 }] }, () => {}),
  };
  const kinds = ["none", "empty", "hooked"] as const;
  const vms = kinds.map(() => buildFuzzMachine());
  const plain = vms[1].vm.io.read;
  await new PluginManager(vms[1].vm).load(empty);
  await new PluginManager(vms[2].vm).load(hooked);
  const sameFn = vms[1].vm.io.read === plain;
  const loops = kinds.map(() => makeLoop());
  const t: number[][] = [[], [], []];
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      loops[k](vms[k].vm.io);
      t[k].push(performance.now() - t0);
    }
  }
  const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
  return { none: med(t[0]), empty: med(t[1]), hooked: med(t[2]), sameFn };
}

const m = await opLoops(41);
const base = m.none;
const pct = (x: number) => `${((x / base - 1) * 100).toFixed(1)}%`;
console.log("device-op loop, 200k accesses (median of 41 interleaved rounds):");
console.log(`  no plugin              ${base.toFixed(2)} ms`);
console.log(
  `  empty plugin loaded    ${m.empty.toFixed(2)} ms  (${
    pct(m.empty)
  }; dispatch function unchanged: ${m.sameFn})`,
);
console.log(`  hook on unrelated port ${m.hooked.toFixed(2)} ms  (${pct(m.hooked)})`);

// Reset cost alone: the same 32-op inputs (UART, RTC, PIT, PIC ports, virtio-mmio registers, clock steps),
// each on a machine reset by system_reset or from the in-memory snapshot; no coverage, no invariant checks.
{
  const fm = buildFuzzMachine();
  const snap = takeFuzzSnapshot(fm);
  const ports = [0x20, 0x21, 0x40, 0x43, 0x70, 0x71, 0x3f8, 0x3f9, 0x3fb, 0x3fc];
  let seed = 1;
  const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const inputs = Array.from({ length: 256 }, () =>
    Array.from({ length: 32 }, () => {
      const k = rnd(10);
      return k < 6
        ? { kind: 0, a: ports[rnd(ports.length)], v: rnd(256) }
        : k < 9
        ? { kind: 1, a: 0xfeb00000 + rnd(8) * 0x200 + rnd(0x80) * 4, v: rnd(16) }
        : { kind: 2, a: 0, v: rnd(100000) };
    }));
  const run = (reset: () => void, rounds: number) => {
    const t0 = performance.now();
    let ops = 0;
    for (let r = 0; r < rounds; r++) {
      for (const inp of inputs) {
        reset();
        for (const o of inp) {
          if (o.kind === 0) fm.vm.io.write(o.a, 1, o.v);
          else if (o.kind === 1) fm.vm.memory.write(o.a, 4, o.v);
          else fm.clock.step(o.v);
          ops++;
        }
      }
    }
    return ops / ((performance.now() - t0) / 1000);
  };
  run(() => resetFuzzMachine(fm), 1);
  run(() => restoreFuzzSnapshot(fm, snap), 1);
  const sys = run(() => resetFuzzMachine(fm), 4);
  const snp = run(() => restoreFuzzSnapshot(fm, snap), 4);
  console.log(`\nreset + 32 device ops per input, no coverage (one core):`);
  console.log(`  system_reset        ${sys.toFixed(0).padStart(8)} device ops/s`);
  console.log(
    `  in-memory snapshot  ${snp.toFixed(0).padStart(8)} device ops/s  (${(snp / sys).toFixed(1)}x)`,
  );
}

console.log(`\nfuzzer, all targets, seed 1, ${seconds} s each (reset: in-memory snapshot vs system_reset):`);
for (const coverage of ["v8", "state"] as const) {
  for (const reset of ["snapshot", "system"] as const) {
    const r = await new Fuzzer({ targets: [], seed: 1, timeSec: seconds, coverage, reset }).run();
    const ops = r.devices.reduce((n, d) => n + d.ops, 0);
    const s = r.elapsedMs / 1000;
    console.log(
      `  ${coverage.padEnd(5)} ${reset.padEnd(8)} ${(r.execs / s).toFixed(0).padStart(6)} execs/s ` +
        `${(ops / s).toFixed(0).padStart(8)} device ops/s  ${
          String(r.v8.blocks).padStart(5)
        } V8 blocks  corpus ${r.corpus.length}  findings ${r.findings.length}`,
    );
  }
}

const jobs = Math.max(1, navigator.hardwareConcurrency || 1);
console.log(`\nfuzz --jobs ${jobs} (Web Workers, shared corpus), all targets, seed 1, ${seconds} s:`);
for (const coverage of ["v8", "state"] as const) {
  const r = await fuzzParallel(
    { targets: [], seed: 1, timeSec: seconds, coverage, maxOps: 96, hangMs: 1000, fresh: false, seeds: [] },
    jobs,
  );
  const ops = r.devices.reduce((n, d) => n + d.ops, 0);
  const s = r.elapsedMs / 1000;
  console.log(
    `  ${coverage.padEnd(5)} ${(r.execs / s).toFixed(0).padStart(6)} execs/s ${
      (ops / s).toFixed(0).padStart(8)
    } device ops/s (${
      (ops / s / jobs).toFixed(0)
    } per worker)  ${r.coverage} features  corpus ${r.corpus.length}` +
      `  imported ${r.imported} (kept ${r.importedKept})  findings ${r.findings.length}`,
  );
}
