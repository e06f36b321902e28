/**
 * 80-bit extended precision softfloat for the x87 (SDM vol. 1 ch. 4 and 8): classification of the
 * extended encodings (including the unsupported unnormals, pseudo-NaNs and pseudo-infinities, and the
 * pseudo-denormals), rounding under the x87 rounding and precision control with the x87 underflow and
 * overflow responses (masked and unmasked, with the 2^±24576 bias), and the exact basic operations.
 * Significands are bigint (x87 is not on the boot hot path); every operation is exact before its one rounding.
 * @module
 */

/** Status word exception bits (also the CW mask bits). */
export const IE = 0x1, DE = 0x2, ZE = 0x4, OE = 0x8, UE = 0x10, PE = 0x20, SF = 0x40;

/** Operand classes. */
export const K_ZERO = 0, K_NORM = 1, K_DEN = 2, K_INF = 3, K_QNAN = 4, K_SNAN = 5, K_BAD = 6;

const B63 = 1n << 63n;
const B62 = 1n << 62n;
const M64 = (1n << 64n) - 1n;
/** Significand of the QNaN indefinite. */
export const INDEF_M = 0xc000000000000000n;
/** LSB exponent of an extended denormal (2^-16445). */
const EXT_LSB = -16445;
/** Unbiased exponent of the smallest extended normal. */
const EXT_EMIN = -16382;
const EXT_EMAX = 16383;
/** Tininess is detected after rounding (with unbounded exponent), as measured on the host (x87_test.ts). */
const TINY_AFTER = true;

/** Working state of one x87 operation: control inputs, exceptions raised and the result. */
export class Fx {
  /** Rounding control (0 nearest, 1 down, 2 up, 3 toward zero). */
  rc = 0;
  /** Significand precision from PC (24, 53, 64); conversions and most ops use 64. */
  prec = 64;
  /** CW mask bits (1 = masked). */
  masks = 0x3f;
  /** Exceptions raised so far. */
  exc = 0;
  /** C1 after rounding: the rounded result is larger in magnitude than the exact one. */
  up = false;
  /** Result sign, biased exponent (0..0x7fff) and 64-bit significand. */
  s = 0;
  e = 0;
  m = 0n;
  /** Scratch from rounding: inexact. */
  inex = false;
  /** roundCore output: rounded integer significand and the exponent of its LSB. */
  q = 0n;
  qe = 0;

  /** Reset the per-operation outputs. */
  begin(cw: number, usePc: boolean): void {
    this.rc = (cw >> 10) & 3;
    const pc = (cw >> 8) & 3;
    this.prec = !usePc ? 64 : pc === 0 ? 24 : pc === 2 ? 53 : 64;
    this.masks = cw & 0x3f;
    this.exc = 0;
    this.up = false;
  }

  /** Set the result to the QNaN indefinite after raising IE. */
  invalid(): void {
    this.exc |= IE;
    this.s = 1;
    this.e = 0x7fff;
    this.m = INDEF_M;
  }

  set(s: number, e: number, m: bigint): void {
    this.s = s;
    this.e = e;
    this.m = m;
  }
}

/** Class of an extended value (`e` biased exponent, `m` significand with explicit integer bit). */
export function kind(e: number, m: bigint): number {
  if (e === 0x7fff) {
    if (m < B63) return K_BAD;
    if (m === B63) return K_INF;
    return m & B62 ? K_QNAN : K_SNAN;
  }
  if (e === 0) return m === 0n ? K_ZERO : K_DEN;
  return m >= B63 ? K_NORM : K_BAD;
}

/** Number of significant bits of a positive bigint. */
export function bitLen(v: bigint): number {
  if (v < 0x100000000n) return 32 - Math.clz32(Number(v));
  if (v < 0x10000000000000000n) return 64 - Math.clz32(Number(v >> 32n));
  if (v < 0x100000000000000000000000000000000n) return 64 + bitLen(v >> 64n);
  const h = v.toString(16);
  return (h.length - 1) * 4 + (32 - Math.clz32(parseInt(h[0], 16)));
}

