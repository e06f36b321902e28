/**
 * SSE/SSE2/SSE3 floating-point instructions with MXCSR semantics (SDM vol. 1 §11.5, vol. 2): packed and
 * scalar add/sub/mul/div/sqrt/min/max, CMPxx, COMISxx/UCOMISxx, all conversions, ADDSUB/HADD/HSUB and the SSE3
 * moves (MOVSLDUP, MOVSHDUP, MOVDDUP, LDDQU). Exact arithmetic lives in softfp.ts; a fast path handles normal
 * operands in round-to-nearest once MXCSR.PE is already set (the usual state of a running program), where
 * the only possible new exception is the precision one.
 * @module
 */
import { CC_EAGER, type Cpu, F_AF, F_CF, F_OF, F_PF, F_SF, F_ZF } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import * as sf from "./softfp.ts";
import { commitFlags, type Lanes, loadMem, loadRm, xctx } from "./xmmops.ts";

const MIN32 = 1.1754943508222875e-38, MIN64 = 2.2250738585072014e-308;

/** True when MXCSR is round-to-nearest, no DAZ/FTZ, everything masked and PE already set. */
function fastOk(mx: number): boolean {
  return (mx & 0xffc0) === 0x1f80 && (mx & sf.PE) !== 0;
}

function normal(v: number, min: number): boolean {
  const a = v < 0 ? -v : v;
  return a >= min && a !== Infinity;
}

/** Basic binary operation codes. */
export const ADD = 0, SUB = 1, MUL = 2, DIV = 3, MIN = 4, MAX = 5, SQRT = 6;

/** One lane of a basic operation on raw bits (slow, exact path). */
export function laneOp(f: sf.Fmt, env: sf.FpEnv, op: number, a: bigint, b: bigint): bigint {
  if (op <= DIV) return sf.arith(f, env, op, a, b);
  if (op === SQRT) return sf.sqrt(f, env, b);
  return sf.minmax(f, env, a, b, op === MAX);
}

/**
 * dst[i] = a[i] op b[i] for i in [0, n) in format dbl ? f64 : f32, writing into r (a Lanes); flags into env.
 * a, b, r may alias.
 */
export function packedOp(
  c: Cpu,
  dbl: boolean,
  op: number,
  n: number,
  a: Lanes,
  ao: number,
  b: Lanes,
  bo: number,
  r: Lanes,
  ro: number,
): void {
  const env = xctx(c).env;
  const fast = fastOk(c.mxcsr) && op !== MIN && op !== MAX;
  for (let i = 0; i < n; i++) {
    if (fast) {
      const x = dbl ? a.f64[ao + i] : a.f32[ao + i], y = dbl ? b.f64[bo + i] : b.f32[bo + i];
      const min = dbl ? MIN64 : MIN32;
      if ((op === SQRT || normal(x, min)) && normal(y, min)) {
        let v = op === ADD
          ? x + y
          : op === SUB
          ? x - y
          : op === MUL
          ? x * y
          : op === DIV
          ? x / y
          : Math.sqrt(y);
        if (!dbl) v = Math.fround(v);
        if (normal(v, min)) {
          if (dbl) r.f64[ro + i] = v;
          else r.f32[ro + i] = v;
          continue;
        }
      }
    }
    if (dbl) r.u64[ro + i] = laneOp(sf.F64, env, op, a.u64[ao + i], b.u64[bo + i]);
    else r.u32[ro + i] = Number(laneOp(sf.F32, env, op, BigInt(a.u32[ao + i]), BigInt(b.u32[bo + i])));
  }
}

const fastTmp = new Float64Array(4);

/**
 * The common case in place: every lane has normal operands and a normal result in round-to-nearest with PE
 * already set, so nothing but the (sticky) precision flag could change. False (nothing written): take the
 * exact path.
 */
function fastLanes(x: Lanes, xo: number, b: Lanes, dbl: boolean, op: number, n: number): boolean {
  const min = dbl ? MIN64 : MIN32;
  for (let i = 0; i < n; i++) {
    const p = dbl ? x.f64[xo + i] : x.f32[xo + i], q = dbl ? b.f64[i] : b.f32[i];
    if ((op !== SQRT && !normal(p, min)) || !normal(q, min)) return false;
    let v = op === ADD ? p + q : op === SUB ? p - q : op === MUL ? p * q : op === DIV ? p / q : Math.sqrt(q);
    if (!dbl) v = Math.fround(v);
    if (!normal(v, min)) return false;
    fastTmp[i] = v;
  }
  for (let i = 0; i < n; i++) {
    if (dbl) x.f64[xo + i] = fastTmp[i];
    else x.f32[xo + i] = fastTmp[i];
  }
  return true;
}

