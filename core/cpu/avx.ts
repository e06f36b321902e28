/**
 * AVX and AVX2 (SDM vol. 2, VEX encodings; vol. 1 ch. 14): the VEX.128/VEX.256 forms of the SSE..SSE4.2
 * instructions (non-destructive three-operand, no alignment requirement except the aligned moves), YMM upper
 * halves zeroed by every VEX.128 write (legacy SSE leaves them alone), VZEROUPPER/VZEROALL, and the new
 * AVX/AVX2 instructions (avx2.ts). Reached from vex.ts with the VEX fields decoded and ModRM not yet read.
 * @module
 */
import { CC_EAGER, F_AF, F_CF, F_OF, F_PF, F_SF, F_ZF } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { byteShift, INT_OPS, LOGIC_OPS, pshuf, shiftLane, shufp, unpckp } from "./avxint.ts";
import { VEC_OPS } from "./map0f38.ts";
import {
  ADD,
  cvtToInt,
  DIV,
  maskmov,
  MAX,
  MIN,
  MUL,
  packedCmp,
  packedOp,
  rcpLane,
  SQRT,
  SUB,
} from "./ssefp.ts";
import * as sf from "./softfp.ts";
import { ptestFlags } from "./sse4x.ts";
import { pcmpstr, strIndex, strMask } from "./sse42.ts";
import { commitFlags, Lanes, loadMem, storeMem, xctx } from "./xmmops.ts";
import type { VexFields } from "./vex.ts";
import { execAvx2 } from "./avx2.ts";
import { checkAvx, F, laneOp, need, VexOps } from "./vexops.ts";

const FP_OPS: Record<number, number> = {
  0x51: SQRT,
  0x58: ADD,
  0x59: MUL,
  0x5c: SUB,
  0x5d: MIN,
  0x5e: DIV,
  0x5f: MAX,
};

/** A VEX-encoded vector instruction; ModRM not yet decoded. False: unknown (the caller raises #UD). */
export function execAvx(it: Interp, op: number, f: VexFields): boolean {
  const c = it.c;
  checkAvx(c);
  const X = xctx(c);
  const o = new VexOps(it, f, X);
  if (f.map === 1) return map1(o, op);
  const hasImm = f.map === 3;
  // Ops shared with SSSE3/SSE4 (66 prefix only).
  if (f.pp === 0x66) {
    const key = (f.map === 3 ? 0x100 : 0) | op;
    if (execAvx2(o, op)) return true;
    const e = VEC_OPS[key];
    if (e !== undefined && key !== 0x10 && key !== 0x14 && key !== 0x15) {
      const fpOp = key >= 0x108 && key <= 0x10d || key === 0x140 || key === 0x141;
      if (f.l) need(c, fpOp ? F.avx : F.avx2);
      if (key === 0x141 && f.l) c.ud();
      it.modrm(hasImm ? 1 : 0);
      const scalarRound = key === 0x10a || key === 0x10b;
      const mem = e.mem ? (scalarRound ? e.mem : e.mem * (f.l ? 2 : 1)) : 0;
      laneOp(o, e.fn, hasImm ? c.fetch8() : 0, mem, false, true);
      if (scalarRound) o.write(it.reg, o.r, 0);
      return true;
    }
    return map23Special(o, op);
  }
  return false;
}