/** LSB exponent of a finite extended value's significand. */
export function lsbExp(e: number): number {
  return (e === 0 ? 1 : e) - 16383 - 63;
}

/** M >> sh rounded per x.rc for sign s; sets x.inex and x.up. */
function shr(x: Fx, s: number, M: bigint, sh: number): bigint {
  if (sh <= 0) {
    x.inex = false;
    x.up = false;
    return sh === 0 ? M : M << BigInt(-sh);
  }
  const b = BigInt(sh);
  const q = M >> b;
  const r = M - (q << b);
  x.up = false;
  if (r === 0n) {
    x.inex = false;
    return q;
  }
  x.inex = true;
  let up: boolean;
  switch (x.rc) {
    case 0: {
      const half = 1n << (b - 1n);
      up = r > half || (r === half && (q & 1n) === 1n);
      break;
    }
    case 1:
      up = s === 1;
      break;
    case 2:
      up = s === 0;
      break;
    default:
      up = false;
  }
  x.up = up;
  return up ? q + 1n : q;
}

/** Result kinds of roundCore. */
export const R_ZERO = 0, R_FIN = 1, R_INF = 2, R_MAX = 3;

/**
 * Round the exact nonzero value s·M·2^E to `prec` bits in a format with normal exponents emin..emax and
 * denormal LSB `lsbMin` (null: unbounded below, for the unmasked-underflow response). Raises PE/UE/OE per
 * the masked responses (callers handle unmasked OE/UE). Leaves the rounded significand in x.q with LSB
 * exponent x.qe, or returns R_INF/R_MAX on masked overflow.
 */
export function roundCore(
  x: Fx,
  s: number,
  E: number,
  M: bigint,
  f: { prec: number; emin: number; emax: number; lsbMin: number; ueMasked: boolean; oeMasked: boolean },
): number {
  const n = bitLen(M);
  const ue = E + n - 1;
  let lsb = ue - (f.prec - 1);
  let tiny = ue < f.emin;
  if (tiny && TINY_AFTER && ue === f.emin - 1) {
    // Tiny after rounding unless rounding at full precision with unbounded exponent carries to 2^emin.
    const q = shr(x, s, M, lsb - E);
    tiny = bitLen(q) + lsb - 1 < f.emin;
  }
  if (f.ueMasked && lsb < f.lsbMin) lsb = f.lsbMin;
  const q = shr(x, s, M, lsb - E);
  if (x.inex) x.exc |= PE;
  if (tiny && (x.inex || !f.ueMasked)) x.exc |= UE;
  if (q === 0n) {
    x.q = 0n;
    x.qe = 0;
    return R_ZERO;
  }
  const ueF = lsb + bitLen(q) - 1;
  if (ueF > f.emax) {
    x.exc |= OE;
    if (f.oeMasked) {
      x.exc |= PE;
      const toInf = x.rc === 0 || (x.rc === 1 && s === 1) || (x.rc === 2 && s === 0);
      x.up = toInf;
      return toInf ? R_INF : R_MAX;
    }
  }
  x.q = q;
  x.qe = lsb;
  return R_FIN;
}

const EXT_FMT = { prec: 64, emin: EXT_EMIN, emax: EXT_EMAX, lsbMin: EXT_LSB, ueMasked: true, oeMasked: true };

