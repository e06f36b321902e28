import assert from "node:assert/strict";
import fc from "fast-check";
import { StateError } from "../types.ts";
import { decodeValue, encodeValue } from "../snapshot/codec.ts";
import { CPU_STATE_SKIP, loadCpuState, saveCpuState } from "./state.ts";
import { CODE, longModeCpu } from "./_testcpu.ts";

Deno.test("saveCpuState covers every own field of Cpu that is not listed as a cache", () => {
  const { c } = longModeCpu();
  const saved = saveCpuState(c).fields;
  for (const k of Object.keys(c)) {
    const v = (c as unknown as Record<string, unknown>)[k];
    if (typeof v === "function") continue;
    assert.ok(k in saved || CPU_STATE_SKIP.has(k), `Cpu field "${k}" is neither saved nor in CPU_STATE_SKIP`);
  }
  for (const k of ["r", "rip", "xmm", "fpr", "fpuCw", "mxcsr", "segBase", "cr3", "efer", "star", "mtrr"]) {
    assert.ok(k in saved, k);
  }
});

Deno.test("vCPU state survives a stream round trip into another vCPU, which then runs identically", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer(), { minLength: 32, maxLength: 32 }),
      fc.array(fc.integer(), { minLength: 64, maxLength: 64 }),
      (gpr, xmm) => {
        const a = longModeCpu(), b = longModeCpu();
        a.c.r.set(gpr);
        a.c.xmm.set(xmm);
        a.c.star = 0x1234_5678_9abc_def0n;
        a.c.mtrr.set(0x200, 6n);
        a.c.fpuSw = 0x3800;
        a.c.rip = CODE;
        // add rax, rbx; shl rcx, 3 ; both vCPUs run the same code from the restored state
        const code = new Uint8Array([0x48, 0x01, 0xd8, 0x48, 0xc1, 0xe1, 0x03]);
        a.ram.write(CODE, code);
        b.ram.write(CODE, code);
        const rec = decodeValue(encodeValue(saveCpuState(a.c)));
        loadCpuState(b.c, rec);
        assert.deepEqual(saveCpuState(b.c), saveCpuState(a.c));
        a.it.step();
        a.it.step();
        b.it.step();
        b.it.step();
        assert.deepEqual([...b.c.r], [...a.c.r]);
        assert.equal(b.c.getFlags(), a.c.getFlags());
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("loadCpuState refuses unknown, missing and mis-sized fields and leaves the vCPU untouched", () => {
  const { c } = longModeCpu();
  c.r[0] = 42;
  const good = saveCpuState(c);
  const before = encodeValue(saveCpuState(c));
  const cases: [string, (f: Record<string, unknown>) => void, RegExp][] = [
    ["unknown", (f) => (f.bogus = 1), /unknown field "bogus"/],
    ["missing", (f) => delete f.rip, /missing field "rip"/],
    ["mis-sized", (f) => (f.xmm = new Int32Array(8)), /"xmm" has 8 elements, expected 64/],
    ["wrong type", (f) => (f.cr3 = "0"), /"cr3" must be a number/],
    ["wrong array type", (f) => (f.r = new Float64Array(32)), /"r" must be a Int32Array/],
  ];
  for (const [what, mutate, re] of cases) {
    const rec = decodeValue(encodeValue(good)) as { fields: Record<string, unknown> };
    mutate(rec.fields);
    rec.fields.r = rec.fields.r instanceof Int32Array ? new Int32Array(32).fill(7) : rec.fields.r;
    assert.throws(() => loadCpuState(c, rec), (e) => e instanceof StateError && re.test(e.message), what);
    assert.equal(encodeValue(saveCpuState(c)), before, `${what}: vCPU changed`);
  }
  assert.throws(() => loadCpuState(c, { version: 99, fields: {} }), /unsupported version/);
});

Deno.test("loadCpuState flushes the TLB (no stale translation survives a restore)", () => {
  const { c } = longModeCpu();
  c.rd32(0x5000); // fills a TLB entry
  assert.ok(c.tlbTag.some((t) => !Number.isNaN(t)));
  loadCpuState(c, saveCpuState(c));
  assert.ok(c.tlbTag.every((t) => Number.isNaN(t)));
});
