/**
 * x87 constants and transcendental functions (FLDPI.., FSIN/FCOS/FSINCOS/FPTAN, FPATAN, F2XM1, FYL2X,
 * FYL2XP1) on exact inputs with 256-bit fixed-point series, each result rounded once with the current RC.
 * Results keep their relative precision for tiny arguments (f(x) = x·g(x²) forms). FSIN/FCOS/FPTAN reduce
 * their argument by π rounded to 66 bits, as the hardware does (SDM vol. 1 8.3.10), so results near
 * multiples of π follow the hardware rather than the true function. Error: within 1 ulp of the hardware
 * (x87_test.ts checks every host vector to that bound): of the 4668 host vectors of FSIN..FYL2XP1, 44 results
 * differ from the host's by 1 ulp (where the hardware is not correctly rounded), the rest are bit-exact;
 * C1 (round-up) is not compared for these. Outside the documented domains the hardware's results are
 * reproduced where measured: F2XM1 of |x| > 1 and FYL2XP1 of x <= -1 return x, inexact.
 * @module
 */
import {
  bitLen,
  DE,
  Fx,
  IE,
  K_BAD,
  K_DEN,
  K_INF,
  K_QNAN,
  K_SNAN,
  K_ZERO,
  kind,
  lsbExp,
  PE,
  pickNaN,
  roundExt,
  ZE,
} from "./f80.ts";

const P = 256;
const PB = 256n;
const ONE = 1n << PB;
const B63 = 1n << 63n;

/** arctan(1/n) in P-bit fixed point (Machin-style series). */
function atanInv(n: bigint): bigint {
  let sum = 0n, term = ONE / n, k = 1n;
  const n2 = n * n;
  let sign = 1n;
  while (term !== 0n) {
    sum += sign * (term / k);
    term /= n2;
    k += 2n;
    sign = -sign;
  }
  return sum;
}

/** ln(2) = 2·atanh(1/3) in fixed point. */
function ln2Fixed(): bigint {
  let sum = 0n, term = ONE / 3n, k = 1n;
  while (term !== 0n) {
    sum += term / k;
    term /= 9n;
    k += 2n;
  }
  return 2n * sum;
}

/** π, ln 2, ln 10 in P-bit fixed point (with guard bits beyond what rounding needs). */
const PI = 4n * (4n * atanInv(5n) - atanInv(239n));
const LN2 = ln2Fixed();

/** π rounded to 66 significant bits (the hardware's reduction constant), as P-bit fixed point. */
const PI66 = ((PI >> (PB + 2n - 66n)) + ((PI >> (PB + 1n - 66n)) & 1n)) << (PB + 2n - 66n);

/** ln(1+f)... helper: 2·atanh(s) = 2s·Σ s^(2k)/(2k+1), s in fixed point, returns the Σ factor. */
function atanhSeries(s2: bigint): bigint {
  let sum = 0n, term = ONE, k = 1n;
  while (term !== 0n) {
    sum += term / k;
    term = (term * s2) >> PB;
    k += 2n;
  }
  return sum;
}

/** ln(10) = ln 2 + ln 5 = 3 ln 2 + ln(5/4); ln(5/4) = 2 atanh(1/9). */
const LN10 = 3n * LN2 + 2n * ((ONE / 9n) * atanhSeries(ONE / 81n) >> PB);

/** Round the positive value N·2^E into fx with RC and 64-bit precision (no PE for constants). */
function roundConst(fx: Fx, s: number, N: bigint, E: number): void {
  roundExt(fx, s, E, N, 64);
  fx.exc = 0;
}