/** Round s·M·2^E (M may be 0n: exact zero with sign s) into the x87 result with the current precision. */
export function roundExt(x: Fx, s: number, E: number, M: bigint, prec = x.prec): void {
  if (M === 0n) return x.set(s, 0, 0n);
  EXT_FMT.prec = prec;
  // Precision control also applies to tiny results: the rounding point is relative to 2^emin.
  EXT_FMT.lsbMin = EXT_EMIN - (prec - 1);
  EXT_FMT.ueMasked = (x.masks & UE) !== 0;
  EXT_FMT.oeMasked = (x.masks & OE) !== 0;
  const r = roundCore(x, s, E, M, EXT_FMT);
  if (r === R_ZERO) return x.set(s, 0, 0n);
  if (r === R_INF) return x.set(s, 0x7fff, B63);
  if (r === R_MAX) return x.set(s, 0x7ffe, (M64 >> BigInt(64 - prec)) << BigInt(64 - prec));
  const q = x.q;
  const qn = bitLen(q);
  let ueF = x.qe + qn - 1;
  if (ueF < EXT_EMIN && EXT_FMT.ueMasked) return x.set(s, 0, q << BigInt(x.qe - EXT_LSB));
  if (ueF < EXT_EMIN) ueF += 24576; // unmasked underflow: biased result
  else if (ueF > EXT_EMAX) ueF -= 24576; // unmasked overflow
  x.set(s, ueF + 16383, q << BigInt(64 - qn));
}

/** x87 NaN propagation for two operands (at least one NaN; SDM vol. 1 table 4-7). */
export function pickNaN(x: Fx, ka: number, as: number, am: bigint, kb: number, bs: number, bm: bigint): void {
  if (ka === K_SNAN || kb === K_SNAN) x.exc |= IE;
  const an = ka === K_QNAN || ka === K_SNAN, bn = kb === K_QNAN || kb === K_SNAN;
  let useA: boolean;
  if (an && bn && ka !== kb) useA = ka === K_QNAN; // a QNaN wins over an SNaN
  else if (an && bn) {
    const qa = am | B62, qb = bm | B62;
    useA = qa > qb || (qa === qb && as <= bs);
  } else useA = an;
  if (useA) x.set(as, 0x7fff, am | B62);
  else x.set(bs, 0x7fff, bm | B62);
}

/** Common operand checks of a two-operand operation; true when the result is already decided. */
function pre2(x: Fx, ka: number, as: number, am: bigint, kb: number, bs: number, bm: bigint): boolean {
  if (ka === K_BAD || kb === K_BAD) {
    x.invalid();
    return true;
  }
  if (ka >= K_QNAN || kb >= K_QNAN) {
    x.exc &= ~DE; // a NaN operand outranks a denormal one (from a memory operand's conversion)
    pickNaN(x, ka, as, am, kb, bs, bm);
    return true;
  }
  if (ka === K_DEN || kb === K_DEN) x.exc |= DE;
  return false;
}

/** a + b (sub: a - b). */
export function fadd(
  x: Fx,
  as: number,
  ae: number,
  am: bigint,
  bs: number,
  be: number,
  bm: bigint,
  sub: boolean,
): void {
  const ka = kind(ae, am), kb = kind(be, bm);
  if (pre2(x, ka, as, am, kb, bs, bm)) return;
  if (sub) bs ^= 1;
  if (ka === K_INF || kb === K_INF) {
    if (ka === K_INF && kb === K_INF && as !== bs) return x.invalid();
    return x.set(ka === K_INF ? as : bs, 0x7fff, B63);
  }
  if (ka === K_ZERO && kb === K_ZERO) return x.set(as === bs ? as : x.rc === 1 ? 1 : 0, 0, 0n);
  let Ea = lsbExp(ae), Eb = lsbExp(be);
  let Ma = am, Mb = bm;
  if (ka === K_ZERO) Ea = Eb;
  if (kb === K_ZERO) Eb = Ea;
  // A far smaller operand only matters as a sticky bit below the rounding point.
  if (Ea - Eb > 200 && Mb !== 0n) {
    Eb = Ea - 200;
    Mb = 1n;
  } else if (Eb - Ea > 200 && Ma !== 0n) {
    Ea = Eb - 200;
    Ma = 1n;
  }
  const E = Math.min(Ea, Eb);
  let va = Ma << BigInt(Ea - E), vb = Mb << BigInt(Eb - E);
  if (as) va = -va;
  if (bs) vb = -vb;
  const sum = va + vb;
  if (sum === 0n) return x.set(x.rc === 1 ? 1 : 0, 0, 0n);
  if (sum < 0n) roundExt(x, 1, E, -sum);
  else roundExt(x, 0, E, sum);
}