/** VEX map 2/3 instructions outside the lane tables: PTEST/TESTPS, extract/insert, string compares. */
function map23Special(o: VexOps, op: number): boolean {
  const { c, it, f, X } = o;
  if (f.map === 2) {
    if (op === 0x2a) { // VMOVNTDQA
      if (f.l) need(c, F.avx2);
      it.modrm(0);
      if (it.isReg || f.v !== 0) c.ud();
      o.rm(o.bytes, true);
      o.write(it.reg, o.b);
      return true;
    }
    if (op === 0x17 || op === 0x0e || op === 0x0f) { // VPTEST / VTESTPS / VTESTPD
      it.modrm(0);
      o.reg(it.reg, o.a);
      o.rm();
      let flags: number;
      if (op === 0x17) flags = ptestFlags(o.a, o.b, o.bytes / 4);
      else {
        let z = 0, cz = 0;
        const n = o.bytes / (op === 0x0e ? 4 : 8);
        for (let i = 0; i < n; i++) {
          const sa = op === 0x0e ? o.a.i32[i] < 0 : o.a.i32[2 * i + 1] < 0;
          const sb = op === 0x0e ? o.b.i32[i] < 0 : o.b.i32[2 * i + 1] < 0;
          if (sa && sb) z = 1;
          if (!sa && sb) cz = 1;
        }
        flags = (z ? 0 : F_ZF) | (cz ? 0 : F_CF);
      }
      c.ccOp = CC_EAGER;
      c.flags = (c.flags & ~(F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)) | flags;
      return true;
    }
    return false;
  }
  switch (op) {
    case 0x14:
    case 0x15:
    case 0x16:
    case 0x17: { // VPEXTRB/W/D/Q, VEXTRACTPS
      if (f.l || f.v !== 0) c.ud();
      it.modrm(1);
      const imm = c.fetch8();
      const x = X.x, base = it.reg * 16;
      const q = op === 0x16 && f.w && c.long64;
      const sz = op === 0x14 ? 1 : op === 0x15 ? 2 : q ? 8 : 4;
      let lo: number, hi = 0;
      if (sz === 1) lo = x.u8[base + (imm & 15)];
      else if (sz === 2) lo = x.u16[base / 2 + (imm & 7)];
      else if (sz === 4) lo = x.i32[base / 4 + (imm & 3)];
      else {
        lo = x.i32[base / 4 + (imm & 1) * 2];
        hi = x.i32[base / 4 + (imm & 1) * 2 + 1];
      }
      if (it.isReg) c.setReg(q ? 8 : c.long64 ? 8 : 4, it.rm, lo, hi);
      else c.wr(sz, it.la, lo, hi);
      return true;
    }
    case 0x20:
    case 0x21:
    case 0x22: { // VPINSRB, VINSERTPS, VPINSRD/Q
      if (f.l) c.ud();
      it.modrm(1);
      const imm = c.fetch8();
      o.reg(f.v, o.r);
      const r = o.r;
      if (op === 0x20) r.u8[imm & 15] = it.isReg ? c.r[it.rm] & 0xff : c.rd8(it.la);
      else if (op === 0x21) {
        const v = it.isReg ? c.xmm[it.rm * 4 + (imm >> 6)] : c.rd32(it.la);
        r.i32[(imm >> 4) & 3] = v;
        for (let i = 0; i < 4; i++) if ((imm >> i) & 1) r.i32[i] = 0;
      } else if (f.w && c.long64) {
        const lo = it.rdE(8), hi = c.hi;
        r.i32[(imm & 1) * 2] = lo;
        r.i32[(imm & 1) * 2 + 1] = hi;
      } else r.i32[imm & 3] = it.rdE(4);
      o.write(it.reg, r, 0);
      return true;
    }
    case 0x60:
    case 0x61:
    case 0x62:
    case 0x63: { // VPCMPxSTRx
      if (f.l || f.v !== 0) c.ud();
      it.modrm(1);
      o.rm(16);
      const imm = c.fetch8();
      o.reg(it.reg, o.a);
      const [res, n] = pcmpstr(c, o.a, o.b, imm, op < 0x62, f.w);
      if (op & 1) c.setReg(4, 1, strIndex(res, n, imm), 0);
      else {
        strMask(res, n, imm, o.r);
        o.write(0, o.r, 0);
      }
      return true;
    }
  }
  return false;
}