/** FLD1 (0), FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ (6). */
export function constant(fx: Fx, i: number): void {
  switch (i) {
    case 0:
      return fx.set(0, 16383, B63);
    case 1: // log2(10) = ln10/ln2
      return roundConst(fx, 0, (LN10 << PB) / LN2, -P);
    case 2: // log2(e) = 1/ln2
      return roundConst(fx, 0, (ONE << PB) / LN2, -P);
    case 3:
      return roundConst(fx, 0, PI, -P);
    case 4: // log10(2)
      return roundConst(fx, 0, (LN2 << PB) / LN10, -P);
    case 5:
      return roundConst(fx, 0, LN2, -P);
    default:
      return fx.set(0, 0, 0n);
  }
}

/** Σ (-1)^k r2^k / (2k+1)! (sin(r) = r·this) or /(2k)! (cos). */
function sinCosSeries(r2: bigint, cos: boolean): bigint {
  let sum = 0n, term = ONE, k = cos ? 1n : 2n, sign = 1n;
  while (term !== 0n) {
    sum += sign * term;
    term = ((term * r2) >> PB) / (k * (k + 1n));
    k += 2n;
    sign = -sign;
  }
  return sum;
}

/** Exact value of a finite register operand as N·2^E. */
let vN = 0n, vE = 0;
function val(e: number, m: bigint): void {
  vN = m;
  vE = lsbExp(e);
}

/** Fixed-point (P bits) value of N·2^E (truncated). */
function fix(N: bigint, E: number): bigint {
  const sh = E + P;
  return sh >= 0 ? N << BigInt(sh) : sh > -20000 ? N >> BigInt(-sh) : 0n;
}

function nanOrBad(fx: Fx, k: number, s: number, e: number, m: bigint): boolean {
  if (k === K_BAD) {
    fx.invalid();
    return true;
  }
  if (k === K_QNAN || k === K_SNAN) {
    if (k === K_SNAN) fx.exc |= IE;
    fx.set(s, e, m | (1n << 62n));
    return true;
  }
  if (k === K_DEN) fx.exc |= DE;
  return false;
}

/**
 * sin/cos of a: `which` 0 sin, 1 cos, 2 tan. Returns false when |a| ≥ 2^63 (C2 = 1, operand unchanged).
 * `out` receives the result.
 */
export function fsincos(fx: Fx, s: number, e: number, m: bigint, which: number): boolean {
  const k = kind(e, m);
  if (k === K_INF) {
    fx.invalid();
    return true;
  }
  if (nanOrBad(fx, k, s, e, m)) return true;
  if (k === K_ZERO) {
    if (which === 1) fx.set(0, 16383, B63);
    else fx.set(s, 0, 0n);
    return true;
  }
  if (e >= 16383 + 63) return false;
  val(e, m);
  // r = |a| - q·π66/2, |r| ≤ π/4, as an exact rational (N, E) when q = 0, else in fixed point.
  let q = 0n;
  let rN = vN, rE = vE;
  const half = PI66 >> 1n;
  const a = fix(vN, vE);
  if (vE + bitLen(vN) > -1) {
    // |a| ≥ 0.5: reduce (exact: a's bits all lie above 2^-P here).
    q = (a + (half >> 1n)) / half;
    rN = a - q * half;
    rE = -P;
  }
  const negR = rN < 0n;
  if (negR) rN = -rN;
  const r2 = fix(rN * rN, 2 * rE);
  const sinF = (): [bigint, number] => [rN * sinCosSeries(r2, false), rE - P];
  const cosF = (): [bigint, number] => [sinCosSeries(r2, true), -P];
  const quad = Number(q & 3n);
  // sin(a) by quadrant: 0 sin r, 1 cos r, 2 -sin r, 3 -cos r (for a > 0); sin is odd.
  let N: bigint, E: number, sg: number;
  if (which === 0 || which === 1) {
    const qq = which === 1 ? quad + 1 : quad;
    const useCos = (qq & 1) === 1;
    [N, E] = useCos ? cosF() : sinF();
    sg = (qq & 2) ? 1 : 0;
    if (!useCos && negR) sg ^= 1;
    if (which === 0 && s === 1) sg ^= 1;
  } else {
    // tan = sin/cos, tan(r + qπ/2) = tan r (q even) or -1/tan r (q odd).
    const [sn, se] = sinF();
    const [cn] = cosF();
    if (quad & 1) {
      N = (cn << PB << PB) / sn;
      E = -3 * P - se;
      sg = negR ? 0 : 1;
    } else {
      N = (sn << PB) / cn;
      E = se;
      sg = negR ? 1 : 0;
    }
    if (s === 1) sg ^= 1;
  }
  if (N < 0n) {
    N = -N;
    sg ^= 1;
  }
  if (N === 0n) fx.set(sg, 0, 0n);
  else roundExt(fx, sg, E, N | 1n, 64);
  return true;
}