/** a × b. */
export function fmul(x: Fx, as: number, ae: number, am: bigint, bs: number, be: number, bm: bigint): void {
  const ka = kind(ae, am), kb = kind(be, bm);
  if (pre2(x, ka, as, am, kb, bs, bm)) return;
  const s = as ^ bs;
  if (ka === K_INF || kb === K_INF) {
    if (ka === K_ZERO || kb === K_ZERO) return x.invalid();
    return x.set(s, 0x7fff, B63);
  }
  if (ka === K_ZERO || kb === K_ZERO) return x.set(s, 0, 0n);
  roundExt(x, s, lsbExp(ae) + lsbExp(be), am * bm);
}

/** a / b. */
export function fdiv(x: Fx, as: number, ae: number, am: bigint, bs: number, be: number, bm: bigint): void {
  const ka = kind(ae, am), kb = kind(be, bm);
  if (pre2(x, ka, as, am, kb, bs, bm)) return;
  const s = as ^ bs;
  if (ka === K_INF) return kb === K_INF ? x.invalid() : x.set(s, 0x7fff, B63);
  if (kb === K_INF) return x.set(s, 0, 0n);
  if (kb === K_ZERO) {
    if (ka === K_ZERO) return x.invalid();
    x.exc = (x.exc & ~DE) | ZE; // a zero divisor is reported before a denormal dividend
    return x.set(s, 0x7fff, B63);
  }
  if (ka === K_ZERO) return x.set(s, 0, 0n);
  const k = 140;
  const num = am << BigInt(k);
  let q = num / bm;
  if (q * bm !== num) q = (q << 1n) | 1n;
  else q <<= 1n;
  roundExt(x, s, lsbExp(ae) - lsbExp(be) - k - 1, q);
}

/** Integer square root (floor) of a positive bigint. */
export function isqrt(v: bigint): bigint {
  if (v < 2n) return v;
  let r = 1n << BigInt((bitLen(v) >> 1) + 1);
  for (;;) {
    const n = (r + v / r) >> 1n;
    if (n >= r) return r;
    r = n;
  }
}

/** √a. */
export function fsqrt(x: Fx, as: number, ae: number, am: bigint): void {
  const k = kind(ae, am);
  if (k === K_BAD) return x.invalid();
  if (k >= K_QNAN) return pickNaN(x, k, as, am, K_ZERO, 0, 0n);
  if (k === K_ZERO) return x.set(as, 0, 0n);
  if (as) return x.invalid();
  if (k === K_INF) return x.set(0, 0x7fff, B63);
  if (k === K_DEN) x.exc |= DE;
  let E = lsbExp(ae);
  let M = am;
  if (E & 1) {
    E -= 1;
    M <<= 1n;
  }
  M <<= 140n;
  E -= 140;
  let r = isqrt(M);
  r = r * r === M ? r << 1n : (r << 1n) | 1n;
  roundExt(x, 0, E / 2 - 1, r);
}

/** Exact value of a finite operand as (M, E) in x.q / x.qe (M = 0 for zero). */
function exact(x: Fx, e: number, m: bigint): void {
  x.q = m;
  x.qe = lsbExp(e);
}

/**
 * FPREM (`ieee` false: truncating quotient) / FPREM1 (round-to-nearest quotient) of a by b. Returns the
 * condition bits to set: bit 0 C0, bit 1 C1, bit 2 C2, bit 3 C3 (-1 when the result is a special value).
 */
