/**
 * The AVX/AVX2 instructions without an SSE ancestor (VEX maps 0F38/0F3A, 66 prefix): broadcasts, VPERMx,
 * VPERMILPx, VPERM2x128, VINSERTx128/VEXTRACTx128, VPBLENDD, VBLENDVPx/VPBLENDVB, masked moves, variable
 * shifts, gathers (VSIB), FMA3 (fma.ts semantics through softfp) and F16C.
 * @module
 */
import type { Cpu } from "./cpu.ts";
import * as sf from "./softfp.ts";
import { commitFlags, type Lanes } from "./xmmops.ts";
import { F, need, type VexOps } from "./vexops.ts";

const F16: sf.Fmt = { eb: 5, mb: 10, bits: 16 };

function ud(c: Cpu): never {
  return c.ud();
}

/** Handle one map-2/3 AVX/AVX2/FMA/F16C instruction; false when not one of them. ModRM not yet decoded. */
export function execAvx2(o: VexOps, op: number): boolean {
  const { c, it, f } = o;
  const l = f.l;
  const n32 = o.bytes / 4;
  if (f.map === 2) {
    if (op >= 0x96 && op <= 0xbf && (op & 0xf) >= 6) return fma(o, op);
    switch (op) {
      case 0x0c:
      case 0x0d: { // VPERMILPS/PD (variable)
        it.modrm(0);
        o.reg(f.v, o.a);
        o.rm();
        for (let i = 0; i < (op === 0x0c ? n32 : n32 / 2); i++) {
          if (op === 0x0c) o.r.u32[i] = o.a.u32[(i & ~3) + (o.b.u32[i] & 3)];
          else o.r.u64[i] = o.a.u64[(i & ~1) + Number((o.b.u64[i] >> 1n) & 1n)];
        }
        o.write(it.reg, o.r);
        return true;
      }
      case 0x16:
      case 0x36: { // VPERMPS / VPERMD
        if (!l) ud(c);
        if (op === 0x36) need(c, F.avx2);
        else need(c, F.avx2);
        it.modrm(0);
        o.reg(f.v, o.a);
        o.rm();
        for (let i = 0; i < 8; i++) o.r.u32[i] = o.b.u32[o.a.u32[i] & 7];
        o.write(it.reg, o.r);
        return true;
      }
      case 0x18:
      case 0x19:
      case 0x1a:
      case 0x5a:
      case 0x58:
      case 0x59:
      case 0x78:
      case 0x79: { // broadcasts
        it.modrm(0);
        if (f.v !== 0) ud(c);
        const esz = op === 0x78
          ? 1
          : op === 0x79
          ? 2
          : op === 0x18 || op === 0x58
          ? 4
          : op === 0x19 || op === 0x59
          ? 8
          : 16;
        if (op >= 0x58 || (it.isReg && op !== 0x1a)) need(c, F.avx2);
        if ((op === 0x19 || op === 0x1a || op === 0x5a) && !l) ud(c);
        if ((op === 0x1a || op === 0x5a) && it.isReg) ud(c);
        o.rm(esz);
        for (let i = 0; i < o.bytes; i++) o.r.u8[i] = o.b.u8[i % esz];
        o.write(it.reg, o.r);
        return true;
      }
      case 0x2c:
      case 0x2d:
      case 0x2e:
      case 0x2f:
      case 0x8c:
      case 0x8e: { // VMASKMOVPS/PD, VPMASKMOVD/Q
        it.modrm(0);
        if (it.isReg) ud(c);
        if (op >= 0x8c) need(c, F.avx2);
        const q = op === 0x2d || op === 0x2f || (op >= 0x8c && f.w);
        const esz = q ? 8 : 4;
        const n = o.bytes / esz;
        o.reg(f.v, o.a); // mask
        const store = op === 0x2e || op === 0x2f || op === 0x8e;
        if (store) o.reg(it.reg, o.b);
        o.r.i32.fill(0);
        for (let i = 0; i < n; i++) {
          if (o.a.i32[i * (esz / 4) + esz / 4 - 1] >= 0) continue;
          const la = it.la + i * esz;
          if (store) {
            if (q) c.wr64(la, o.b.i32[2 * i], o.b.i32[2 * i + 1]);
            else c.wr32(la, o.b.i32[i]);
          } else if (q) {
            o.r.i32[2 * i] = c.rd32(la);
            o.r.i32[2 * i + 1] = c.rd32(la + 4);
          } else o.r.i32[i] = c.rd32(la);
        }
        if (!store) o.write(it.reg, o.r);
        return true;
      }
      case 0x45:
      case 0x46:
      case 0x47: { // VPSRLVD/Q, VPSRAVD, VPSLLVD/Q
        need(c, F.avx2);
        it.modrm(0);
        if (op === 0x46 && f.w) ud(c);
        o.reg(f.v, o.a);
        o.rm();
        if (f.w) {
          for (let i = 0; i < n32 / 2; i++) {
            const cnt = o.b.u64[i];
            o.r.u64[i] = cnt > 63n
              ? 0n
              : op === 0x45
              ? o.a.u64[i] >> cnt
              : BigInt.asUintN(64, o.a.u64[i] << cnt);
          }
        } else {
          for (let i = 0; i < n32; i++) {
            const cnt = o.b.u32[i], v = o.a.i32[i];
            o.r.i32[i] = op === 0x46
              ? v >> (cnt > 31 ? 31 : cnt)
              : cnt > 31
              ? 0
              : op === 0x45
              ? v >>> cnt
              : v << cnt;
          }
        }
        o.write(it.reg, o.r);
        return true;
      }
      case 0x90:
      case 0x91:
      case 0x92:
      case 0x93:
        return gather(o, op);
      case 0x13: { // VCVTPH2PS
        need(c, "f16c");
        it.modrm(0);
        if (f.v !== 0 || f.w) ud(c);
        o.rm(o.bytes / 2);
        const env = o.X.env.load(c.mxcsr);
        env.daz = false;
        for (let i = 0; i < n32; i++) {
          const f0 = env.flags;
          o.r.u32[i] = Number(sf.convert(F16, sf.F32, env, BigInt(o.b.u16[i])));
          env.flags = (env.flags & ~sf.DE) | (f0 & sf.DE);
        }
        commitFlags(c, env);
        o.write(it.reg, o.r);
        return true;
      }
    }
    return false;
  }
  // map 3
  switch (op) {
    case 0x00:
    case 0x01: { // VPERMQ / VPERMPD
      need(c, F.avx2);
      if (!l || !f.w || f.v !== 0) ud(c);
      it.modrm(1);
      o.rm();
      const imm = c.fetch8();
      for (let i = 0; i < 4; i++) o.r.u64[i] = o.b.u64[(imm >> (2 * i)) & 3];
      o.write(it.reg, o.r);
      return true;
    }
    case 0x02: { // VPBLENDD
      need(c, F.avx2);
      if (f.w) ud(c);
      it.modrm(1);
      o.reg(f.v, o.a);
      o.rm();
      const imm = c.fetch8();
      for (let i = 0; i < n32; i++) o.r.i32[i] = (imm >> i) & 1 ? o.b.i32[i] : o.a.i32[i];
      o.write(it.reg, o.r);
      return true;
    }
    case 0x04:
    case 0x05: { // VPERMILPS/PD imm
      it.modrm(1);
      if (f.v !== 0) ud(c);
      o.rm();
      const imm = c.fetch8();
      if (op === 0x04) {
        for (let i = 0; i < n32; i++) o.r.u32[i] = o.b.u32[(i & ~3) + ((imm >> (2 * (i & 3))) & 3)];
      } else for (let i = 0; i < n32 / 2; i++) o.r.u64[i] = o.b.u64[(i & ~1) + ((imm >> i) & 1)];
      o.write(it.reg, o.r);
      return true;
    }
    case 0x06:
    case 0x46: { // VPERM2F128 / VPERM2I128
      if (op === 0x46) need(c, F.avx2);
      if (!l) ud(c);
      it.modrm(1);
      o.reg(f.v, o.a);
      o.rm();
      const imm = c.fetch8();
      for (let h = 0; h < 2; h++) {
        const sel = imm >> (4 * h);
        const src = sel & 2 ? o.b : o.a, half = sel & 1;
        for (let i = 0; i < 4; i++) o.r.i32[h * 4 + i] = sel & 8 ? 0 : src.i32[half * 4 + i];
      }
      o.write(it.reg, o.r);
      return true;
    }
    case 0x18:
    case 0x38: { // VINSERTF128 / VINSERTI128
      if (op === 0x38) need(c, F.avx2);
      if (!l) ud(c);
      it.modrm(1);
      o.reg(f.v, o.r);
      o.rm(16);
      const h = c.fetch8() & 1;
      for (let i = 0; i < 4; i++) o.r.i32[h * 4 + i] = o.b.i32[i];
      o.write(it.reg, o.r);
      return true;
    }
    case 0x19:
    case 0x39: { // VEXTRACTF128 / VEXTRACTI128
      if (op === 0x39) need(c, F.avx2);
      if (!l || f.v !== 0) ud(c);
      it.modrm(1);
      o.reg(it.reg, o.a);
      const h = c.fetch8() & 1;
      o.r.i32.fill(0);
      for (let i = 0; i < 4; i++) o.r.i32[i] = o.a.i32[h * 4 + i];
      if (it.isReg) o.write(it.rm, o.r, 0);
      else for (let i = 0; i < 4; i++) c.wr32(it.la + 4 * i, o.r.i32[i]);
      return true;
    }
    case 0x1d: { // VCVTPS2PH
      need(c, "f16c");
      if (f.v !== 0 || f.w) ud(c);
      it.modrm(1);
      o.reg(it.reg, o.a);
      const imm = c.fetch8();
      const env = o.X.env.load(c.mxcsr);
      if (!(imm & 4)) env.rc = imm & 3;
      env.ftz = false;
      o.r.i32.fill(0);
      for (let i = 0; i < n32; i++) o.r.u16[i] = Number(sf.convert(sf.F32, F16, env, BigInt(o.a.u32[i])));
      commitFlags(c, env);
      if (it.isReg) o.write(it.rm, o.r, 0);
      else for (let i = 0; i < n32 / 2; i++) c.wr32(it.la + 4 * i, o.r.i32[i]);
      return true;
    }
    case 0x4a:
    case 0x4b:
    case 0x4c: { // VBLENDVPS / VBLENDVPD / VPBLENDVB (mask register in imm8[7:4])
      if (f.w) ud(c);
      if (op === 0x4c && l) need(c, F.avx2);
      it.modrm(1);
      o.reg(f.v, o.a);
      o.rm();
      const m = o.X.t2;
      o.reg(c.fetch8() >> 4 & (c.long64 ? 15 : 7), m);
      const esz = op === 0x4a ? 4 : op === 0x4b ? 8 : 1;
      for (let i = 0; i < o.bytes; i += esz) {
        const sel = m.i8[i + esz - 1] < 0;
        for (let k = 0; k < esz; k++) o.r.u8[i + k] = sel ? o.b.u8[i + k] : o.a.u8[i + k];
      }
      o.write(it.reg, o.r);
      return true;
    }
  }
  return false;
}

