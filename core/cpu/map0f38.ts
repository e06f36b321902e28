/**
 * The three-byte opcode maps 0F 38 and 0F 3A (SDM vol. 2 appendix A.3): MOVBE/CRC32/ADX (bmi.ts) and the
 * SSSE3/SSE4.1/SSE4.2 vector instructions (ssse3.ts, sse41.ts, sse42.ts). Reached from sse.ts.
 * @module
 */
import type { Interp } from "./interp.ts";
import { execMovbeCrcAdx } from "./bmi.ts";

/** 0F 38 xx / 0F 3A xx: `b` is 0x38 or 0x3a (consumed). */
export function execMap3(it: Interp, b: number): void {
  const op = it.c.fetch8();
  if (b === 0x38 && execMovbeCrcAdx(it, op)) return;
  it.unimpl(`0f ${b.toString(16)} ${op.toString(16)}${it.pfx ? " pfx " + it.pfx.toString(16) : ""}`);
}