export function fprem(
  x: Fx,
  as: number,
  ae: number,
  am: bigint,
  bs: number,
  be: number,
  bm: bigint,
  ieee: boolean,
): number {
  const ka = kind(ae, am), kb = kind(be, bm);
  if ((ka === K_INF || kb === K_ZERO) && ka < K_QNAN && kb < K_QNAN) {
    x.invalid();
    return 0;
  }
  if (pre2(x, ka, as, am, kb, bs, bm)) return 0;
  if (kb === K_INF || ka === K_ZERO) {
    // a unchanged (a denormal a is normalised as a value).
    roundExt(x, as, lsbExp(ae), am, 64);
    if (ka === K_ZERO) x.set(as, 0, 0n);
    return 0;
  }
  exact(x, ae, am);
  let Ea = x.qe;
  const Ma = am;
  const Eb = lsbExp(be), Mb = bm;
  const ua = Ea + bitLen(Ma) - 1, ub = Eb + bitLen(Mb) - 1;
  const d = ua - ub;
  if (d >= 64) {
    // Partial remainder: reduce the exponent by 32..63 and report C2 (as the hardware does).
    const n = (d & 31) | 32;
    const sh = d - n; // divide by b·2^sh
    const EbS = Eb + sh;
    const E = Math.min(Ea, EbS);
    const va = Ma << BigInt(Ea - E), vb = Mb << BigInt(EbS - E);
    const q = va / vb;
    const r = va - q * vb;
    roundExt(x, as, E, r, 64);
    if (r === 0n) x.set(as, 0, 0n);
    return 4;
  }
  const E = Math.min(Ea, Eb);
  const va = Ma << BigInt(Ea - E), vb = Mb << BigInt(Eb - E);
  let q = va / vb;
  let r = va - q * vb;
  let s = as;
  if (ieee) {
    const r2 = r << 1n;
    if (r2 > vb || (r2 === vb && (q & 1n) === 1n)) {
      q += 1n;
      r = vb - r;
      s ^= 1;
    }
  }
  Ea = E;
  if (r === 0n) x.set(as, 0, 0n);
  else roundExt(x, s, Ea, r, 64);
  const qi = Number(q & 7n);
  return ((qi >> 2) & 1) | ((qi & 1) << 1) | ((qi >> 1 & 1) << 3);
}

/** Round a to an integral value with the current RC (FRNDINT). */
export function frndint(x: Fx, as: number, ae: number, am: bigint): void {
  const k = kind(ae, am);
  if (k === K_BAD) return x.invalid();
  if (k >= K_QNAN) return pickNaN(x, k, as, am, K_ZERO, 0, 0n);
  if (k === K_ZERO || k === K_INF) return x.set(as, ae, am);
  if (k === K_DEN) x.exc |= DE;
  const E = lsbExp(ae);
  if (E >= 0) return x.set(as, ae, am);
  const q = shr(x, as, am, -E);
  const up = x.up;
  if (x.inex) x.exc |= PE;
  if (q === 0n) return x.set(as, 0, 0n);
  roundExt(x, as, 0, q, 64);
  x.up = up;
}

/** Rounded integer of a finite value (for FIST/FBSTP): returns null when a is not finite. */
export function toInteger(x: Fx, as: number, ae: number, am: bigint, trunc: boolean): bigint | null {
  const k = kind(ae, am);
  if (k === K_BAD || k >= K_INF) return null;
  if (k === K_ZERO) return 0n;
  const E = lsbExp(ae);
  if (E >= 0) return E > 80 ? (as ? -(1n << 80n) : 1n << 80n) : (as ? -(am << BigInt(E)) : am << BigInt(E));
  const rc = x.rc;
  if (trunc) x.rc = 3;
  const q = shr(x, as, am, -E);
  x.rc = rc;
  if (x.inex) x.exc |= PE;
  return as ? -q : q;
}

