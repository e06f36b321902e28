import assert from "node:assert/strict";
import { CODE, longModeCpu, runUntil, setReg } from "./_testcpu.ts";
import { CpuFault, EXC_GP, EXC_UD, EXC_XM } from "./cpu.ts";

function run(hex: string, setup: (c: ReturnType<typeof longModeCpu>["c"]) => void) {
  const m = longModeCpu(4 << 20, { cpuModel: "max" });
  setReg(m.c, 3, 0x30000n);
  setup(m.c);
  const code = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
  m.ram.write(CODE, code);
  let vec = -1;
  try {
    runUntil(m.c, m.it, CODE, CODE + code.length, 5);
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    vec = e.vec;
  }
  return { ...m, vec };
}

Deno.test("SSE divide by zero: masked sets ZE and writes inf; unmasked raises #XM (or #UD without OSXMMEXCPT), dest kept", () => {
  const f32 = (c: { xmm: Int32Array }) => new Float32Array(c.xmm.buffer);
  const init = (mx: number, osx: boolean) => (c: ReturnType<typeof longModeCpu>["c"]) => {
    f32(c)[0] = 1;
    f32(c)[4] = 0;
    c.mxcsr = mx;
    if (osx) c.cr4 |= 0x400;
  };
  let r = run("f30f5ec1", init(0x1f80, true)); // divss xmm0, xmm1
  assert.equal(r.vec, -1);
  assert.equal(f32(r.c)[0], Infinity);
  assert.equal(r.c.mxcsr, 0x1f84);
  r = run("f30f5ec1", init(0x1f80 & ~0x200, true)); // ZM clear
  assert.equal(r.vec, EXC_XM);
  assert.equal(f32(r.c)[0], 1);
  assert.equal(r.c.mxcsr & 0x3f, 4);
  r = run("f30f5ec1", init(0x1f80 & ~0x200, false));
  assert.equal(r.vec, EXC_UD);
});

Deno.test("Aligned SSE forms #GP on a misaligned 16-byte operand; MOVUPS does not", () => {
  assert.equal(run("0f284308", () => {}).vec, EXC_GP); // movaps xmm0, [rbx+8]
  assert.equal(run("660ffe4304", () => {}).vec, EXC_GP); // paddd xmm0, [rbx+4]
  assert.equal(run("0f104308", () => {}).vec, -1); // movups xmm0, [rbx+8]
});

Deno.test("MXCSR rounding mode steers CVTSD2SI and the NaN rules pick the first operand's NaN, quieted", () => {
  // cvtsd2si eax, xmm1 with 2.5 under each rounding mode
  const want = [2, 2, 3, 2];
  for (let rc = 0; rc < 4; rc++) {
    const r = run("f20f2dc1", (c) => {
      new Float64Array(c.xmm.buffer)[2] = 2.5;
      c.mxcsr = 0x1f80 | (rc << 13);
    });
    assert.equal(r.c.r[0], want[rc], `rc ${rc}`);
    assert.equal(r.c.mxcsr & 0x20, 0x20); // PE
  }
  // addsd xmm0, xmm1: both NaN → xmm0's NaN (SNaN quieted), IE set
  const r = run("f20f58c1", (c) => {
    const u = new BigUint64Array(c.xmm.buffer);
    u[0] = 0x7ff0000000000001n;
    u[2] = 0x7ff8000000000002n;
  });
  assert.equal(new BigUint64Array(r.c.xmm.buffer)[0], 0x7ff8000000000001n);
  assert.equal(r.c.mxcsr & 1, 1);
});

Deno.test("LDMXCSR with a reserved bit raises #GP(0); RCPPS/RSQRTPS stay within 1.5 * 2^-12 and get the specials right", () => {
  assert.equal(run("c703801f01000fae13", () => {}).vec, EXC_GP); // mov dword [rbx], 0x11f80; ldmxcsr [rbx]
  const r = run("0f53c10f52d1", (c) => { // rcpps xmm0, xmm1; rsqrtps xmm2, xmm1
    new Float32Array(c.xmm.buffer).set([3, 0, -0.25, 1e-40], 4);
  });
  const f = new Float32Array(r.c.xmm.buffer);
  assert.ok(Math.abs(f[0] * 3 - 1) <= 1.5 * 2 ** -12);
  assert.equal(f[1], Infinity);
  assert.equal(f[2], -4);
  assert.equal(f[3], Infinity); // denormal input read as zero
  assert.ok(Math.abs(f[8] * Math.sqrt(3) - 1) <= 1.5 * 2 ** -12);
  assert.ok(Number.isNaN(f[10]));
  assert.equal(r.c.mxcsr, 0x1f80);
});