/** CMPPS predicate (0-31) on a compare result (-1, 0, 1, 2 = unordered). */
export function cmpPred(pred: number, r: number): boolean {
  switch (pred & 15) {
    case 0:
      return r === 0;
    case 1:
      return r === -1;
    case 2:
      return r === -1 || r === 0;
    case 3:
      return r === 2;
    case 4:
      return r !== 0;
    case 5:
      return r !== -1;
    case 6:
      return r === 1 || r === 2;
    case 7:
      return r !== 2;
    case 8:
      return r === 0 || r === 2;
    case 9:
      return r === -1 || r === 2;
    case 10:
      return r !== 1;
    case 11:
      return false;
    case 12:
      return r === -1 || r === 1;
    case 13:
      return r === 0 || r === 1;
    case 14:
      return r === 1;
    default:
      return true;
  }
}

/** Whether predicate `pred` signals on QNaN operands. */
export function cmpSignals(pred: number): boolean {
  const s = [0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0][pred & 15] === 1;
  return pred & 16 ? !s : s;
}

/** Compare lanes: r[i] = all-ones when predicate holds. */
export function packedCmp(
  c: Cpu,
  dbl: boolean,
  pred: number,
  n: number,
  a: Lanes,
  ao: number,
  b: Lanes,
  bo: number,
  r: Lanes,
  ro: number,
): void {
  const env = xctx(c).env;
  const sig = cmpSignals(pred);
  for (let i = 0; i < n; i++) {
    const res = dbl
      ? sf.compare(sf.F64, env, a.u64[ao + i], b.u64[bo + i], sig)
      : sf.compare(sf.F32, env, BigInt(a.u32[ao + i]), BigInt(b.u32[bo + i]), sig);
    const t = cmpPred(pred, res);
    if (dbl) r.u64[ro + i] = t ? 0xffffffffffffffffn : 0n;
    else r.u32[ro + i] = t ? 0xffffffff : 0;
  }
}

/** Float lane → integer (32/64 bits) with MXCSR rounding or truncation. */
export function cvtToInt(c: Cpu, dbl: boolean, bits: bigint, ibits: number, trunc: boolean): bigint {
  const env = xctx(c).env;
  return sf.toInt(dbl ? sf.F64 : sf.F32, env, bits, ibits, trunc);
}

function copy(dst: Lanes, dOff: number, src: Lanes, sOff: number, n32: number): void {
  for (let i = 0; i < n32; i++) dst.i32[dOff + i] = src.i32[sOff + i];
}

/** MASKMOVDQU / VMASKMOVDQU: non-temporal byte-masked store of XMM `src` under mask XMM `mask` to DS:rDI. */
export function maskmov(it: Interp, src: number, mask: number): void {
  const c = it.c;
  const x = xctx(c).x;
  const di = it.adsz === 8 ? c.regNum(7) : it.adsz === 4 ? c.r[7] >>> 0 : c.r[7] & 0xffff;
  const la = it.lin(3, di);
  for (let i = 0; i < 16; i++) if (x.u8[mask * 16 + i] & 0x80) c.wr8(la + i, x.u8[src * 16 + i]);
}

/**
 * RCPPS/RSQRTPS lane (no MXCSR flags; hardware returns a 12-bit approximation, this returns the correctly
 * rounded value, which is within the architectural bound |rel err| <= 1.5 * 2^-12). Denormal inputs and
 * tiny results are flushed to zero, as on hardware.
 */
export function rcpLane(x: number, sqrt: boolean): number {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  if (Number.isNaN(x)) return new Float32Array(new Uint32Array([bits | 0x400000]).buffer)[0];
  const ax = Math.abs(x);
  const z = ax < MIN32; // zero or denormal
  if (sqrt) {
    if (z) return bits >>> 31 ? -Infinity : Infinity;
    if (x < 0) return new Float32Array(new Uint32Array([0xffc00000]).buffer)[0];
    return Math.fround(1 / Math.sqrt(x));
  }
  if (z) return bits >>> 31 ? -Infinity : Infinity;
  const r = Math.fround(1 / x);
  return Math.abs(r) < MIN32 ? (r < 0 ? -0 : 0) : r;
}

/**
 * The legacy-encoded SSE FP instructions (ModRM decoded; an imm8 for C2 still to fetch). False: not one of
 * them (the caller continues with its own table).
 */