/** The VEX map 1 (0F xx) instructions. */
function map1(o: VexOps, op: number): boolean {
  const { c, it, f, X } = o;
  const pp = f.pp;
  const l = f.l;
  if (op === 0x77) { // VZEROUPPER / VZEROALL
    const n = c.long64 ? 16 : 8;
    if (l) c.xmm.fill(0, 0, n * 4);
    c.ymmh.fill(0, 0, n * 4);
    return true;
  }
  const fpOp = FP_OPS[op];
  if (fpOp !== undefined && pp !== undefined) {
    it.modrm(0);
    const dbl = pp === 0x66 || pp === 0xf2;
    const scalar = pp === 0xf2 || pp === 0xf3;
    o.reg(f.v, o.a);
    o.rm(scalar ? (dbl ? 8 : 4) : o.bytes);
    const env = X.env.load(c.mxcsr);
    if (scalar) {
      o.r.i32.set(o.a.i32);
      packedOp(c, dbl, fpOp, 1, o.a, 0, o.b, 0, o.r, 0);
    } else {
      const n = o.bytes / (dbl ? 8 : 4);
      packedOp(c, dbl, fpOp, n, o.a, 0, o.b, 0, o.r, 0);
    }
    commitFlags(c, env);
    o.write(it.reg, o.r, scalar ? 0 : l);
    return true;
  }
  if (LOGIC_OPS[op] !== undefined && (pp === 0 || pp === 0x66)) {
    it.modrm(0);
    laneOp(o, LOGIC_OPS[op], 0);
    return true;
  }
  if (pp === 0x66 && INT_OPS[op] !== undefined) {
    if (l) need(c, F.avx2);
    it.modrm(0);
    laneOp(o, INT_OPS[op], 0);
    return true;
  }
  switch (op) {
    case 0x10:
    case 0x11: {
      it.modrm(0);
      if (pp === 0xf3 || pp === 0xf2) { // VMOVSS / VMOVSD
        const n = pp === 0xf3 ? 1 : 2;
        if (op === 0x10) {
          if (it.isReg) {
            o.reg(f.v, o.r);
            for (let i = 0; i < n; i++) o.r.i32[i] = c.xmm[it.rm * 4 + i];
          } else loadMem(c, o.r, it.la, n * 4, false);
          o.write(it.reg, o.r, 0);
        } else if (it.isReg) {
          o.reg(f.v, o.r);
          for (let i = 0; i < n; i++) o.r.i32[i] = c.xmm[it.reg * 4 + i];
          o.write(it.rm, o.r, 0);
        } else {
          o.reg(it.reg, o.r);
          storeMem(c, it.la, o.r.i32, n * 4, false);
        }
        return true;
      }
      return move(o, op === 0x10, false);
    }
    case 0x28:
    case 0x29:
      it.modrm(0);
      return move(o, op === 0x28, true);
    case 0x6f:
    case 0x7f:
      if (pp !== 0x66 && pp !== 0xf3) return false;
      it.modrm(0);
      return move(o, op === 0x6f, pp === 0x66);
    case 0x2b:
    case 0xe7:
      it.modrm(0);
      if (it.isReg) c.ud();
      return move(o, false, true);
    case 0xf0:
      if (pp !== 0xf2) return false;
      it.modrm(0);
      if (it.isReg) c.ud();
      return move(o, true, false);
    case 0x12:
    case 0x13:
    case 0x16:
    case 0x17:
      it.modrm(0);
      return movLH(o, op);
    case 0x14:
    case 0x15:
      if (pp !== 0 && pp !== 0x66) return false;
      it.modrm(0);
      laneOp(o, unpckp(pp === 0x66, op === 0x15), 0);
      return true;
    case 0xc6:
      if (pp !== 0 && pp !== 0x66) return false;
      it.modrm(1);
      laneOp(o, shufp(pp === 0x66), c.fetch8());
      return true;
    case 0x70:
      if (pp === 0) return false;
      if (l) need(c, F.avx2);
      it.modrm(1);
      laneOp(o, pshuf(pp), c.fetch8(), 0, false, false);
      return true;
    case 0x71:
    case 0x72:
    case 0x73: { // shifts by imm: destination vvvv, source r/m (register)
      if (pp !== 0x66) return false;
      if (l) need(c, F.avx2);
      it.modrm(1);
      if (!it.isReg) c.ud();
      const imm = c.fetch8();
      const g = it.reg & 7;
      o.reg(it.rm, o.a);
      o.r.i32.set(o.a.i32);
      for (let lane = 0; lane <= l; lane++) {
        if (op === 0x73 && (g === 3 || g === 7)) byteShift(g === 7)(c, o.a, o.a, o.r, lane, imm, o.a);
        else if ((op === 0x73 && g !== 2 && g !== 6) || (op !== 0x73 && g !== 2 && g !== 4 && g !== 6)) {
          c.ud();
        } else shiftLane(o.a, o.r, lane, op === 0x71 ? 2 : op === 0x72 ? 4 : 8, g, imm);
      }
      o.write(f.v, o.r);
      return true;
    }
    case 0xd7: { // VPMOVMSKB
      if (pp !== 0x66) return false;
      if (l) need(c, F.avx2);
      it.modrm(0);
      if (!it.isReg) c.ud();
      o.reg(it.rm, o.b);
      let m = 0;
      for (let i = 0; i < o.bytes; i++) m |= (o.b.u8[i] >> 7) << i;
      c.setReg(c.long64 ? 8 : 4, it.reg, m, 0);
      return true;
    }
    case 0x50: { // VMOVMSKPS/PD
      if (pp !== 0 && pp !== 0x66) return false;
      it.modrm(0);
      if (!it.isReg) c.ud();
      o.reg(it.rm, o.b);
      let m = 0;
      const n = o.bytes / (pp === 0x66 ? 8 : 4);
      for (let i = 0; i < n; i++) m |= (pp === 0x66 ? o.b.u32[2 * i + 1] >>> 31 : o.b.u32[i] >>> 31) << i;
      c.setReg(c.long64 ? 8 : 4, it.reg, m, 0);
      return true;
    }
    case 0x6e: { // VMOVD/VMOVQ xmm, r/m
      if (pp !== 0x66 || l) return false;
      it.modrm(0);
      o.r.i32.fill(0);
      const w = f.w && c.long64;
      o.r.i32[0] = it.rdE(w ? 8 : 4);
      if (w) o.r.i32[1] = c.hi;
      o.write(it.reg, o.r, 0);
      return true;
    }
    case 0x7e: {
      if (l) return false;
      it.modrm(0);
      if (pp === 0xf3) { // VMOVQ xmm, xmm/m64
        o.rm(8);
        o.r.i32.fill(0);
        o.r.i32[0] = o.b.i32[0];
        o.r.i32[1] = o.b.i32[1];
        o.write(it.reg, o.r, 0);
        return true;
      }
      if (pp !== 0x66) return false;
      const w = f.w && c.long64;
      it.wrE(w ? 8 : 4, c.xmm[it.reg * 4], w ? c.xmm[it.reg * 4 + 1] : 0);
      return true;
    }
    case 0xd6: { // VMOVQ xmm/m64, xmm
      if (pp !== 0x66 || l) return false;
      it.modrm(0);
      o.r.i32.fill(0);
      o.r.i32[0] = c.xmm[it.reg * 4];
      o.r.i32[1] = c.xmm[it.reg * 4 + 1];
      if (it.isReg) o.write(it.rm, o.r, 0);
      else c.wr64(it.la, o.r.i32[0], o.r.i32[1]);
      return true;
    }
    case 0xc4: { // VPINSRW
      if (pp !== 0x66 || l) return false;
      it.modrm(1);
      const v = it.isReg ? c.r[it.rm] & 0xffff : c.rd16(it.la);
      o.reg(f.v, o.r);
      o.r.u16[c.fetch8() & 7] = v;
      o.write(it.reg, o.r, 0);
      return true;
    }
    case 0xc5: { // VPEXTRW
      if (pp !== 0x66 || l) return false;
      it.modrm(1);
      if (!it.isReg) c.ud();
      c.setReg(c.long64 ? 8 : 4, it.reg, X.x.u16[it.rm * 8 + (c.fetch8() & 7)], 0);
      return true;
    }
  }
  return fpMisc(o, op);
}

