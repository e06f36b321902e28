/**
 * IEEE 754 binary32/binary64 arithmetic with x86 SSE semantics (SDM vol. 1 §4.8, §11.5): MXCSR rounding
 * control, exception flags (IE DE ZE OE UE PE), DAZ and FTZ, tininess after rounding, the x86 NaN rules
 * (SNaN quieting, first source's NaN wins, default NaN 0xFFC00000 / 0xFFF8000000000000 for invalid results),
 * integer indefinite for failed conversions. Values travel as raw bits (bigint) so NaN payloads survive; the
 * arithmetic is exact on bigints (value = m * 2^e) followed by one rounding. Callers use the fast paths in
 * ssefp.ts for the common case and come here for everything else.
 * @module
 */

/** Exception flag bits (MXCSR[5:0]). */
export const IE = 1, DE = 2, ZE = 4, OE = 8, UE = 0x10, PE = 0x20;

/** A binary floating-point format. */
export interface Fmt {
  /** Exponent and fraction widths. */
  eb: number;
  mb: number;
  bits: number;
}
export const F32: Fmt = { eb: 8, mb: 23, bits: 32 };
export const F64: Fmt = { eb: 11, mb: 52, bits: 64 };

/** Rounding environment of one instruction; `flags` accumulates. */
export class FpEnv {
  flags = 0;
  rc = 0;
  daz = false;
  ftz = false;
  /** Underflow masked (FTZ applies only then; UE also needs inexact then). */
  um = true;
  load(mxcsr: number): this {
    this.flags = 0;
    this.rc = (mxcsr >> 13) & 3;
    this.daz = (mxcsr & 0x40) !== 0;
    this.ftz = (mxcsr & 0x8000) !== 0;
    this.um = (mxcsr & 0x800) !== 0;
    return this;
  }
}

const ZERO = 0, SUB = 1, NORM = 2, INF = 3, QNAN = 4, SNAN = 5;

/** An unpacked operand: value (-1)^sign * m * 2^e for finite classes. */
interface Un {
  cls: number;
  sign: number;
  m: bigint;
  e: number;
}

function bias(f: Fmt): number {
  return (1 << (f.eb - 1)) - 1;
}

/** Unpack raw bits; DAZ turns denormals into zeros, else reading a denormal as an arithmetic input sets DE. */
export function unpack(f: Fmt, env: FpEnv, x: bigint, arith = true): Un {
  const sign = Number(x >> BigInt(f.bits - 1)) & 1;
  const ex = Number((x >> BigInt(f.mb)) & BigInt((1 << f.eb) - 1));
  const fr = x & ((1n << BigInt(f.mb)) - 1n);
  const emax = (1 << f.eb) - 1;
  if (ex === emax) {
    if (fr === 0n) return { cls: INF, sign, m: 0n, e: 0 };
    return { cls: (fr >> BigInt(f.mb - 1)) & 1n ? QNAN : SNAN, sign, m: fr, e: 0 };
  }
  if (ex === 0) {
    if (fr === 0n) return { cls: ZERO, sign, m: 0n, e: 0 };
    if (env.daz) return { cls: ZERO, sign, m: 0n, e: 0 };
    if (arith) env.flags |= DE;
    return { cls: SUB, sign, m: fr, e: 1 - bias(f) - f.mb };
  }
  return { cls: NORM, sign, m: fr | (1n << BigInt(f.mb)), e: ex - bias(f) - f.mb };
}

export function isNaNBits(f: Fmt, x: bigint): boolean {
  const emax = BigInt((1 << f.eb) - 1);
  return ((x >> BigInt(f.mb)) & emax) === emax && (x & ((1n << BigInt(f.mb)) - 1n)) !== 0n;
}

export function isSNaNBits(f: Fmt, x: bigint): boolean {
  return isNaNBits(f, x) && ((x >> BigInt(f.mb - 1)) & 1n) === 0n;
}

export function quiet(f: Fmt, x: bigint): bigint {
  return x | (1n << BigInt(f.mb - 1));
}

