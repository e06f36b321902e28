import assert from "node:assert/strict";
import { CODE, longModeCpu, runUntil } from "./_testcpu.ts";

Deno.test("SSE2 PMADDWD, PACKSSWB and PEXTRW compute as the SDM says (were #UD)", () => {
  const { c, it, ram } = longModeCpu();
  const w = new Int16Array(c.xmm.buffer);
  w.set([1, 2, 3, 4, 5, 6, 7, 8], 0); // xmm0
  w.set([10, 20, 30, 40, -1, -2, -3, -4], 8); // xmm1
  w.set([300, -300, 5, -5, 127, 128, -128, -129], 16); // xmm2
  // pextrw eax, xmm0, 5; pmaddwd xmm0, xmm1; packsswb xmm2, xmm3
  const code = [0x66, 0x0f, 0xc5, 0xc0, 0x05, 0x66, 0x0f, 0xf5, 0xc1, 0x66, 0x0f, 0x63, 0xd3];
  ram.write(CODE, new Uint8Array(code));
  runUntil(c, it, CODE, CODE + code.length);
  assert.equal(c.r[0], 6);
  assert.deepEqual(Array.from(c.xmm.subarray(0, 4)), [50, 250, -17, -53]);
  assert.deepEqual(
    Array.from(new Int8Array(c.xmm.buffer, 32, 16)),
    [127, -128, 5, -5, 127, 127, -128, -128, 0, 0, 0, 0, 0, 0, 0, 0],
  );
});