/** FMA3: 132/213/231 forms of VFMADD/VFMSUB/VFNMADD/VFNMSUB (packed, scalar), VFMADDSUB/VFMSUBADD. */
function fma(o: VexOps, op: number): boolean {
  const { c, it, f, X } = o;
  need(c, "fma");
  const kind = op & 0xf, order = op >> 4;
  const scalar = kind >= 8 && (kind & 1) === 1;
  const dbl = f.w;
  const fmt = dbl ? sf.F64 : sf.F32;
  it.modrm(0);
  const x1 = X.t2, x2 = o.a, x3 = o.b;
  o.reg(it.reg, x1);
  o.reg(f.v, x2);
  o.rm(scalar ? (dbl ? 8 : 4) : o.bytes);
  const env = X.env.load(c.mxcsr);
  o.r.i32.set(x1.i32);
  const n = scalar ? 1 : o.bytes / (dbl ? 8 : 4);
  const get = (v: Lanes, i: number) => (dbl ? v.u64[i] : BigInt(v.u32[i]));
  for (let i = 0; i < n; i++) {
    const a1 = get(x1, i), a2 = get(x2, i), a3 = get(x3, i); // dest, vvvv, r/m
    const [m1, m2, ad] = order === 9 ? [a1, a3, a2] : order === 0xa ? [a2, a1, a3] : [a2, a3, a1];
    let negP = false, negC = false;
    if (kind === 6 || kind === 7) negC = (i & 1) === (kind === 6 ? 0 : 1); // ADDSUB: even lanes subtract
    else {
      const k = kind >> 1; // 4 fmadd, 5 fmsub, 6 fnmadd, 7 fnmsub
      negP = k >= 6;
      negC = k === 5 || k === 7;
    }
    const res = sf.fma(fmt, env, m1, m2, ad, negP, negC);
    if (dbl) o.r.u64[i] = res;
    else o.r.u32[i] = Number(res);
  }
  commitFlags(c, env);
  o.write(it.reg, o.r, scalar ? 0 : f.l);
  return true;
}