/** The default NaN (QNaN floating-point indefinite). */
export function defaultNaN(f: Fmt): bigint {
  return ((1n << BigInt(f.eb + 2)) - 1n) << BigInt(f.mb - 1);
}

function infBits(f: Fmt, sign: number): bigint {
  return (BigInt(sign) << BigInt(f.bits - 1)) | (BigInt((1 << f.eb) - 1) << BigInt(f.mb));
}

function zeroBits(f: Fmt, sign: number): bigint {
  return BigInt(sign) << BigInt(f.bits - 1);
}

function bitlen(m: bigint): number {
  return m === 0n ? 0 : m.toString(2).length;
}

/** Shift right by n with round-to-nearest-even/directed rounding info: returns [q, inexact, roundUp]. */
function shiftRound(m: bigint, n: number, sticky: boolean, rc: number, sign: number): [bigint, boolean] {
  if (n <= 0) return [m << BigInt(-n), sticky];
  const q = m >> BigInt(n);
  const rem = m - (q << BigInt(n));
  const half = 1n << BigInt(n - 1);
  const inexact = rem !== 0n || sticky;
  let up = false;
  if (inexact) {
    if (rc === 0) up = rem > half || (rem === half && (sticky || (q & 1n) === 1n));
    else if (rc === 1) up = sign === 1;
    else if (rc === 2) up = sign === 0;
  }
  return [up ? q + 1n : q, inexact];
}

/** Round sign * m * 2^e (+ sticky: nonzero bits below m) to format f under env; returns the bits. */
export function round(f: Fmt, env: FpEnv, sign: number, m: bigint, e: number, sticky: boolean): bigint {
  const p = f.mb + 1;
  const b = bias(f);
  const emin = 1 - b;
  const n = bitlen(m);
  const E = e + n - 1; // exponent of the leading bit
  // Tininess after rounding: round to p bits with an unbounded exponent.
  const [mu] = shiftRound(m, n - p, sticky, env.rc, sign);
  const eu = E + (bitlen(mu) > p ? 1 : 0);
  const tiny = eu < emin;
  const te = Math.max(E - f.mb, emin - f.mb); // exponent of the result's last bit
  let [q, inexact] = shiftRound(m, te - e, sticky, env.rc, sign);
  let t = te;
  if (bitlen(q) > p) {
    q >>= 1n;
    t++;
  }
  if (tiny) {
    if (env.ftz && env.um) {
      env.flags |= UE | PE;
      return zeroBits(f, sign);
    }
    if (inexact || !env.um) env.flags |= UE;
  }
  const emaxU = (1 << f.eb) - 2 - b; // largest unbiased exponent
  if (q !== 0n && t + bitlen(q) - 1 > emaxU) {
    env.flags |= OE | PE;
    const toInf = env.rc === 0 || (env.rc === 1 && sign === 1) || (env.rc === 2 && sign === 0);
    if (toInf) return infBits(f, sign);
    return (BigInt(sign) << BigInt(f.bits - 1)) | (BigInt((1 << f.eb) - 2) << BigInt(f.mb)) |
      ((1n << BigInt(f.mb)) - 1n);
  }
  if (inexact) env.flags |= PE;
  if (q === 0n) return zeroBits(f, sign);
  const s = BigInt(sign) << BigInt(f.bits - 1);
  if (bitlen(q) === p) return s | (BigInt(t + b + f.mb) << BigInt(f.mb)) | (q - (1n << BigInt(f.mb)));
  return s | q; // subnormal
}

/** NaN result of a two-operand operation where at least one is a NaN (x86: first source's NaN wins). */
function nanOf(f: Fmt, env: FpEnv, ua: Un, a: bigint, ub: Un | null, b: bigint, f0: number): bigint {
  env.flags = f0; // a NaN operand takes priority over this lane's denormal-operand exception
  if (ua.cls === SNAN || (ub !== null && ub.cls === SNAN)) env.flags |= IE;
  if (ua.cls >= QNAN) return quiet(f, a);
  return quiet(f, b);
}