/** atan(t) for 0 ≤ t ≤ 1 given exactly as N·2^E: returns (N', E') of the result. */
function atanSmall(N: bigint, E: number): [bigint, number] {
  // Halve the argument until small: atan t = 2 atan(t / (1 + sqrt(1 + t²))).
  let t = fix(N, E);
  if (t < ONE >> 10n) {
    // atan t = t·Σ (-t²)^k/(2k+1): keep t exact.
    const t2 = fix(N * N, 2 * E);
    let sum = 0n, term = ONE, k = 1n, sign = 1n;
    while (term !== 0n) {
      sum += sign * (term / k);
      term = (term * t2) >> PB;
      k += 2n;
      sign = -sign;
    }
    return [N * sum, E - P];
  }
  let doublings = 0n;
  while (t > ONE >> 10n) {
    const sq = isqrtFix(ONE + ((t * t) >> PB));
    t = (t << PB) / (ONE + sq);
    doublings++;
  }
  const t2 = (t * t) >> PB;
  let sum = 0n, term = t, k = 1n, sign = 1n;
  while (term !== 0n) {
    sum += sign * (term / k);
    term = (term * t2) >> PB;
    k += 2n;
    sign = -sign;
  }
  return [sum << doublings, -P];
}

function isqrtFix(v: bigint): bigint {
  // sqrt of a P-bit fixed-point value.
  const x = v << PB;
  let r = 1n << BigInt((bitLen(x) >> 1) + 1);
  for (;;) {
    const n = (r + x / r) >> 1n;
    if (n >= r) return r;
    r = n;
  }
}

/** FPATAN: atan2(y, x) into fx. */
export function fpatan(fx: Fx, ys: number, ye: number, ym: bigint, xs: number, xe: number, xm: bigint): void {
  const ky = kind(ye, ym), kx = kind(xe, xm);
  if (ky === K_BAD || kx === K_BAD) return fx.invalid();
  if (ky >= K_QNAN || kx >= K_QNAN) return pickNaN(fx, ky, ys, ym, kx, xs, xm);
  if (ky === K_DEN || kx === K_DEN) fx.exc |= DE;
  // Special operands (SDM FPATAN table).
  if (ky === K_ZERO || ky === K_INF || kx === K_ZERO || kx === K_INF) {
    let N: bigint;
    if (ky === K_ZERO) {
      if (xs === 0) return fx.set(ys, 0, 0n);
      N = PI;
    } else if (ky === K_INF) {
      N = kx === K_INF ? (xs ? 3n * PI / 4n : PI / 4n) : PI / 2n;
    } else if (kx === K_ZERO) N = PI / 2n;
    else {
      if (xs === 0) return fx.set(ys, 0, 0n);
      N = PI;
    }
    return roundExt(fx, ys, -P, N, 64);
  }
  // |y|/|x| or its inverse in [0, 1] as an exact quotient with 2P+ bits.
  val(ye, ym);
  const yN = vN, yE = vE;
  val(xe, xm);
  const xN = vN, xE = vE;
  const ly = yE + bitLen(yN), lx = xE + bitLen(xN);
  const swap = ly > lx ||
    (ly === lx && (yN << BigInt(Math.max(0, yE - xE))) > (xN << BigInt(Math.max(0, xE - yE))));
  const [nN, nE, dN, dE] = swap ? [xN, xE, yN, yE] : [yN, yE, xN, xE];
  const tN = (nN << (2n * PB)) / dN;
  const tE = nE - dE - 2 * P;
  let [rN, rE] = atanSmall(tN, tE);
  let rf = fix(rN, rE);
  if (swap || xs) {
    // π/2 - r, π - r, π/2 + r.
    if (swap && !xs) rf = (PI >> 1n) - rf;
    else if (swap && xs) rf = (PI >> 1n) + rf;
    else rf = PI - rf;
    rN = rf;
    rE = -P;
  }
  roundExt(fx, ys, rE, rN | 1n, 64);
}