/** AVX2 gathers (VSIB addressing), element by element; completed elements clear their mask bits. */
function gather(o: VexOps, op: number): boolean {
  const { c, it, f } = o;
  need(c, F.avx2);
  it.modrm(0);
  if (it.isReg || !c.long64 || it.adsz !== 8) ud(c);
  const dIdx = op === 0x90 || op === 0x92; // dword indices
  const q = f.w; // qword elements
  const vidx = it.mIndex === -1 ? 4 : it.mIndex;
  const dst = it.reg, msk = f.v;
  if (dst === msk || dst === vidx || msk === vidx) ud(c);
  const n = dIdx ? (q ? o.bytes / 8 : o.bytes / 4) : o.bytes / 8;
  const idx = o.X.t2;
  o.reg(vidx, idx);
  o.reg(msk, o.a);
  o.reg(dst, o.r);
  const r = c.r;
  let base = it.mDisp;
  if (it.mBase >= 0) base += r[it.mBase + 16] * 4294967296 + (r[it.mBase] >>> 0);
  if (it.seg >= 4) base += c.segBase[it.seg];
  const scale = 1 << it.mScale;
  const w = q ? 2 : 1;
  // The destination/mask width: qword indices with dword data use only the low 128 bits.
  const outL = !dIdx && !q ? 0 : f.l;
  try {
    for (let i = 0; i < n; i++) {
      if (o.a.i32[i * w + w - 1] >= 0) continue;
      const ix = dIdx ? idx.i32[i] : Number(idx.i64[i]);
      let la = base + ix * scale;
      if (la >= 9223372036854775808) la -= 18446744073709551616;
      if (q) {
        o.r.i32[2 * i] = c.rd32(la);
        o.r.i32[2 * i + 1] = c.rd32(la + 4);
        o.a.i32[2 * i] = o.a.i32[2 * i + 1] = 0;
      } else {
        o.r.i32[i] = c.rd32(la);
        o.a.i32[i] = 0;
      }
    }
  } finally {
    for (let i = n * w; i < 8; i++) {
      if (!outL && i >= 4) o.r.i32[i] = 0;
    }
    if (n * w < 4) { for (let i = n * w; i < 4; i++) o.r.i32[i] = 0; }
    o.write(dst, o.r, outL);
    o.a.i32.fill(0);
    o.write(msk, o.a, outL);
  }
  return true;
}

export { F16 };