export const OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3;

/** a op b for OP_ADD/SUB/MUL/DIV. */
export function arith(f: Fmt, env: FpEnv, op: number, a: bigint, b: bigint): bigint {
  const f0 = env.flags;
  const ua = unpack(f, env, a), ub = unpack(f, env, b);
  if (ua.cls >= QNAN || ub.cls >= QNAN) {
    // Denormal flags do not count when a NaN is involved? They do on hardware: keep DE as collected.
    return nanOf(f, env, ua, a, ub, b, f0);
  }
  let sb = ub.sign;
  if (op === OP_SUB) sb ^= 1;
  if (op === OP_ADD || op === OP_SUB) {
    if (ua.cls === INF || ub.cls === INF) {
      if (ua.cls === INF && ub.cls === INF && ua.sign !== sb) return invalid(f, env);
      return infBits(f, ua.cls === INF ? ua.sign : sb);
    }
    if (ua.cls === ZERO && ub.cls === ZERO) {
      const s = ua.sign === sb ? ua.sign : env.rc === 1 ? 1 : 0;
      return zeroBits(f, s);
    }
    const e = Math.min(ua.cls === ZERO ? ub.e : ua.e, ub.cls === ZERO ? ua.e : ub.e);
    const va = (ua.m << BigInt(ua.cls === ZERO ? 0 : ua.e - e)) * (ua.sign ? -1n : 1n);
    const vb = (ub.m << BigInt(ub.cls === ZERO ? 0 : ub.e - e)) * (sb ? -1n : 1n);
    const sum = va + vb;
    if (sum === 0n) return zeroBits(f, env.rc === 1 ? 1 : 0);
    return round(f, env, sum < 0n ? 1 : 0, sum < 0n ? -sum : sum, e, false);
  }
  const sign = ua.sign ^ ub.sign;
  if (op === OP_MUL) {
    if ((ua.cls === INF && ub.cls === ZERO) || (ua.cls === ZERO && ub.cls === INF)) return invalid(f, env);
    if (ua.cls === INF || ub.cls === INF) return infBits(f, sign);
    if (ua.cls === ZERO || ub.cls === ZERO) return zeroBits(f, sign);
    return round(f, env, sign, ua.m * ub.m, ua.e + ub.e, false);
  }
  // OP_DIV
  if (ua.cls === INF && ub.cls === INF) return invalid(f, env);
  if (ua.cls === ZERO && ub.cls === ZERO) return invalid(f, env);
  if (ua.cls === INF) return infBits(f, sign);
  if (ub.cls === INF) return zeroBits(f, sign);
  if (ub.cls === ZERO) {
    env.flags |= ZE;
    return infBits(f, sign);
  }
  if (ua.cls === ZERO) return zeroBits(f, sign);
  const k = f.mb + 4 + bitlen(ub.m) - bitlen(ua.m) + 1;
  const num = ua.m << BigInt(Math.max(k, 0));
  const q = num / ub.m;
  return round(f, env, sign, q, ua.e - ub.e - Math.max(k, 0), q * ub.m !== num);
}