/** Load an integer exactly. */
export function fromInteger(x: Fx, v: bigint): void {
  if (v === 0n) return x.set(0, 0, 0n);
  const s = v < 0n ? 1 : 0;
  roundExt(x, s, 0, s ? -v : v, 64);
}

/** FSCALE: a × 2^trunc(b). */
export function fscale(x: Fx, as: number, ae: number, am: bigint, bs: number, be: number, bm: bigint): void {
  const ka = kind(ae, am), kb = kind(be, bm);
  if (pre2(x, ka, as, am, kb, bs, bm)) return;
  if (kb === K_INF) {
    if (bs) {
      if (ka === K_INF) return x.invalid();
      return x.set(as, 0, 0n);
    }
    if (ka === K_ZERO) return x.invalid();
    return x.set(as, 0x7fff, B63);
  }
  if (ka === K_INF || ka === K_ZERO) return x.set(as, ae, am);
  let n = 0;
  const Eb = lsbExp(be);
  if (kb !== K_ZERO) {
    if (Eb >= 0) n = 1 << 20;
    else if (Eb > -64) n = Number(bm >> BigInt(-Eb));
    if (n > 1 << 20) n = 1 << 20;
    if (bs) n = -n;
  }
  roundExt(x, as, lsbExp(ae) + n, am, 64);
}

/** Compare a with b: returns 0 (a > b), 1 (a < b), 2 (equal), 3 (unordered); `quiet` raises IE only for SNaN. */
export function fcmp(
  x: Fx,
  as: number,
  ae: number,
  am: bigint,
  bs: number,
  be: number,
  bm: bigint,
  quiet: boolean,
): number {
  const ka = kind(ae, am), kb = kind(be, bm);
  if (ka === K_BAD || kb === K_BAD) {
    x.exc |= IE;
    return 3;
  }
  if (ka >= K_QNAN || kb >= K_QNAN) {
    if (!quiet || ka === K_SNAN || kb === K_SNAN) x.exc |= IE;
    return 3;
  }
  if (ka === K_DEN || kb === K_DEN) x.exc |= DE;
  const c = cmpVal(as, ae, am, ka, bs, be, bm, kb);
  return c === 0 ? 2 : c < 0 ? 1 : 0;
}

function cmpVal(
  as: number,
  ae: number,
  am: bigint,
  ka: number,
  bs: number,
  be: number,
  bm: bigint,
  kb: number,
): number {
  if (ka === K_ZERO && kb === K_ZERO) return 0;
  const sa = ka === K_ZERO ? 0 : as ? -1 : 1, sb = kb === K_ZERO ? 0 : bs ? -1 : 1;
  if (sa !== sb) return sa < sb ? -1 : 1;
  let mag: number;
  if (ka === K_INF || kb === K_INF) mag = ka === kb ? 0 : ka === K_INF ? 1 : -1;
  else {
    const Ea = lsbExp(ae), Eb = lsbExp(be);
    const ua = Ea + bitLen(am), ub = Eb + bitLen(bm);
    if (ua !== ub) mag = ua > ub ? 1 : -1;
    else {
      const E = Math.min(Ea, Eb);
      const va = am << BigInt(Ea - E), vb = bm << BigInt(Eb - E);
      mag = va === vb ? 0 : va > vb ? 1 : -1;
    }
  }
  return sa < 0 ? -mag : mag;
}

/** Memory float formats. */
export const FMT32 = {
  prec: 24,
  emin: -126,
  emax: 127,
  lsbMin: -149,
  ueMasked: true,
  oeMasked: true,
  ebits: 8,
};
export const FMT64 = {
  prec: 53,
  emin: -1022,
  emax: 1023,
  lsbMin: -1074,
  ueMasked: true,
  oeMasked: true,
  ebits: 11,
};