export function execSseFp(it: Interp, b: number): boolean {
  const c = it.c;
  const p = it.pfx;
  const X = xctx(c);
  const { x, s, r, env } = X;
  const d = it.reg * 4;
  const dbl = p === 0x66 || p === 0xf2;
  const scalar = p === 0xf2 || p === 0xf3;
  switch (b) {
    case 0x51:
    case 0x58:
    case 0x59:
    case 0x5c:
    case 0x5d:
    case 0x5e:
    case 0x5f: {
      const op = b === 0x51
        ? SQRT
        : b === 0x58
        ? ADD
        : b === 0x59
        ? MUL
        : b === 0x5c
        ? SUB
        : b === 0x5d
        ? MIN
        : b === 0x5e
        ? DIV
        : MAX;
      loadRm(it, s, scalar ? (dbl ? 8 : 4) : 16, true);
      const n = scalar ? 1 : dbl ? 2 : 4;
      if (op !== MIN && op !== MAX && fastOk(c.mxcsr) && fastLanes(x, dbl ? d / 2 : d, s, dbl, op, n)) {
        return true;
      }
      env.load(c.mxcsr);
      copy(r, 0, x, d, 4);
      packedOp(c, dbl, op, n, x, dbl ? d / 2 : d, s, 0, r, 0);
      commitFlags(c, env);
      copy(x, d, r, 0, 4);
      return true;
    }
    case 0x52:
    case 0x53: { // RSQRTPS/SS, RCPPS/SS
      if (p !== 0 && p !== 0xf3) return false;
      loadRm(it, s, p ? 4 : 16, true);
      for (let i = 0; i < (p ? 1 : 4); i++) x.f32[d + i] = rcpLane(s.f32[i], b === 0x52);
      return true;
    }
    case 0xc2: {
      loadRm(it, s, scalar ? (dbl ? 8 : 4) : 16, true);
      const pred = c.fetch8() & 7;
      env.load(c.mxcsr);
      copy(r, 0, x, d, 4);
      packedCmp(c, dbl, pred, scalar ? 1 : dbl ? 2 : 4, x, dbl ? d / 2 : d, s, 0, r, 0);
      commitFlags(c, env);
      copy(x, d, r, 0, 4);
      return true;
    }
    case 0x2e:
    case 0x2f: {
      if (p !== 0 && p !== 0x66) return false;
      const dd = p === 0x66;
      loadRm(it, s, dd ? 8 : 4, false);
      env.load(c.mxcsr);
      const res = dd
        ? sf.compare(sf.F64, env, x.u64[d / 2], s.u64[0], b === 0x2f)
        : sf.compare(sf.F32, env, BigInt(x.u32[d]), BigInt(s.u32[0]), b === 0x2f);
      commitFlags(c, env);
      const f = res === 2 ? F_ZF | F_PF | F_CF : res < 0 ? F_CF : res > 0 ? 0 : F_ZF;
      c.ccOp = CC_EAGER;
      c.flags = (c.flags & ~(F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)) | f;
      return true;
    }
    case 0x2a: {
      if (!scalar) return false; // CVTPI2PS/PD (MMX)
      let v: bigint;
      if (it.opsz === 8) {
        const lo = it.rdE(8);
        v = BigInt.asIntN(64, (BigInt(c.hi >>> 0) << 32n) | BigInt(lo >>> 0));
      } else v = BigInt(it.rdE(4) | 0);
      env.load(c.mxcsr);
      const res = sf.fromInt(dbl ? sf.F64 : sf.F32, env, v);
      commitFlags(c, env);
      if (dbl) x.u64[d / 2] = res;
      else x.u32[d] = Number(res);
      return true;
    }
    case 0x2c:
    case 0x2d: {
      if (!scalar) return false; // CVT(T)PS2PI (MMX)
      loadRm(it, s, dbl ? 8 : 4, false);
      env.load(c.mxcsr);
      const sz = it.opsz === 8 ? 8 : 4;
      const res = cvtToInt(c, dbl, dbl ? s.u64[0] : BigInt(s.u32[0]), sz * 8, b === 0x2c);
      commitFlags(c, env);
      c.setReg(sz, it.reg, Number(res & 0xffffffffn) | 0, Number(res >> 32n) | 0);
      return true;
    }
    case 0x5a: {
      env.load(c.mxcsr);
      if (p === 0xf3 || p === 0xf2) {
        loadRm(it, s, p === 0xf2 ? 8 : 4, false);
        if (p === 0xf3) {
          const v = sf.convert(sf.F32, sf.F64, env, BigInt(s.u32[0]));
          commitFlags(c, env);
          x.u64[d / 2] = v;
        } else {
          const v = sf.convert(sf.F64, sf.F32, env, s.u64[0]);
          commitFlags(c, env);
          x.u32[d] = Number(v);
        }
        return true;
      }
      loadRm(it, s, p === 0x66 ? 16 : 8, p === 0x66);
      if (p === 0x66) { // CVTPD2PS
        for (let i = 0; i < 2; i++) r.u32[i] = Number(sf.convert(sf.F64, sf.F32, env, s.u64[i]));
        r.u32[2] = r.u32[3] = 0;
      } else { // CVTPS2PD
        for (let i = 0; i < 2; i++) r.u64[i] = sf.convert(sf.F32, sf.F64, env, BigInt(s.u32[i]));
      }
      commitFlags(c, env);
      copy(x, d, r, 0, 4);
      return true;
    }
    case 0x5b: {
      if (p === 0xf2) return false;
      loadRm(it, s, 16, true);
      env.load(c.mxcsr);
      for (let i = 0; i < 4; i++) {
        if (p === 0) r.u32[i] = Number(sf.fromInt(sf.F32, env, BigInt(s.i32[i]))); // CVTDQ2PS
        else r.u32[i] = Number(cvtToInt(c, false, BigInt(s.u32[i]), 32, p === 0xf3)); // CVT(T)PS2DQ
      }
      commitFlags(c, env);
      copy(x, d, r, 0, 4);
      return true;
    }
    case 0xe6: {
      if (p === 0) return false;
      env.load(c.mxcsr);
      if (p === 0xf3) { // CVTDQ2PD
        loadRm(it, s, 8, false);
        for (let i = 0; i < 2; i++) r.u64[i] = sf.fromInt(sf.F64, env, BigInt(s.i32[i]));
      } else { // 66: CVTTPD2DQ, F2: CVTPD2DQ
        loadRm(it, s, 16, true);
        for (let i = 0; i < 2; i++) r.u32[i] = Number(cvtToInt(c, true, s.u64[i], 32, p === 0x66));
        r.u32[2] = r.u32[3] = 0;
      }
      commitFlags(c, env);
      copy(x, d, r, 0, 4);
      return true;
    }
    case 0xd0:
    case 0x7c:
    case 0x7d: {
      if (p !== 0x66 && p !== 0xf2) return false;
      if (!c.cpuidModel.has("pni")) c.ud();
      loadRm(it, s, 16, true);
      env.load(c.mxcsr);
      const dd = p === 0x66;
      const n = dd ? 2 : 4;
      const xo = dd ? d / 2 : d;
      const t = X.t;
      if (b === 0xd0) { // ADDSUB: even lanes subtract, odd lanes add
        for (let i = 0; i < n; i++) packedOp(c, dd, i & 1 ? ADD : SUB, 1, x, xo + i, s, i, r, i);
      } else { // HADD/HSUB: pairs of the destination, then pairs of the source
        const op = b === 0x7c ? ADD : SUB;
        for (let i = 0; i < n; i++) {
          const src = i < n / 2 ? x : s, so = i < n / 2 ? xo : 0, k = (i % (n / 2)) * 2;
          if (dd) {
            t.u64[0] = src.u64[so + k];
            t.u64[1] = src.u64[so + k + 1];
          } else {
            t.u32[0] = src.u32[so + k];
            t.u32[1] = src.u32[so + k + 1];
          }
          packedOp(c, dd, op, 1, t, 0, t, 1, r, i);
        }
      }
      commitFlags(c, env);
      copy(x, d, r, 0, 4);
      return true;
    }
    case 0x12:
    case 0x16: {
      if (p !== 0xf3 && !(p === 0xf2 && b === 0x12)) return false;
      if (!c.cpuidModel.has("pni")) c.ud();
      if (p === 0xf2) { // MOVDDUP
        loadRm(it, s, 8, false);
        r.i32[0] = r.i32[2] = s.i32[0];
        r.i32[1] = r.i32[3] = s.i32[1];
      } else { // MOVSLDUP / MOVSHDUP
        loadRm(it, s, 16, true);
        const o = b === 0x16 ? 1 : 0;
        r.i32[0] = r.i32[1] = s.i32[o];
        r.i32[2] = r.i32[3] = s.i32[2 + o];
      }
      copy(x, d, r, 0, 4);
      return true;
    }
    case 0xf7: { // MASKMOVDQU: bytes of xmm(reg) whose mask byte has bit 7 set, to DS:rDI
      if (p !== 0x66 || !it.isReg) return false;
      maskmov(it, it.reg, it.rm);
      return true;
    }
    case 0xf0: {
      if (p !== 0xf2) return false;
      if (!c.cpuidModel.has("pni")) c.ud();
      if (it.isReg) c.ud(); // LDDQU
      loadMem(c, s, it.la, 16, false);
      copy(x, d, s, 0, 4);
      return true;
    }
  }
  return false;
}