function invalid(f: Fmt, env: FpEnv): bigint {
  env.flags |= IE;
  return defaultNaN(f);
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt((bitlen(n) >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

export function sqrt(f: Fmt, env: FpEnv, a: bigint): bigint {
  const f0 = env.flags;
  const ua = unpack(f, env, a);
  if (ua.cls >= QNAN) return nanOf(f, env, ua, a, null, 0n, f0);
  if (ua.cls === ZERO) return zeroBits(f, ua.sign);
  if (ua.sign) {
    env.flags = f0; // invalid takes priority over the denormal-operand exception
    return invalid(f, env);
  }
  if (ua.cls === INF) return a;
  let m = ua.m, e = ua.e;
  if (e & 1) {
    m <<= 1n;
    e--;
  }
  const want = 2 * (f.mb + 4);
  let k = Math.max(0, want - bitlen(m));
  if (k & 1) k++;
  const n = m << BigInt(k);
  const s = isqrt(n);
  return round(f, env, 0, s, (e - k) / 2, s * s !== n);
}

/** Fused a * b + c (FMA3), one rounding; `negProd`/`negC` flip signs (VFNMADD, VFMSUB...). */
export function fma(
  f: Fmt,
  env: FpEnv,
  a: bigint,
  b: bigint,
  c: bigint,
  negProd: boolean,
  negC: boolean,
): bigint {
  const f0 = env.flags;
  const ua = unpack(f, env, a), ub = unpack(f, env, b), uc = unpack(f, env, c);
  if (ua.cls >= QNAN || ub.cls >= QNAN || uc.cls >= QNAN) {
    env.flags = f0;
    if (ua.cls === SNAN || ub.cls === SNAN || uc.cls === SNAN) env.flags |= IE;
    if ((ua.cls === INF && ub.cls === ZERO) || (ua.cls === ZERO && ub.cls === INF)) env.flags |= IE;
    if (ua.cls >= QNAN) return quiet(f, a);
    if (ub.cls >= QNAN) return quiet(f, b);
    return quiet(f, c);
  }
  const ps = ua.sign ^ ub.sign ^ (negProd ? 1 : 0);
  const cs = uc.sign ^ (negC ? 1 : 0);
  if ((ua.cls === INF && ub.cls === ZERO) || (ua.cls === ZERO && ub.cls === INF)) return invalid(f, env);
  const pInf = ua.cls === INF || ub.cls === INF;
  if (pInf) {
    if (uc.cls === INF && cs !== ps) return invalid(f, env);
    return infBits(f, ps);
  }
  if (uc.cls === INF) return infBits(f, cs);
  const pZero = ua.cls === ZERO || ub.cls === ZERO;
  if (pZero && uc.cls === ZERO) return zeroBits(f, ps === cs ? ps : env.rc === 1 ? 1 : 0);
  if (pZero) return round(f, env, cs, uc.m, uc.e, false);
  const pm = ua.m * ub.m, pe = ua.e + ub.e;
  if (uc.cls === ZERO) return round(f, env, ps, pm, pe, false);
  const e = Math.min(pe, uc.e);
  const sum = (pm << BigInt(pe - e)) * (ps ? -1n : 1n) + (uc.m << BigInt(uc.e - e)) * (cs ? -1n : 1n);
  if (sum === 0n) return zeroBits(f, env.rc === 1 ? 1 : 0);
  return round(f, env, sum < 0n ? 1 : 0, sum < 0n ? -sum : sum, e, false);
}

/**
 * MINPS/MAXPS semantics: either operand a NaN (even QNaN) → IE and the second operand; both zero → the
 * second operand; else the smaller/larger.
 */
export function minmax(f: Fmt, env: FpEnv, a: bigint, b: bigint, max: boolean): bigint {
  const f0 = env.flags;
  const ua = unpack(f, env, a), ub = unpack(f, env, b);
  if (ua.cls >= QNAN || ub.cls >= QNAN) {
    env.flags = f0 | IE;
    return b;
  }
  const c = cmpUn(ua, ub);
  // With DAZ a denormal operand is returned as the zero it was read as.
  const pick = c === 0 || !(max ? c > 0 : c < 0) ? ub : ua;
  if (pick.cls === ZERO) return zeroBits(f, pick.sign);
  return pick === ua ? a : b;
}

/** Compare two non-NaN unpacked values: -1, 0, 1. */
function cmpUn(a: Un, b: Un): number {
  const va = a.cls === ZERO ? 0 : a.sign ? -1 : 1;
  const vb = b.cls === ZERO ? 0 : b.sign ? -1 : 1;
  if (va !== vb || va === 0) return va < vb ? -1 : va > vb ? 1 : 0;
  // Same nonzero sign: compare magnitudes.
  let mag: number;
  if (a.cls === INF || b.cls === INF) mag = a.cls === b.cls ? 0 : a.cls === INF ? 1 : -1;
  else {
    const e = Math.min(a.e, b.e);
    const ma = a.m << BigInt(a.e - e), mb = b.m << BigInt(b.e - e);
    mag = ma < mb ? -1 : ma > mb ? 1 : 0;
  }
  return va > 0 ? mag : -mag;
}

/**
 * Compare for CMPPS/COMISS: returns -1, 0, 1, or 2 (unordered). `signalQ`: QNaN operands raise IE too
 * (COMISS, the LT/LE predicates); SNaN always does.
 */
export function compare(f: Fmt, env: FpEnv, a: bigint, b: bigint, signalQ: boolean): number {
  const f0 = env.flags;
  const ua = unpack(f, env, a), ub = unpack(f, env, b);
  if (ua.cls >= QNAN || ub.cls >= QNAN) {
    env.flags = f0;
    if (signalQ || ua.cls === SNAN || ub.cls === SNAN) env.flags |= IE;
    return 2;
  }
  return cmpUn(ua, ub);
}

/** Float → float (CVTSS2SD, CVTSD2SS, ...). */
export function convert(from: Fmt, to: Fmt, env: FpEnv, a: bigint): bigint {
  const ua = unpack(from, env, a);
  if (ua.cls >= QNAN) {
    if (ua.cls === SNAN) env.flags |= IE;
    const shift = to.mb - from.mb;
    const fr = shift >= 0 ? ua.m << BigInt(shift) : ua.m >> BigInt(-shift);
    return quiet(to, infBits(to, ua.sign) | fr);
  }
  if (ua.cls === INF) return infBits(to, ua.sign);
  if (ua.cls === ZERO) return zeroBits(to, ua.sign);
  return round(to, env, ua.sign, ua.m, ua.e, false);
}

/** Integer (signed bigint) → float. */
export function fromInt(to: Fmt, env: FpEnv, v: bigint): bigint {
  if (v === 0n) return 0n;
  return round(to, env, v < 0n ? 1 : 0, v < 0n ? -v : v, 0, false);
}

/**
 * Float → signed integer of `bits` (32/64): rounding by env.rc, or truncation; NaN/out of range → IE and the
 * integer indefinite (1 << (bits-1)). Returns an unsigned bigint.
 */
export function toInt(f: Fmt, env: FpEnv, a: bigint, bits: number, trunc: boolean): bigint {
  const ua = unpack(f, env, a, false);
  const indef = 1n << BigInt(bits - 1);
  if (ua.cls >= INF) {
    env.flags |= IE;
    return indef;
  }
  if (ua.cls === ZERO) return 0n;
  const rc = trunc ? 3 : env.rc;
  const [q, inexact] = shiftRound(ua.m, -ua.e, false, rc, ua.sign);
  const v = ua.sign ? -q : q;
  if (v >= indef || v < -indef) {
    env.flags |= IE;
    return indef;
  }
  if (inexact) env.flags |= PE;
  return BigInt.asUintN(bits, v);
}

/** ROUNDSS/ROUNDPS: round to an integral value in format f with `rc` (0-3); `precise` false suppresses PE. */
export function roundInt(f: Fmt, env: FpEnv, a: bigint, rc: number, suppressPE: boolean): bigint {
  const ua = unpack(f, env, a, false); // no DE for ROUNDxx; DAZ still reads denormals as zero
  if (ua.cls >= QNAN) {
    if (ua.cls === SNAN) env.flags |= IE;
    return quiet(f, a);
  }
  if (ua.cls === ZERO) return zeroBits(f, ua.sign);
  if (ua.cls === INF || ua.e >= 0) return a;
  const [q, inexact] = shiftRound(ua.m, -ua.e, false, rc, ua.sign);
  if (inexact && !suppressPE) env.flags |= PE;
  if (q === 0n) return zeroBits(f, ua.sign);
  const e2 = new FpEnv();
  return round(f, e2, ua.sign, q, 0, false);
}