/** Full-width moves: load (reg ← r/m) or store (r/m ← reg). */
function move(o: VexOps, load: boolean, aligned: boolean): boolean {
  const { c, it } = o;
  if (load) {
    o.rm(o.bytes, aligned);
    o.write(it.reg, o.b);
  } else if (it.isReg) {
    o.reg(it.reg, o.r);
    o.write(it.rm, o.r);
  } else {
    o.reg(it.reg, o.r);
    storeMem(c, it.la, o.r.i32, o.bytes, aligned);
  }
  return true;
}

/** VMOVLPS/HPS/LPD/HPD/HLPS/LHPS, VMOVSLDUP/SHDUP/DDUP (0F 12/13/16/17). */
function movLH(o: VexOps, op: number): boolean {
  const { c, it, f } = o;
  const pp = f.pp;
  if (pp === 0xf3 || (pp === 0xf2 && op === 0x12)) {
    if (op === 0x13 || op === 0x17) return false;
    if (pp === 0xf2) { // VMOVDDUP
      o.rm(f.l ? 32 : 8);
      for (let lane = 0; lane <= f.l; lane++) {
        o.r.u64[lane * 2] = o.r.u64[lane * 2 + 1] = o.b.u64[lane * 2];
      }
    } else {
      o.rm();
      const s = op === 0x16 ? 1 : 0;
      for (let i = 0; i < o.bytes / 4; i += 2) o.r.i32[i] = o.r.i32[i + 1] = o.b.i32[i + s];
    }
    o.write(it.reg, o.r);
    return true;
  }
  if (f.l || (pp !== 0 && pp !== 0x66)) c.ud();
  const hi = op >= 0x16;
  if (op === 0x13 || op === 0x17) { // stores
    if (it.isReg) c.ud();
    c.wr64(it.la, c.xmm[it.reg * 4 + (hi ? 2 : 0)], c.xmm[it.reg * 4 + (hi ? 3 : 1)]);
    return true;
  }
  o.reg(f.v, o.r);
  if (it.isReg) {
    if (pp === 0x66) c.ud();
    o.reg(it.rm, o.b);
    if (hi) o.r.u64[1] = o.b.u64[0]; // VMOVLHPS
    else o.r.u64[0] = o.b.u64[1]; // VMOVHLPS
  } else {
    loadMem(c, o.b, it.la, 8, false);
    o.r.u64[hi ? 1 : 0] = o.b.u64[0];
  }
  o.write(it.reg, o.r, 0);
  return true;
}

