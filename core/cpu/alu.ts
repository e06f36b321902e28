/**
 * Integer ALU semantics on (lo, hi) int32 pairs with lazy flags: the 8 group-1 ops, shifts and rotates,
 * MUL/IMUL/DIV/IDIV in every width (SDM vol. 2). 64-bit wide multiply/divide fall back to BigInt.
 * Results are returned as the low half with the high half in `cpu.hi`.
 * @module
 */
import {
  CC_ADC,
  CC_ADD,
  CC_DEC,
  CC_INC,
  CC_SBB,
  CC_SUB,
  type Cpu,
  CpuFault,
  EXC_DE,
  F_CF,
  F_OF,
  MASK,
  SIGN,
} from "./cpu.ts";

const TWO32 = 4294967296;

/** Group-1 ALU operation numbers (the ModRM reg field of 80-83). */
export const ALU_ADD = 0,
  ALU_OR = 1,
  ALU_ADC = 2,
  ALU_SBB = 3,
  ALU_AND = 4,
  ALU_SUB = 5,
  ALU_XOR = 6,
  ALU_CMP = 7;

/** Apply group-1 op to (a, b) of size sz; sets lazy flags; returns the result (hi in c.hi). */
export function alu(c: Cpu, op: number, sz: number, a: number, ah: number, b: number, bh: number): number {
  let r = 0, rh = 0;
  switch (op) {
    case ALU_ADD:
      if (sz === 8) {
        const l = (a >>> 0) + (b >>> 0);
        r = l | 0;
        rh = (ah + bh + (l >= TWO32 ? 1 : 0)) | 0;
      } else r = (a + b) & MASK[sz];
      setArith(c, CC_ADD, sz, a, ah, b, bh, r, rh, 0);
      break;
    case ALU_ADC: {
      const cf = c.cf();
      if (sz === 8) {
        const l = (a >>> 0) + (b >>> 0) + cf;
        r = l | 0;
        rh = (ah + bh + (l >= TWO32 ? 1 : 0)) | 0;
      } else r = (a + b + cf) & MASK[sz];
      setArith(c, CC_ADC, sz, a, ah, b, bh, r, rh, cf);
      break;
    }
    case ALU_SUB:
    case ALU_CMP:
      if (sz === 8) {
        const l = (a >>> 0) - (b >>> 0);
        r = l | 0;
        rh = (ah - bh - (l < 0 ? 1 : 0)) | 0;
      } else r = (a - b) & MASK[sz];
      setArith(c, CC_SUB, sz, a, ah, b, bh, r, rh, 0);
      break;
    case ALU_SBB: {
      const cf = c.cf();
      if (sz === 8) {
        const l = (a >>> 0) - (b >>> 0) - cf;
        r = l | 0;
        rh = (ah - bh - (l < 0 ? 1 : 0)) | 0;
      } else r = (a - b - cf) & MASK[sz];
      setArith(c, CC_SBB, sz, a, ah, b, bh, r, rh, cf);
      break;
    }
    case ALU_OR:
      r = a | b;
      rh = ah | bh;
      c.setRes(sz, r, rh, 0);
      break;
    case ALU_AND:
      r = a & b;
      rh = ah & bh;
      c.setRes(sz, r, rh, 0);
      break;
    default:
      r = a ^ b;
      rh = ah ^ bh;
      c.setRes(sz, r, rh, 0);
      break;
  }
  if (sz !== 8) rh = 0;
  c.hi = rh;
  return r;
}

function setArith(
  c: Cpu,
  op: number,
  sz: number,
  a: number,
  ah: number,
  b: number,
  bh: number,
  r: number,
  rh: number,
  aux: number,
): void {
  c.ccOp = op;
  c.ccSz = sz;
  c.ccA = a;
  c.ccAh = ah;
  c.ccB = b;
  c.ccBh = bh;
  c.ccR = r;
  c.ccRh = rh;
  c.ccAux = aux;
}

/** INC (dir 1) / DEC (dir -1): CF preserved. */
export function incdec(c: Cpu, sz: number, a: number, ah: number, dir: number): number {
  const cf = c.cf();
  let r: number, rh = 0;
  if (sz === 8) {
    const l = (a >>> 0) + dir;
    r = l | 0;
    rh = (ah + (l >= TWO32 ? 1 : l < 0 ? -1 : 0)) | 0;
  } else r = (a + dir) & MASK[sz];
  setArith(c, dir > 0 ? CC_INC : CC_DEC, sz, a, ah, 1, 0, r, rh, cf);
  c.ccOp = dir > 0 ? CC_INC : CC_DEC;
  c.hi = rh;
  return r;
}