/** Convert an IEEE single/double (bits as bigint) to extended (FLD m32/m64 and the arithmetic m32/m64 forms). */
export function fromIeee(x: Fx, bits: bigint, f: typeof FMT32): void {
  const fb = f.prec - 1;
  const s = Number(bits >> BigInt(fb + f.ebits)) & 1;
  const ex = Number((bits >> BigInt(fb)) & ((1n << BigInt(f.ebits)) - 1n));
  const fr = bits & ((1n << BigInt(fb)) - 1n);
  const emaxB = (1 << f.ebits) - 1;
  if (ex === emaxB) {
    if (fr === 0n) return x.set(s, 0x7fff, B63);
    return x.set(s, 0x7fff, B63 | (fr << BigInt(63 - fb)));
  }
  if (ex === 0) {
    if (fr === 0n) return x.set(s, 0, 0n);
    x.exc |= DE;
    const E = f.lsbMin;
    const n = bitLen(fr);
    return x.set(s, E + n - 1 + 16383, fr << BigInt(64 - n));
  }
  x.set(s, ex - (emaxB >> 1) + 16383, B63 | (fr << BigInt(63 - fb)));
}

/** Convert extended to IEEE single/double bits (FST m32/m64); raises IE for SNaN/unsupported, OE/UE/PE. */
export function toIeee(x: Fx, as: number, ae: number, am: bigint, f: typeof FMT32): bigint {
  const k = kind(ae, am);
  const fb = f.prec - 1;
  const emaxB = (1 << f.ebits) - 1;
  const sbit = BigInt(as) << BigInt(fb + f.ebits);
  const infBits = BigInt(emaxB) << BigInt(fb);
  if (k === K_BAD) {
    x.exc |= IE;
    return (1n << BigInt(fb + f.ebits)) | infBits | (1n << BigInt(fb - 1));
  }
  if (k === K_SNAN || k === K_QNAN) {
    if (k === K_SNAN) x.exc |= IE;
    return sbit | infBits | (((am | B62) >> BigInt(63 - fb)) & ((1n << BigInt(fb)) - 1n));
  }
  if (k === K_INF) return sbit | infBits;
  if (k === K_ZERO) return sbit;
  f.ueMasked = (x.masks & UE) !== 0;
  f.oeMasked = (x.masks & OE) !== 0;
  const r = roundCore(x, as, lsbExp(ae), am, f);
  if (r === R_ZERO) return sbit;
  if (r === R_INF) return sbit | infBits;
  if (r === R_MAX) return sbit | (infBits - 1n);
  const q = x.q, n = bitLen(q);
  const ue = x.qe + n - 1;
  if (ue < f.emin) return sbit | (q << BigInt(x.qe - f.lsbMin));
  if (ue > f.emax) return sbit | infBits; // unmasked overflow: nothing is stored
  const bias = emaxB >> 1;
  return sbit | (BigInt(ue + bias) << BigInt(fb)) | ((q << BigInt(f.prec - n)) & ((1n << BigInt(fb)) - 1n));
}

/** FXTRACT: sets x to the exponent and returns the significand's (sign, biased exp, m) in out. */
export function fxtract(x: Fx, as: number, ae: number, am: bigint, out: Fx): void {
  const k = kind(ae, am);
  if (k === K_BAD) {
    x.invalid();
    out.set(x.s, x.e, x.m);
    return;
  }
  if (k >= K_QNAN) {
    pickNaN(x, k, as, am, K_ZERO, 0, 0n);
    out.set(x.s, x.e, x.m);
    return;
  }
  if (k === K_ZERO) {
    x.exc |= ZE;
    x.set(1, 0x7fff, B63);
    out.set(as, 0, 0n);
    return;
  }
  if (k === K_INF) {
    x.set(0, 0x7fff, B63);
    out.set(as, ae, am);
    return;
  }
  if (k === K_DEN) x.exc |= DE;
  const n = bitLen(am);
  const ue = lsbExp(ae) + n - 1;
  out.set(as, 16383, am << BigInt(64 - n));
  fromInteger(x, BigInt(ue));
}