/** F2XM1: 2^a - 1. */
export function f2xm1(fx: Fx, s: number, e: number, m: bigint): void {
  const k = kind(e, m);
  if (nanOrBad(fx, k, s, e, m)) return;
  if (k === K_ZERO) return fx.set(s, 0, 0n);
  if (k === K_INF) return s ? fx.set(1, 16383, B63) : fx.set(0, 0x7fff, B63);
  if (e > 16383 || (e === 16383 && m > B63)) {
    // Outside the domain (|a| > 1) the hardware returns the operand, inexact.
    fx.exc |= PE;
    return fx.set(s, e, m);
  }
  val(e, m);
  // u = a·ln2; 2^a - 1 = u·Σ u^k/(k+1)!.
  const uN = vN * LN2, uE = vE - P;
  let u = fix(uN, uE);
  if (s) u = -u;
  let sum = 0n, term = ONE, kk = 2n;
  while (term !== 0n && kk < 400n) {
    sum += term;
    term = ((term * u) >> PB) / kk;
    kk++;
  }
  if (sum < 0n) sum = -sum;
  roundExt(fx, s, uE - P, (uN * sum) | 1n, 64);
}

/** ln(x) for positive finite x = N·2^E, as fixed point (P bits): exact 0 for x = 1. */
function lnFix(N: bigint, E: number): bigint {
  let ue = E + bitLen(N) - 1;
  // m in [sqrt(1/2), sqrt(2)): N scaled to 128 bits, compared with sqrt2·2^127.
  const n = bitLen(N);
  let M = n <= 128 ? N << BigInt(128 - n) : N >> BigInt(n - 128);
  let base = 1n << 127n;
  if (M > 0xb504f333f9de6484n << 64n) {
    base = 1n << 128n;
    ue += 1;
  }
  M -= base; // f·base
  const sN = (M << PB) / (2n * base + M); // s = f / (2 + f)
  const s2 = (sN * sN) >> PB;
  return BigInt(ue) * LN2 + ((2n * sN * atanhSeries(s2)) >> PB);
}

/** FYL2X: y·log2(x). */
export function fyl2x(fx: Fx, ys: number, ye: number, ym: bigint, xs: number, xe: number, xm: bigint): void {
  const ky = kind(ye, ym), kx = kind(xe, xm);
  if (twoNaN(fx, ky, ys, ye, ym, kx, xs, xe, xm)) return;
  if (ky === K_DEN || kx === K_DEN) fx.exc |= DE;
  if (xs && kx !== K_ZERO) return fx.invalid();
  if (kx === K_ZERO) {
    if (ky === K_ZERO) return fx.invalid();
    if (ky !== K_INF) fx.exc = (fx.exc & ~DE) | ZE;
    return fx.set(ys ^ 1, 0x7fff, B63);
  }
  if (kx === K_INF) {
    if (ky === K_ZERO) return fx.invalid();
    return fx.set(ys, 0x7fff, B63);
  }
  val(xe, xm);
  const l = lnFix(vN, vE);
  if (ky === K_INF) {
    if (l === 0n) return fx.invalid();
    return fx.set(ys ^ (l < 0n ? 1 : 0), 0x7fff, B63);
  }
  if (ky === K_ZERO) return fx.set(ys ^ (l < 0n ? 1 : 0), 0, 0n);
  let L = (l << PB) / LN2;
  // Exact results (x a power of two) stay exact.
  if (vN === 1n << BigInt(bitLen(vN) - 1)) L = BigInt(vE + bitLen(vN) - 1) << PB;
  let sg = ys;
  if (L < 0n) {
    L = -L;
    sg ^= 1;
  }
  if (L === 0n) return fx.set(sg, 0, 0n);
  val(ye, ym);
  const exact = (L & (ONE - 1n)) === 0n;
  roundExt(fx, sg, vE - P, vN * L + (exact ? 0n : 1n), 64);
  if (fx.e === 0 && (fx.masks & 0x10)) fx.exc |= 0x10; // tiny: UE as for an inexact result
  fx.exc |= PE; // the hardware reports even exact logarithms (of powers of two) as inexact
}