/** NEG: 0 - a with SUB flags. */
export function neg(c: Cpu, sz: number, a: number, ah: number): number {
  return alu(c, ALU_SUB, sz, 0, 0, a, ah);
}

/** Logical shift left of a 64-bit pair by n (1..63); hi in c.hi. */
export function shl64(c: Cpu, lo: number, hi: number, n: number): number {
  if (n < 32) {
    c.hi = (hi << n) | (lo >>> (32 - n));
    return lo << n;
  }
  c.hi = lo << (n - 32);
  return 0;
}

export function shr64(c: Cpu, lo: number, hi: number, n: number): number {
  if (n < 32) {
    c.hi = hi >>> n | 0;
    return (lo >>> n) | (hi << (32 - n));
  }
  c.hi = 0;
  return (hi >>> (n - 32)) | 0;
}

export function sar64(c: Cpu, lo: number, hi: number, n: number): number {
  if (n < 32) {
    c.hi = hi >> n;
    return (lo >>> n) | (hi << (32 - n));
  }
  c.hi = hi >> 31;
  return hi >> (n - 32);
}

function bit64(lo: number, hi: number, n: number): number {
  return n < 32 ? (lo >>> n) & 1 : (hi >>> (n - 32)) & 1;
}

function msb(sz: number, v: number, vh: number): number {
  if (sz === 8) return vh >>> 31;
  return (v & SIGN[sz]) ? 1 : 0;
}

/** Group-2 shift/rotate `op` (0 ROL, 1 ROR, 2 RCL, 3 RCR, 4/6 SHL, 5 SHR, 7 SAR) by `count`. */
export function shift(c: Cpu, op: number, sz: number, a: number, ah: number, count: number): number {
  const width = sz * 8;
  let n = count & (sz === 8 ? 63 : 31);
  if (n === 0) {
    c.hi = ah;
    return a;
  }
  let r = 0, rh = 0, cf = 0, of = 0;
  switch (op) {
    case 4:
    case 6:
      if (sz === 8) {
        r = shl64(c, a, ah, n);
        rh = c.hi;
        cf = bit64(a, ah, 64 - n);
      } else {
        cf = n <= width ? (a >>> (width - n)) & 1 : 0;
        r = n < 32 ? (a << n) & MASK[sz] : 0;
      }
      of = msb(sz, r, rh) ^ cf;
      c.setRes(sz, r, rh, (cf ? F_CF : 0) | (of ? F_OF : 0));
      break;
    case 5:
      if (sz === 8) {
        r = shr64(c, a, ah, n);
        rh = c.hi;
        cf = bit64(a, ah, n - 1);
      } else {
        const u = a & MASK[sz];
        cf = n <= 32 ? ((u >>> (n - 1)) & 1) : 0;
        r = n < 32 ? (u >>> n) & MASK[sz] : 0;
      }
      of = msb(sz, a, ah);
      c.setRes(sz, r, rh, (cf ? F_CF : 0) | (of ? F_OF : 0));
      break;
    case 7:
      if (sz === 8) {
        r = sar64(c, a, ah, n);
        rh = c.hi;
        cf = n === 0 ? 0 : bit64(a, ah, n - 1);
      } else {
        const s = sz === 1 ? (a << 24) >> 24 : sz === 2 ? (a << 16) >> 16 : a | 0;
        const nn = n > 31 ? 31 : n;
        cf = (s >> (nn - 1)) & 1;
        r = (s >> nn) & MASK[sz];
      }
      c.setRes(sz, r, rh, cf ? F_CF : 0);
      break;
    case 0:
    case 1: {
      c.eager();
      n = n % width;
      if (sz === 8) {
        if (n === 0) {
          r = a;
          rh = ah;
        } else if (op === 0) {
          const l1 = shl64(c, a, ah, n), h1 = c.hi;
          const l2 = shr64(c, a, ah, 64 - n), h2 = c.hi;
          r = l1 | l2;
          rh = h1 | h2;
        } else {
          const l1 = shr64(c, a, ah, n), h1 = c.hi;
          const l2 = shl64(c, a, ah, 64 - n), h2 = c.hi;
          r = l1 | l2;
          rh = h1 | h2;
        }
      } else {
        const u = (a & MASK[sz]) >>> 0;
        if (n === 0) r = a;
        else if (op === 0) r = ((u << n) | (u >>> (width - n))) & MASK[sz];
        else r = ((u >>> n) | (u << (width - n))) & MASK[sz];
      }
      if (op === 0) {
        cf = sz === 8 ? r & 1 : r & 1;
        of = msb(sz, r, rh) ^ cf;
      } else {
        cf = msb(sz, r, rh);
        const second = sz === 8 ? (rh >>> 30) & 1 : (r >>> (width - 2)) & 1;
        of = cf ^ second;
      }
      c.flags = (c.flags & ~(F_CF | F_OF)) | (cf ? F_CF : 0) | (of ? F_OF : 0);
      break;
    }
    default: {
      // RCL / RCR through CF: via BigInt (rare).
      c.eager();
      const cin = c.flags & F_CF;
      const w = BigInt(width);
      n = sz === 8 ? n : n % (width + 1);
      let v = sz === 8 ? (BigInt(ah >>> 0) << 32n) | BigInt(a >>> 0) : BigInt((a & MASK[sz]) >>> 0);
      v |= BigInt(cin) << w; // width+1 bit value: CF on top
      const m = (1n << (w + 1n)) - 1n;
      const k = BigInt(n);
      if (op === 2) v = ((v << k) | (v >> (w + 1n - k))) & m;
      else v = ((v >> k) | (v << (w + 1n - k))) & m;
      cf = Number(v >> w) & 1;
      const res = v & ((1n << w) - 1n);
      r = Number(res & 0xffffffffn) | 0;
      rh = sz === 8 ? Number(res >> 32n) | 0 : 0;
      if (sz !== 8 && sz !== 4) r &= MASK[sz];
      if (op === 2) of = msb(sz, r, rh) ^ cf;
      else of = msb(sz, r, rh) ^ (sz === 8 ? (rh >>> 30) & 1 : (r >>> (width - 2)) & 1);
      c.flags = (c.flags & ~(F_CF | F_OF)) | (cf ? F_CF : 0) | (of ? F_OF : 0);
      break;
    }
  }
  c.hi = sz === 8 ? rh : 0;
  return r;
}

