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
import { buildFuzzMachine } from "../plugins/fuzz/machine.ts";
import { Fuzzer } from "../plugins/fuzz/engine.ts";
import type { Plugin } from "../plugins/api.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

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

console.log(`\nfuzzer, all targets, seed 1, ${seconds} s each:`);
for (const coverage of ["v8", "state"] as const) {
  const r = await new Fuzzer({ targets: [], seed: 1, timeSec: seconds, coverage }).run();
  console.log(
    `  ${coverage.padEnd(5)} ${(r.execs / (r.elapsedMs / 1000)).toFixed(0).padStart(5)} execs/s  ` +
      `${
        String(r.v8.blocks).padStart(5)
      } V8 blocks  corpus ${r.corpus.length}  findings ${r.findings.length}`,
  );
}