/** FYL2XP1: y·log2(x + 1). */
export function fyl2xp1(
  fx: Fx,
  ys: number,
  ye: number,
  ym: bigint,
  xs: number,
  xe: number,
  xm: bigint,
): void {
  const ky = kind(ye, ym), kx = kind(xe, xm);
  if (twoNaN(fx, ky, ys, ye, ym, kx, xs, xe, xm)) return;
  if (ky === K_DEN || kx === K_DEN) fx.exc |= DE;
  if (kx === K_ZERO) {
    if (ky === K_INF) return fx.invalid();
    return fx.set(ys ^ xs, 0, 0n);
  }
  if (kx === K_INF) {
    if (xs || ky === K_ZERO) return fx.invalid();
    return fx.set(ys, 0x7fff, B63);
  }
  if (ky === K_INF) return fx.set(ys ^ xs, 0x7fff, B63);
  if (ky === K_ZERO) return fx.set(ys ^ xs, 0, 0n);
  val(xe, xm);
  const xN = vN, xE = vE;
  if (xE + bitLen(xN) > -2) {
    // |x| >= 1/4 (outside the documented domain): ln of the exact 1 + x.
    const E0 = Math.min(0, xE);
    const one = 1n << BigInt(-E0);
    const t = one + (xs ? -1n : 1n) * (xN << BigInt(xE - E0));
    if (t <= 0n) {
      // x <= -1: outside the domain the hardware returns x, inexact.
      fx.exc |= PE;
      return fx.set(xs, xe, xm);
    }
    const L = (lnFix(t, E0) << PB) / LN2;
    val(ye, ym);
    const sg = ys ^ (L < 0n ? 1 : 0);
    return roundExt(fx, sg, vE - P, vN * (L < 0n ? -L : L) | 1n, 64);
  }
  // ln(1+x) = 2 atanh(x/(2+x)) = x·q·2·Σ s^2k/(2k+1) with q = 1/(2+x), s = x·q.
  let xf = fix(xN, xE);
  if (xs) xf = -xf;
  const q = (ONE << PB) / (2n * ONE + xf);
  const sN = xN * q, sE = xE - P;
  const s2 = fix(sN * sN, 2 * sE);
  const ser = atanhSeries(s2);
  // result = y · x · q · 2 · ser / ln2
  const factor = (((q * 2n * ser) >> PB) << PB) / LN2;
  val(ye, ym);
  roundExt(fx, ys ^ xs, vE + xE - P, (vN * xN * factor) | 1n, 64);
}

function twoNaN(
  fx: Fx,
  ky: number,
  ys: number,
  ye: number,
  ym: bigint,
  kx: number,
  xs: number,
  xe: number,
  xm: bigint,
): boolean {
  if (ky === K_BAD || kx === K_BAD) {
    fx.invalid();
    return true;
  }
  if (ky >= K_QNAN || kx >= K_QNAN) {
    fpatan(fx, ys, ye, ym, xs, xe, xm);
    return true;
  }
  return false;
}