/** SHLD (left=true) / SHRD of a by count with fill bits from b. */
export function shiftDouble(
  c: Cpu,
  left: boolean,
  sz: number,
  a: number,
  ah: number,
  b: number,
  bh: number,
  count: number,
): number {
  const n = count & (sz === 8 ? 63 : 31);
  if (n === 0) {
    c.hi = ah;
    return a;
  }
  const width = BigInt(sz * 8);
  const m = (1n << width) - 1n;
  const va = sz === 8 ? (BigInt(ah >>> 0) << 32n) | BigInt(a >>> 0) : BigInt((a & MASK[sz]) >>> 0);
  const vb = sz === 8 ? (BigInt(bh >>> 0) << 32n) | BigInt(b >>> 0) : BigInt((b & MASK[sz]) >>> 0);
  const k = BigInt(n);
  let res: bigint, cf: number;
  if (left) {
    // For 16-bit with count > 16 the result is undefined; model the 32-bit concatenation.
    const cat = (va << width) | vb;
    res = (cat << k >> width) & m;
    cf = Number((va >> (width - k)) & 1n);
  } else {
    const cat = (vb << width) | va;
    res = (cat >> k) & m;
    cf = Number((va >> (k - 1n)) & 1n);
  }
  let r = Number(res & 0xffffffffn) | 0;
  const rh = sz === 8 ? Number(res >> 32n) | 0 : 0;
  if (sz === 1 || sz === 2) r &= MASK[sz];
  const of = msb(sz, r, rh) ^ msb(sz, a, ah);
  c.setRes(sz, r, rh, (cf ? F_CF : 0) | (of ? F_OF : 0));
  c.hi = rh;
  return r;
}

/** Unsigned 32x32 → 64 product; returns lo, hi in c.hi. */
export function mulu32(c: Cpu, a: number, b: number): number {
  const lo = Math.imul(a, b);
  const p = (a >>> 0) * (b >>> 0);
  c.hi = Math.round((p - (lo >>> 0)) / TWO32) | 0;
  return lo;
}

/** Signed 32x32 → 64 product; returns lo, hi in c.hi. */
export function muls32(c: Cpu, a: number, b: number): number {
  const lo = Math.imul(a, b);
  const p = (a | 0) * (b | 0);
  c.hi = Math.round((p - (lo >>> 0)) / TWO32) | 0;
  return lo;
}

