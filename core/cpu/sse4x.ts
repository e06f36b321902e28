/**
 * SSE4.1/4.2 instructions with GPR, memory or flag results (legacy encodings): PTEST, MOVNTDQA, PEXTRB/W/D/Q,
 * EXTRACTPS, PINSRB/D/Q, INSERTPS and PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM. ModRM not yet decoded.
 * @module
 */
import { CC_EAGER, F_AF, F_CF, F_OF, F_PF, F_SF, F_ZF } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { pcmpstr, strIndex, strMask } from "./sse42.ts";
import { type Lanes, loadMem, loadRm, xctx } from "./xmmops.ts";

/** PTEST flags: ZF = (a AND b) == 0, CF = (NOT a AND b) == 0 over `n32` dwords. */
export function ptestFlags(a: Lanes, b: Lanes, n32: number): number {
  let z = 0, cz = 0;
  for (let i = 0; i < n32; i++) {
    z |= a.i32[i] & b.i32[i];
    cz |= ~a.i32[i] & b.i32[i];
  }
  return (z === 0 ? F_ZF : 0) | (cz === 0 ? F_CF : 0);
}

/** 0F 38 op / 0F 3A op (map 0x38/0x3a) with a 66 prefix; false when not one of these. */
export function execSse4x(it: Interp, map: number, op: number): boolean {
  const c = it.c;
  const X = xctx(c);
  const { x, s } = X;
  const m = c.cpuidModel;
  if (map === 0x38) {
    if (op === 0x17) { // PTEST
      if (!m.has("sse4.1")) c.ud();
      it.modrm(0);
      loadRm(it, s, 16, true);
      const d = it.reg * 4;
      const a = X.t;
      for (let i = 0; i < 4; i++) a.i32[i] = x.i32[d + i];
      c.ccOp = CC_EAGER;
      c.flags = (c.flags & ~(F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)) | ptestFlags(a, s, 4);
      return true;
    }
    if (op === 0x2a) { // MOVNTDQA
      if (!m.has("sse4.1")) c.ud();
      it.modrm(0);
      if (it.isReg) c.ud();
      loadMem(c, s, it.la, 16, true);
      for (let i = 0; i < 4; i++) x.i32[it.reg * 4 + i] = s.i32[i];
      return true;
    }
    return false;
  }
  switch (op) {
    case 0x14:
    case 0x15:
    case 0x16:
    case 0x17: { // PEXTRB / PEXTRW / PEXTRD/Q / EXTRACTPS
      if (!m.has("sse4.1")) c.ud();
      it.modrm(1);
      const imm = c.fetch8();
      const base = it.reg * 16;
      const q = op === 0x16 && it.rexW;
      const sz = op === 0x14 ? 1 : op === 0x15 ? 2 : q ? 8 : 4;
      let lo: number, hi = 0;
      if (sz === 1) lo = x.u8[base + (imm & 15)];
      else if (sz === 2) lo = x.u16[base / 2 + (imm & 7)];
      else if (sz === 4) lo = x.i32[base / 4 + (imm & 3)];
      else {
        lo = x.i32[base / 4 + (imm & 1) * 2];
        hi = x.i32[base / 4 + (imm & 1) * 2 + 1];
      }
      if (it.isReg) c.setReg(q ? 8 : c.long64 && it.rexW ? 8 : 4, it.rm, lo, hi);
      else c.wr(sz, it.la, lo, hi);
      return true;
    }
    case 0x20:
    case 0x22: { // PINSRB / PINSRD/Q
      if (!m.has("sse4.1")) c.ud();
      it.modrm(1);
      const imm = c.fetch8();
      const base = it.reg * 16;
      if (op === 0x20) {
        x.u8[base + (imm & 15)] = it.isReg ? c.r[it.rm] & 0xff : c.rd8(it.la);
      } else if (it.rexW) {
        const lo = it.rdE(8), hi = c.hi;
        x.i32[base / 4 + (imm & 1) * 2] = lo;
        x.i32[base / 4 + (imm & 1) * 2 + 1] = hi;
      } else x.i32[base / 4 + (imm & 3)] = it.rdE(4);
      return true;
    }
    case 0x21: { // INSERTPS
      if (!m.has("sse4.1")) c.ud();
      it.modrm(1);
      const imm = c.fetch8();
      const d = it.reg * 4;
      const v = it.isReg ? x.i32[it.rm * 4 + (imm >> 6)] : c.rd32(it.la);
      x.i32[d + ((imm >> 4) & 3)] = v;
      for (let i = 0; i < 4; i++) if ((imm >> i) & 1) x.i32[d + i] = 0;
      return true;
    }
    case 0x60:
    case 0x61:
    case 0x62:
    case 0x63: { // PCMPESTRM / PCMPESTRI / PCMPISTRM / PCMPISTRI
      if (!m.has("sse4.2")) c.ud();
      it.modrm(1);
      loadRm(it, s, 16, false);
      const imm = c.fetch8();
      const a = X.t;
      for (let i = 0; i < 4; i++) a.i32[i] = x.i32[it.reg * 4 + i];
      const [res, n] = pcmpstr(c, a, s, imm, op < 0x62, it.rexW);
      if (op & 1) c.setReg(4, 1, strIndex(res, n, imm), 0);
      else {
        strMask(res, n, imm, X.r);
        for (let i = 0; i < 4; i++) x.i32[i] = X.r.i32[i];
      }
      return true;
    }
  }
  return false;
}
