import assert from "node:assert/strict";
import { MemoryRegion } from "../../core/region.ts";
import { Fuzzer } from "./engine.ts";
import { minimize } from "./minimize.ts";
import { findingKey, replayOps, runOps } from "./exec.ts";
import type { Op } from "./input.ts";
import { buildFuzzMachine, type FuzzMachine, guardReads } from "./machine.ts";
import { selectTargets } from "./gen.ts";
import "../../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

/** A deliberately buggy port at 0x80: throws when 0xff is written after 0x01 was. */
function buggy(fm: FuzzMachine): void {
  let armed = false;
  fm.vm.ioRoot.addSubregion(
    0x80,
    MemoryRegion.io("buggy", 1, {
      read: () => 0,
      write: (_o, _s, v) => {
        if (armed && v === 0xff) throw new RangeError("index out of range");
        armed = v === 0x01;
      },
    }, { owner: "buggy0" }),
  );
}

/** A fake host clock: 1 ms per call, so runs are deterministic. */
function fakeNow(): () => number {
  let t = 0;
  return () => t++;
}

Deno.test("Fuzzer finds a device exception and minimizes it to the two ops that matter", async () => {
  const r = await new Fuzzer({
    targets: ["buggy0"],
    seed: 3,
    runs: 400,
    coverage: "state",
    prepare: buggy,
    now: fakeNow(),
  }).run();
  assert.equal(r.findings.length, 1);
  const f = r.findings[0];
  assert.equal(f.finding.kind, "crash");
  assert.equal(f.finding.device, "buggy0");
  assert.match(f.finding.message, /^write I\/O 0x80 size 1: RangeError: index out of range/);
  assert.equal(f.ops.length, 2);
  // Any width arms it (the region takes 1..4 bytes); which one depends on the path the seed takes.
  assert.deepEqual({ ...f.ops[0], size: 1 }, { op: "out", size: 1, addr: 0x80, value: 1 });
  assert.equal(f.ops[1].op === "out" && (f.ops[1].value & 0xff), 0xff);
});

Deno.test("Fuzzer is deterministic for a seed (same execs, coverage and corpus)", async () => {
  const run = () =>
    new Fuzzer({ targets: ["rtc", "serial0"], seed: 9, runs: 60, coverage: "state", now: fakeNow() }).run();
  const a = await run();
  const b = await run();
  assert.equal(a.execs, 60);
  assert.equal(a.coverage, b.coverage);
  assert.deepEqual(a.corpus, b.corpus);
  assert.ok(a.coverage > 10);
});

Deno.test("Fuzzer v8 feedback counts V8 blocks of devices/ as coverage", async () => {
  const r = await new Fuzzer({ targets: ["pic"], seed: 1, runs: 30, coverage: "v8", now: fakeNow() }).run();
  assert.ok(r.coverage > 5, `coverage ${r.coverage}`);
  assert.equal(r.coverage, r.v8.blocks);
  assert.ok(r.v8.perFile().some((f) => f.file === "devices/i8259.ts" && f.blocks > 0));
});

Deno.test("minimize drops ops that do not matter and keeps the finding", async () => {
  const ops: Op[] = [
    { op: "out", size: 1, addr: 0x70, value: 0x0b },
    { op: "out", size: 1, addr: 0x80, value: 0x01 },
    { op: "step", ns: 1000 },
    { op: "out", size: 1, addr: 0x80, value: 0xff },
  ];
  const found = replayOps(ops, undefined, { prepare: buggy });
  assert.equal(found.length, 1);
  const min = await minimize(ops, findingKey(found[0]), { prepare: buggy });
  assert.deepEqual(min, [ops[1], ops[3]]);
});

Deno.test("selectTargets resolves device ids, region names, virtio types and refuses unknown names", () => {
  const fm = buildFuzzMachine();
  assert.deepEqual(selectTargets(fm, ["virtio-blk"]).map((t) => t.device), ["virtio-mmio@feb00e00"]);
  assert.equal(selectTargets(fm, ["virtio-mmio"]).length, 8);
  assert.deepEqual(selectTargets(fm, ["rtc"]).map((t) => t.region).sort(), ["rtc", "rtc-index"]);
  assert.ok(selectTargets(fm, ["all"]).length >= 16);
  assert.throws(() => selectTargets(fm, ["nosuch"]), /Unknown fuzz target "nosuch"/);
});

Deno.test("runOps reports a broken read invariant (a handler returning NaN)", () => {
  const fm = buildFuzzMachine();
  const regs = [1, 2];
  fm.vm.ioRoot.addSubregion(
    0x90,
    MemoryRegion.io("nan", 4, { read: (o) => regs[o], write: () => {} }, { owner: "nan0" }),
  );
  guardReads(fm);
  assert.deepEqual(runOps(fm, [{ op: "in", size: 1, addr: 0x91 }]), []);
  const found = runOps(fm, [{ op: "in", size: 1, addr: 0x93 }]);
  assert.equal(found.length, 1);
  assert.equal(found[0].kind, "invariant");
  assert.equal(found[0].device, "nan0");
  assert.match(found[0].message, /read of nan\+0x3 size 1 returned undefined, not a uint32/);
});

Deno.test("runOps reports a device whose loadState refuses its own saveState", () => {
  const fm = buildFuzzMachine();
  let n = 0;
  fm.vm.devices.push({
    id: "flaky0",
    typeName: "flaky",
    reset() {},
    saveState: () => ({ version: 1, n }),
    loadState(s) {
      if ((s.n as number) > 2) throw new Error(`bad n ${s.n}`);
    },
  });
  assert.deepEqual(runOps(fm, [{ op: "step", ns: 1 }]), []);
  n = 3;
  const found = runOps(fm, [{ op: "step", ns: 1 }]);
  assert.equal(found.length, 1);
  assert.deepEqual([found[0].kind, found[0].device], ["invariant", "flaky0"]);
  assert.match(found[0].message, /loadState refuses its own saveState\(\): bad n 3/);
});