function big64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

function bigS64(lo: number, hi: number): bigint {
  return BigInt.asIntN(64, big64(lo, hi));
}

/** One-operand MUL (signed=false) / IMUL (signed=true): rDX:rAX = rAX * src. */
export function mul1(c: Cpu, signed: boolean, sz: number, src: number, srch: number): void {
  const r = c.r;
  let over = false;
  switch (sz) {
    case 1: {
      const a = r[0] & 0xff;
      const p = signed ? ((a << 24) >> 24) * ((src << 24) >> 24) : a * src;
      r[0] = (r[0] & ~0xffff) | (p & 0xffff);
      over = signed ? p !== ((p << 24) >> 24) : (p & 0xff00) !== 0;
      c.setRes(1, p & 0xff, 0, over ? F_CF | F_OF : 0);
      break;
    }
    case 2: {
      const a = r[0] & 0xffff;
      const p = signed ? ((a << 16) >> 16) * ((src << 16) >> 16) : a * src;
      r[0] = (r[0] & ~0xffff) | (p & 0xffff);
      r[2] = (r[2] & ~0xffff) | ((p >>> 16) & 0xffff);
      over = signed ? p !== ((p << 16) >> 16) : (p >>> 16 & 0xffff) !== 0;
      c.setRes(2, p & 0xffff, 0, over ? F_CF | F_OF : 0);
      break;
    }
    case 4: {
      const lo = signed ? muls32(c, r[0], src) : mulu32(c, r[0], src);
      const hi = c.hi;
      r[0] = lo;
      r[16] = 0;
      r[2] = hi;
      r[18] = 0;
      over = signed ? hi !== (lo >> 31) : hi !== 0;
      c.setRes(4, lo, 0, over ? F_CF | F_OF : 0);
      break;
    }
    default: {
      const a = signed ? bigS64(r[0], r[16]) : big64(r[0], r[16]);
      const b = signed ? bigS64(src, srch) : big64(src, srch);
      const p = a * b;
      const lo = BigInt.asUintN(64, p);
      const hi = BigInt.asUintN(64, p >> 64n);
      r[0] = Number(lo & 0xffffffffn) | 0;
      r[16] = Number(lo >> 32n) | 0;
      r[2] = Number(hi & 0xffffffffn) | 0;
      r[18] = Number(hi >> 32n) | 0;
      over = signed ? p !== BigInt.asIntN(64, p) : hi !== 0n;
      c.setRes(8, r[0], r[16], over ? F_CF | F_OF : 0);
    }
  }
}

/** Two/three-operand IMUL: truncated signed product of a and b; CF=OF on overflow. */
export function imul2(c: Cpu, sz: number, a: number, ah: number, b: number, bh: number): number {
  switch (sz) {
    case 2: {
      const p = ((a << 16) >> 16) * ((b << 16) >> 16);
      const r = p & 0xffff;
      c.setRes(2, r, 0, p !== ((p << 16) >> 16) ? F_CF | F_OF : 0);
      c.hi = 0;
      return r;
    }
    case 4: {
      const r = Math.imul(a, b);
      const p = (a | 0) * (b | 0);
      c.setRes(4, r, 0, p !== r ? F_CF | F_OF : 0);
      c.hi = 0;
      return r;
    }
    default: {
      // Fast path: both fit in int32.
      if (ah === (a >> 31) && bh === (b >> 31)) {
        const lo = muls32(c, a, b);
        c.setRes(8, lo, c.hi, 0);
        return lo;
      }
      const p = bigS64(a, ah) * bigS64(b, bh);
      const t = BigInt.asUintN(64, p);
      const lo = Number(t & 0xffffffffn) | 0;
      const hi = Number(t >> 32n) | 0;
      c.setRes(8, lo, hi, p !== BigInt.asIntN(64, p) ? F_CF | F_OF : 0);
      c.hi = hi;
      return lo;
    }
  }
}