/** FP compares, conversions, ADDSUB/HADD/HSUB (map 1). */
function fpMisc(o: VexOps, op: number): boolean {
  const { c, it, f, X } = o;
  const pp = f.pp;
  const dbl = pp === 0x66 || pp === 0xf2;
  const scalar = pp === 0xf2 || pp === 0xf3;
  const env = X.env;
  switch (op) {
    case 0xf7: // VMASKMOVDQU
      if (pp !== 0x66 || f.l || f.v !== 0) return false;
      it.modrm(0);
      if (!it.isReg) c.ud();
      maskmov(it, it.reg, it.rm);
      return true;
    case 0xae: { // VLDMXCSR / VSTMXCSR
      it.modrm(0);
      const g = it.reg & 7;
      if (pp !== 0 || f.l || f.v !== 0 || it.isReg || (g !== 2 && g !== 3)) return false;
      if (g === 3) c.wr32(it.la, c.mxcsr);
      else {
        const mx = c.rd32(it.la);
        if (mx & ~0xffff) c.gp(0);
        c.mxcsr = mx;
      }
      return true;
    }
    case 0x52:
    case 0x53: { // VRSQRTPS/SS, VRCPPS/SS
      if (pp !== 0 && pp !== 0xf3) return false;
      it.modrm(0);
      o.reg(f.v, o.r);
      o.rm(pp ? 4 : o.bytes);
      for (let i = 0; i < (pp ? 1 : o.bytes / 4); i++) o.r.f32[i] = rcpLane(o.b.f32[i], op === 0x52);
      o.write(it.reg, o.r, pp ? 0 : f.l);
      return true;
    }
    case 0xc2: {
      it.modrm(1);
      o.reg(f.v, o.a);
      o.rm(scalar ? (dbl ? 8 : 4) : o.bytes);
      const pred = c.fetch8() & 31;
      env.load(c.mxcsr);
      o.r.i32.set(o.a.i32);
      packedCmp(c, dbl, pred, scalar ? 1 : o.bytes / (dbl ? 8 : 4), o.a, 0, o.b, 0, o.r, 0);
      commitFlags(c, env);
      o.write(it.reg, o.r, scalar ? 0 : f.l);
      return true;
    }
    case 0x2e:
    case 0x2f: {
      if (pp !== 0 && pp !== 0x66) return false;
      it.modrm(0);
      o.rm(pp ? 8 : 4);
      env.load(c.mxcsr);
      const a = pp ? X.x.u64[it.reg * 2] : BigInt(X.x.u32[it.reg * 4]);
      const b = pp ? o.b.u64[0] : BigInt(o.b.u32[0]);
      const res = sf.compare(pp ? sf.F64 : sf.F32, env, a, b, op === 0x2f);
      commitFlags(c, env);
      const fl = res === 2 ? F_ZF | F_PF | F_CF : res < 0 ? F_CF : res > 0 ? 0 : F_ZF;
      c.ccOp = CC_EAGER;
      c.flags = (c.flags & ~(F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)) | fl;
      return true;
    }
    case 0x2a: { // VCVTSI2SS/SD
      if (!scalar) return false;
      it.modrm(0);
      const w = f.w && c.long64;
      let v: bigint;
      if (w) {
        const lo = it.rdE(8);
        v = BigInt.asIntN(64, (BigInt(c.hi >>> 0) << 32n) | BigInt(lo >>> 0));
      } else v = BigInt(it.rdE(4) | 0);
      env.load(c.mxcsr);
      const res = sf.fromInt(dbl ? sf.F64 : sf.F32, env, v);
      commitFlags(c, env);
      o.reg(f.v, o.r);
      if (dbl) o.r.u64[0] = res;
      else o.r.u32[0] = Number(res);
      o.write(it.reg, o.r, 0);
      return true;
    }
    case 0x2c:
    case 0x2d: {
      if (!scalar) return false;
      it.modrm(0);
      o.rm(dbl ? 8 : 4);
      env.load(c.mxcsr);
      const w = f.w && c.long64;
      const res = cvtToInt(c, dbl, dbl ? o.b.u64[0] : BigInt(o.b.u32[0]), w ? 64 : 32, op === 0x2c);
      commitFlags(c, env);
      c.setReg(w ? 8 : 4, it.reg, Number(res & 0xffffffffn) | 0, Number(res >> 32n) | 0);
      return true;
    }
    case 0x5a: {
      it.modrm(0);
      env.load(c.mxcsr);
      o.r.i32.fill(0);
      if (scalar) {
        o.rm(pp === 0xf2 ? 8 : 4);
        o.reg(f.v, o.r);
        if (pp === 0xf3) o.r.u64[0] = sf.convert(sf.F32, sf.F64, env, BigInt(o.b.u32[0]));
        else o.r.u32[0] = Number(sf.convert(sf.F64, sf.F32, env, o.b.u64[0]));
        commitFlags(c, env);
        o.write(it.reg, o.r, 0);
        return true;
      }
      if (pp === 0x66) { // VCVTPD2PS: 2/4 doubles → 2/4 floats in the low 128 bits
        o.rm();
        const n = o.bytes / 8;
        for (let i = 0; i < n; i++) o.r.u32[i] = Number(sf.convert(sf.F64, sf.F32, env, o.b.u64[i]));
        commitFlags(c, env);
        o.write(it.reg, o.r, 0);
      } else { // VCVTPS2PD
        o.rm(o.bytes / 2);
        const n = o.bytes / 8;
        for (let i = 0; i < n; i++) o.r.u64[i] = sf.convert(sf.F32, sf.F64, env, BigInt(o.b.u32[i]));
        commitFlags(c, env);
        o.write(it.reg, o.r);
      }
      return true;
    }
    case 0x5b: {
      if (pp === 0xf2) return false;
      it.modrm(0);
      o.rm();
      env.load(c.mxcsr);
      for (let i = 0; i < o.bytes / 4; i++) {
        if (pp === 0) o.r.u32[i] = Number(sf.fromInt(sf.F32, env, BigInt(o.b.i32[i])));
        else o.r.u32[i] = Number(cvtToInt(c, false, BigInt(o.b.u32[i]), 32, pp === 0xf3));
      }
      commitFlags(c, env);
      o.write(it.reg, o.r);
      return true;
    }
    case 0xe6: {
      if (pp === 0) return false;
      it.modrm(0);
      env.load(c.mxcsr);
      o.r.i32.fill(0);
      const n = o.bytes / 8;
      if (pp === 0xf3) { // VCVTDQ2PD
        o.rm(o.bytes / 2);
        for (let i = 0; i < n; i++) o.r.u64[i] = sf.fromInt(sf.F64, env, BigInt(o.b.i32[i]));
        commitFlags(c, env);
        o.write(it.reg, o.r);
      } else {
        o.rm();
        for (let i = 0; i < n; i++) o.r.u32[i] = Number(cvtToInt(c, true, o.b.u64[i], 32, pp === 0x66));
        commitFlags(c, env);
        o.write(it.reg, o.r, 0);
      }
      return true;
    }
    case 0xd0:
    case 0x7c:
    case 0x7d: {
      if (pp !== 0x66 && pp !== 0xf2) return false;
      it.modrm(0);
      o.reg(f.v, o.a);
      o.rm();
      env.load(c.mxcsr);
      const dd = pp === 0x66;
      const n = 16 / (dd ? 8 : 4);
      const t = new Lanes(new Int32Array(8));
      for (let lane = 0; lane <= f.l; lane++) {
        const k = lane * n;
        if (op === 0xd0) {
          for (let i = 0; i < n; i++) {
            packedOp(c, dd, i & 1 ? ADD : SUB, 1, o.a, k + i, o.b, k + i, o.r, k + i);
          }
        } else {
          for (let i = 0; i < n; i++) {
            const src = i < n / 2 ? o.a : o.b, j = k + (i % (n / 2)) * 2;
            if (dd) {
              t.u64[0] = src.u64[j];
              t.u64[1] = src.u64[j + 1];
            } else {
              t.u32[0] = src.u32[j];
              t.u32[1] = src.u32[j + 1];
            }
            packedOp(c, dd, op === 0x7c ? ADD : SUB, 1, t, 0, t, 1, o.r, k + i);
          }
        }
      }
      commitFlags(c, env);
      o.write(it.reg, o.r);
      return true;
    }
  }
  return false;
}
