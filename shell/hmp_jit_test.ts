import assert from "node:assert/strict";
import { makeFakeMachine } from "./_fake_machine_test_util.ts";
import { HmpSession } from "./hmp.ts";
import { formatJitInfo } from "../core/cpu/jit_info.ts";
import type { JitStats } from "../core/cpu/jit.ts";

Deno.test("info jit prints the machine's JIT report, or QEMU's line when there is none", () => {
  const m = makeFakeMachine();
  assert.equal(new HmpSession(m).execute("info jit"), "JIT information is only available with accel=tcg\n");
  const stats: JitStats = {
    blocks: 10,
    translated: 12,
    codeBytes: 12000,
    guestBytes: 240,
    invalidatedBlocks: 2,
    invalidatedPages: 1,
    flushes: 0,
    compileMs: 6,
    jitInsns: 900,
    failed: 3,
  };
  const text = formatJitInfo(stats, 1000, true);
  const withJit = Object.assign(m, { infoJit: () => text });
  const out = new HmpSession(withJit).execute("info jit");
  assert.match(out, /^Translation buffer state:\n/);
  assert.match(out, /TB count {12}10\n/);
  assert.match(out, /TB avg target size {2}20 bytes/);
  assert.match(out, /expansion ratio: 50\.0/);
  assert.match(out, /compile time {8}6\.0 ms \(500 us per TB\)/);
  assert.match(out, /TB invalidate count 2 \(1 code pages written\)/);
  assert.match(out, /insns in JIT code {3}900 \(90\.0%\)/);
});
