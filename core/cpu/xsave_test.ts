import assert from "node:assert/strict";
import { CODE, getReg, longModeCpu, runUntil, setReg } from "./_testcpu.ts";
import { type Cpu, CpuFault, EXC_GP, EXC_UD } from "./cpu.ts";
import { cpuid, CpuidModel } from "./cpuid.ts";

const BUF = 0x30000;

function run(hex: string, setup: (c: Cpu) => void = () => {}) {
  const m = longModeCpu(4 << 20, { cpuModel: "max" });
  setReg(m.c, 3, BigInt(BUF));
  setup(m.c);
  const code = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
  m.ram.write(CODE, code);
  let vec = -1;
  try {
    runUntil(m.c, m.it, CODE, CODE + code.length, 50);
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    vec = e.vec;
  }
  return { ...m, vec };
}

const ENABLE = "0f20e181c9000004000f22e1"; // mov rcx, cr4; or ecx, CR4.OSXSAVE; mov cr4, rcx

Deno.test("XSETBV/XGETBV, XSAVE then XRSTOR round-trip x87/SSE state, XSTATE_BV records the components", () => {
  // xor ecx,ecx; mov eax,3; xor edx,edx; xsetbv; mov eax,7; xsave [rbx]; pxor xmm1,xmm1; xrstor [rbx]; xgetbv
  const r = run(ENABLE + "31c9b80300000031d20f01d1b8070000000fae23660fefc90fae2b0f01d0", (c) => {
    c.xmm.set([1, 2, 3, 4], 4);
    c.mxcsr = 0x1fa0;
    c.fpuCw = 0x27f;
  });
  assert.equal(r.vec, -1);
  assert.deepEqual(Array.from(r.c.xmm.subarray(4, 8)), [1, 2, 3, 4]);
  assert.equal(getReg(r.c, 0), 3n); // XCR0
  assert.equal(r.ram.readU32(BUF + 512), 3); // XSTATE_BV = RFBM = 7 & XCR0
  assert.equal(r.ram.readU32(BUF + 24), 0x1fa0);
  assert.equal(r.ram.readU16(BUF), 0x27f);
  assert.equal(r.ram.readU32(BUF + 160 + 16), 1);
});

Deno.test("XSAVEC writes the compacted header; XRSTOR reads it back, AVX upper halves included", () => {
  const avx = new CpuidModel("max", [], 1).has("avx");
  const r = run(ENABLE + "b8ffffffff89c20fc723660fefd20fae2b", (c) => {
    c.xcr0 = avx ? 7 : 3; // as after XSETBV
    c.ymmh.set([9, 8, 7, 6], 8);
    c.xmm.set([5], 8);
  });
  assert.equal(r.vec, -1);
  const m = avx ? 7 : 3;
  assert.equal(r.ram.readU32(BUF + 512), m); // XSTATE_BV
  assert.equal(r.ram.readU32(BUF + 520), m); // XCOMP_BV
  assert.equal(r.ram.readU32(BUF + 524) >>> 0, 0x80000000);
  assert.equal(r.c.xmm[8], 5); // restored after pxor xmm2, xmm2
  if (avx) {
    assert.equal(r.ram.readU32(BUF + 576 + 32), 9); // ymm2 upper half at 576 + 2 * 16
    assert.deepEqual(Array.from(r.c.ymmh.subarray(8, 12)), [9, 8, 7, 6]);
  }
});

Deno.test("XRSTOR initialises components absent from XSTATE_BV", () => {
  // xsave; clear XSTATE_BV bit 1 in memory; xrstor → XMM zeroed
  const r = run(ENABLE + "b8ffffffff89c20fae23c78300020000010000000fae2b", (c) => {
    c.xmm.set([1, 2, 3, 4]);
    c.xcr0 = 3;
  });
  assert.equal(r.vec, -1);
  assert.deepEqual(Array.from(r.c.xmm.subarray(0, 4)), [0, 0, 0, 0]);
});

Deno.test("XSAVE faults: #UD without CR4.OSXSAVE, #GP on a misaligned area or a bad XSETBV value", () => {
  assert.equal(run("0f01d0").vec, EXC_UD); // xgetbv without OSXSAVE
  assert.equal(run(ENABLE + "0fae6310").vec, EXC_GP); // xsave [rbx+16]
  // xsetbv with eax = 4 (AVX without SSE and x87)
  assert.equal(run(ENABLE + "31c9b80400000031d20f01d1").vec, EXC_GP);
  assert.equal(run(ENABLE + "b8ffffffff89c20fae33").vec, -1); // xsaveopt
});

Deno.test("CPUID leaf 0DH describes the enabled components and OSXSAVE follows CR4", () => {
  const { c } = longModeCpu(4 << 20, { cpuModel: "max" });
  const l1 = () => cpuid(c, 1, 0)[2];
  assert.ok(l1() & (1 << 26));
  assert.ok(!(l1() & (1 << 27)));
  c.cr4 |= 0x40000;
  assert.ok(l1() & (1 << 27));
  c.xcr0 = 3;
  const d0 = cpuid(c, 0xd, 0);
  assert.equal(d0[1], 576);
  assert.equal(d0[0] & 3, 3);
  assert.equal(cpuid(c, 0xd, 1)[0] & 3, 3); // XSAVEOPT, XSAVEC
});