/** DIV (signed=false) / IDIV: rDX:rAX / src; #DE on zero divisor or overflow. */
export function div1(c: Cpu, signed: boolean, sz: number, src: number, srch: number): void {
  const r = c.r;
  switch (sz) {
    case 1: {
      const d = signed ? (src << 24) >> 24 : src & 0xff;
      if (d === 0) throw new CpuFault(EXC_DE, -1);
      const n = signed ? (r[0] << 16) >> 16 : r[0] & 0xffff;
      const q = Math.trunc(n / d);
      const rem = n - q * d;
      if (signed ? q !== ((q << 24) >> 24) : q > 0xff) throw new CpuFault(EXC_DE, -1);
      r[0] = (r[0] & ~0xffff) | (q & 0xff) | ((rem & 0xff) << 8);
      return;
    }
    case 2: {
      const d = signed ? (src << 16) >> 16 : src & 0xffff;
      if (d === 0) throw new CpuFault(EXC_DE, -1);
      const u = ((r[2] & 0xffff) << 16 | (r[0] & 0xffff)) >>> 0;
      const n = signed ? u | 0 : u;
      const q = Math.trunc(n / d);
      const rem = n - q * d;
      if (signed ? q !== ((q << 16) >> 16) : q > 0xffff) throw new CpuFault(EXC_DE, -1);
      r[0] = (r[0] & ~0xffff) | (q & 0xffff);
      r[2] = (r[2] & ~0xffff) | (rem & 0xffff);
      return;
    }
    case 4: {
      const d = signed ? src | 0 : src >>> 0;
      if (d === 0) throw new CpuFault(EXC_DE, -1);
      let q: number, rem: number;
      if (!signed && r[2] === 0) {
        const n = r[0] >>> 0;
        q = Math.floor(n / d);
        rem = n - q * d;
      } else if (signed && r[2] === (r[0] >> 31)) {
        const n = r[0] | 0;
        q = Math.trunc(n / d);
        rem = n - q * d;
        if (q !== (q | 0)) throw new CpuFault(EXC_DE, -1);
      } else {
        const n = signed ? BigInt.asIntN(64, big64(r[0], r[2])) : big64(r[0], r[2]);
        const bd = BigInt(d);
        const bq = n / bd;
        if (signed ? bq !== BigInt.asIntN(32, bq) : bq > 0xffffffffn) throw new CpuFault(EXC_DE, -1);
        q = Number(bq);
        rem = Number(n % bd);
      }
      r[0] = q | 0;
      r[16] = 0;
      r[2] = rem | 0;
      r[18] = 0;
      return;
    }
    default: {
      if (src === 0 && srch === 0) throw new CpuFault(EXC_DE, -1);
      const ah = r[16], dl = r[2], dh = r[18];
      // Fast path: dividend and divisor fit in 53 bits.
      if (!signed && dl === 0 && dh === 0 && (ah >>> 0) < 0x200000 && (srch >>> 0) < 0x200000) {
        const n = ah * TWO32 + (r[0] >>> 0);
        const d = srch * TWO32 + (src >>> 0);
        const q = Math.floor(n / d);
        const rem = n - q * d;
        setPair(r, 0, q);
        setPair(r, 2, rem);
        return;
      }
      if (
        signed && dl === ah >> 31 && dh === ah >> 31 && ah >= -0x200000 && ah < 0x200000 &&
        srch >= -0x200000 &&
        srch < 0x200000
      ) {
        const n = ah * TWO32 + (r[0] >>> 0);
        const d = srch * TWO32 + (src >>> 0);
        const q = Math.trunc(n / d);
        const rem = n - q * d;
        setPair(r, 0, q);
        setPair(r, 2, rem);
        return;
      }
      const n = signed
        ? BigInt.asIntN(128, (big64(dl, dh) << 64n) | big64(r[0], ah))
        : (big64(dl, dh) << 64n) | big64(r[0], ah);
      const bd = signed ? bigS64(src, srch) : big64(src, srch);
      const bq = n / bd;
      if (signed ? bq !== BigInt.asIntN(64, bq) : bq > 0xffffffffffffffffn) throw new CpuFault(EXC_DE, -1);
      const brem = n % bd;
      const uq = BigInt.asUintN(64, bq), ur = BigInt.asUintN(64, brem);
      r[0] = Number(uq & 0xffffffffn) | 0;
      r[16] = Number(uq >> 32n) | 0;
      r[2] = Number(ur & 0xffffffffn) | 0;
      r[18] = Number(ur >> 32n) | 0;
    }
  }
}

/** Store an exact integer |v| < 2^53 into register pair n. */
function setPair(r: Int32Array, n: number, v: number): void {
  r[n] = v | 0;
  r[n + 16] = Math.floor(v / TWO32) | 0;
}
