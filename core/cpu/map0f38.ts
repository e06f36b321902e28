/**
 * The three-byte opcode maps 0F 38 and 0F 3A (SDM vol. 2 appendix A.3), legacy encodings: MOVBE/CRC32/ADX
 * (bmi.ts), the SSSE3/SSE4.1/SSE4.2 vector instructions (ssse3.ts, sse41.ts lane tables; sse4x.ts for those
 * with GPR/flag results). Reached from sse.ts.
 * @module
 */
import type { Interp } from "./interp.ts";
import { execMovbeCrcAdx } from "./bmi.ts";
import { SSSE3_OPS } from "./ssse3.ts";
import { SSE41_OPS } from "./sse41.ts";
import { execSse4x } from "./sse4x.ts";
import { checkSse, commitFlags, loadRm, type VecOp, xctx } from "./xmmops.ts";

/** Lane-function table of both maps: key op (0F 38) or 0x100 | op (0F 3A). */
export const VEC_OPS: Record<number, VecOp> = { ...SSSE3_OPS, ...SSE41_OPS };

/** 0F 38 xx / 0F 3A xx: `b` is 0x38 or 0x3a (consumed). */
export function execMap3(it: Interp, b: number): void {
  const c = it.c;
  const op = c.fetch8();
  if (b === 0x38 && execMovbeCrcAdx(it, op)) return;
  if (it.pfx === 0x66) {
    checkSse(c);
    const e = VEC_OPS[(b === 0x3a ? 0x100 : 0) | op];
    if (e !== undefined) {
      if (!c.cpuidModel.has(e.feat)) c.ud();
      const X = xctx(c);
      it.modrm(e.imm ? 1 : 0);
      const mem = e.mem ?? 16;
      loadRm(it, X.s, mem, mem === 16);
      const imm = e.imm ? c.fetch8() : 0;
      const d = it.reg * 4;
      for (let i = 0; i < 4; i++) X.t.i32[i] = X.r.i32[i] = c.xmm[d + i];
      X.env.load(c.mxcsr);
      e.fn(c, X.t, X.s, X.r, 0, imm, X.x);
      commitFlags(c, X.env);
      for (let i = 0; i < 4; i++) c.xmm[d + i] = X.r.i32[i];
      return;
    }
    if (execSse4x(it, b, op)) return;
  }
  it.unimpl(`0f ${b.toString(16)} ${op.toString(16)}${it.pfx ? " pfx " + it.pfx.toString(16) : ""}`);
}
