/**
 * The VEX prefix (C4 three-byte, C5 two-byte; SDM vol. 2 §2.3): decodes R/X/B/W/map/vvvv/L/pp into the
 * interpreter's REX and mandatory-prefix state, then dispatches the opcode to the VEX-encoded instruction
 * groups (bmi.ts GPR instructions, avx.ts vector instructions). Legacy 66/F2/F3/REX/LOCK before VEX is #UD.
 * @module
 */
import type { Interp } from "./interp.ts";
import { execBmiVex } from "./bmi.ts";
import { execAvx } from "./avx.ts";

const PP = [0, 0x66, 0xf3, 0xf2];

/** Decoded VEX fields of the current instruction (vvvv as a register number, L 0/1). */
export interface VexFields {
  map: number;
  pp: number;
  v: number;
  l: number;
  w: boolean;
}

/**
 * True when C4/C5 at the current fetch position starts a VEX prefix: always in 64-bit mode, else when the
 * next byte has ModRM.mod = 3 (LES/LDS cannot take a register operand). Does not consume anything.
 */
export function isVex(it: Interp): boolean {
  const c = it.c;
  if (c.long64) return true;
  if (!(c.cr0 & 1) || (c.flags & 0x20000)) return false; // real and virtual-8086 mode: LES/LDS
  const nb = c.fetch8();
  c.ip = c.ip - 1;
  return (nb & 0xc0) === 0xc0;
}

/** Execute a VEX-prefixed instruction; `b` (C4 or C5) has been consumed. */
export function execVex(it: Interp, b: number): void {
  const c = it.c;
  if (it.pfx !== 0 || it.rex !== 0 || it.lock) c.ud();
  const b1 = c.fetch8();
  let r: number, x = 0, bb = 0, w = 0, map = 1, v: number, l: number, pp: number;
  if (b === 0xc5) {
    r = (~b1 >> 7) & 1;
    v = (~b1 >> 3) & 15;
    l = (b1 >> 2) & 1;
    pp = b1 & 3;
  } else {
    r = (~b1 >> 7) & 1;
    x = (~b1 >> 6) & 1;
    bb = (~b1 >> 5) & 1;
    map = b1 & 31;
    const b2 = c.fetch8();
    w = b2 >> 7;
    v = (~b2 >> 3) & 15;
    l = (b2 >> 2) & 1;
    pp = b2 & 3;
  }
  if (!c.long64) {
    r = x = bb = 0;
    v &= 7;
  }
  it.rexR = r << 3;
  it.rexX = x << 3;
  it.rexB = bb << 3;
  it.rexW = w === 1 && c.long64;
  it.rex = 0x40 | (it.rexW ? 8 : 0);
  it.opsz = it.rexW ? 8 : 4;
  it.pfx = PP[pp];
  const op = c.fetch8();
  if (map === 2 || map === 3) {
    if (op >= 0xf0) {
      it.modrm(map === 3 ? 1 : 0);
      if (execBmiVex(it, map, op, PP[pp], v, l)) return;
      c.ud();
    }
  }
  if (map < 1 || map > 3) c.ud();
  const f: VexFields = { map, pp: PP[pp], v, l, w: w === 1 };
  if (execAvx(it, op, f)) return;
  it.unimpl(`VEX map ${map} ${op.toString(16)}`);
}
