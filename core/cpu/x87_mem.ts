/**
 * x87 loads, stores and environment instructions (SDM vol. 1 8.1.10, 8.2, vol. 2): FLD/FST/FSTP m32/m64/m80,
 * FILD/FIST/FISTP/FISTTP m16/m32/m64, FBLD/FBSTP, FLDCW/FNSTCW/FNSTSW, FLDENV/FNSTENV/FRSTOR/FNSAVE in the
 * 16- and 32-bit formats of real and protected mode.
 * @module
 */
import { type Cpu, CR0_PE } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { segLimit } from "./seglimit.ts";
import {
  DE,
  FMT32,
  FMT64,
  fromIeee,
  fromInteger,
  IE,
  INDEF_M,
  K_SNAN,
  kind,
  OE,
  PE,
  toIeee,
  toInteger,
  UE,
} from "./f80.ts";
import {
  begin,
  canPush,
  commitFlags,
  empty,
  finit,
  fullTag,
  load,
  phys,
  pop,
  push,
  putReg,
  SW_C1,
  underflow,
  updateEs,
  type X87,
  x87State,
} from "./x87_stack.ts";

/** The D9/DB/DD/DF memory forms other than arithmetic. */
export function execMemOther(it: Interp, st: X87, b: number, reg: number): void {
  const c = it.c;
  const la = it.la;
  if (c.segChk) segLimit(c, it.ms, it.ea, 1); // start of the operand (its size varies by form)
  switch ((b << 4) | reg) {
    case 0xd90: // FLD m32
    case 0xdd0: { // FLD m64
      const fx = begin(c, st.fx, false);
      let bits: bigint;
      if (b === 0xd9) bits = BigInt(c.rd32(la) >>> 0);
      else {
        const lo = c.rd64(la);
        bits = (BigInt(c.hi >>> 0) << 32n) | BigInt(lo >>> 0);
      }
      if (!canPush(c, fx)) return;
      fromIeee(fx, bits, b === 0xd9 ? FMT32 : FMT64);
      if (kind(fx.e, fx.m) === K_SNAN) {
        fx.exc |= IE;
        fx.m |= 1n << 62n;
      }
      fx.up = false;
      if (!commitFlags(c, fx)) return;
      push(c, fx.s, fx.e, fx.m);
      return;
    }
    case 0xdb5: { // FLD m80
      const fx = begin(c, st.fx, false);
      const lo = c.rd64(la);
      const hi = c.hi;
      const se = c.rd16(la + 8);
      if (!canPush(c, fx)) return;
      c.fpuSw &= ~SW_C1;
      push(c, se >> 15, se & 0x7fff, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
      return;
    }
    case 0xdf0: // FILD m16
    case 0xdb0: // FILD m32
    case 0xdf5: { // FILD m64
      const fx = begin(c, st.fx, false);
      let v: bigint;
      if (reg === 5) {
        const lo = c.rd64(la);
        v = (BigInt(c.hi) << 32n) | BigInt(lo >>> 0);
      } else v = BigInt(b === 0xdb ? c.rd32(la) | 0 : (c.rd16(la) << 16) >> 16);
      if (!canPush(c, fx)) return;
      fromInteger(fx, v);
      c.fpuSw &= ~SW_C1;
      push(c, fx.s, fx.e, fx.m);
      return;
    }
    case 0xdf4: { // FBLD
      const fx = begin(c, st.fx, false);
      let v = 0n;
      for (let k = 8; k >= 0; k--) {
        const d = c.rd8(la + k);
        v = v * 100n + BigInt((d >> 4) * 10 + (d & 15));
      }
      const sgn = c.rd8(la + 9) & 0x80;
      if (!canPush(c, fx)) return;
      fromInteger(fx, v);
      c.fpuSw &= ~SW_C1;
      push(c, sgn && v === 0n ? 1 : fx.s ^ (sgn ? 1 : 0), fx.e, fx.m);
      return;
    }
    case 0xd92:
    case 0xd93:
    case 0xdd2:
    case 0xdd3:
      return fstMem(c, st, la, b === 0xd9 ? 4 : 8, reg === 3);
    case 0xdb7: { // FSTP m80
      const p0 = phys(c, 0);
      const fx = begin(c, st.fx, false);
      let s = 1, e = 0x7fff, mm = INDEF_M;
      if (empty(c, p0)) {
        if (!underflow(c, fx)) return;
      } else {
        load(st, p0);
        s = st.s;
        e = st.e;
        mm = st.m;
        c.fpuSw &= ~SW_C1;
      }
      c.checkW(la);
      c.checkW(la + 9);
      c.wr64(la, Number(mm & 0xffffffffn) | 0, Number(mm >> 32n) | 0);
      c.wr16(la + 8, (s << 15) | e);
      pop(c);
      return;
    }
    case 0xdb1:
    case 0xdb2:
    case 0xdb3:
    case 0xdd1:
    case 0xdf1:
    case 0xdf2:
    case 0xdf3:
    case 0xdf7: {
      const bytes = b === 0xdb ? 4 : b === 0xdd || reg === 7 ? 8 : 2;
      return fistMem(c, st, la, bytes, reg === 1, reg !== 2);
    }
    case 0xdf6:
      return fbstp(c, st, la);
    case 0xd94: // FLDENV
      fldenv(it, la);
      return;
    case 0xd95: // FLDCW
      c.fpuCw = c.rd16(la) | 0x40;
      updateEs(c);
      return;
    case 0xd96: // FNSTENV
      fstenv(it, la);
      c.fpuCw |= 0x3f;
      return;
    case 0xd97: // FNSTCW
      c.wr16(la, c.fpuCw);
      return;
    case 0xdd4: { // FRSTOR
      const n = fldenv(it, la);
      for (let k = 0; k < 8; k++) {
        const a = la + n + k * 10;
        const lo = c.rd64(a), hi = c.hi;
        const se = c.rd16(a + 8);
        const p = phys(c, k);
        const was = c.fpuTw;
        putReg(c, p, se >> 15, se & 0x7fff, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
        c.fpuTw = was;
      }
      return;
    }
    case 0xdd6: { // FNSAVE
      const n = fstenv(it, la);
      for (let k = 0; k < 8; k++) {
        const p = phys(c, k);
        const a = la + n + k * 10;
        c.wr32(a, st.dv.getInt32(p * 16, true));
        c.wr32(a + 4, st.dv.getInt32(p * 16 + 4, true));
        c.wr16(a + 8, st.dv.getUint16(p * 16 + 8, true));
      }
      finit(c);
      return;
    }
    case 0xdd7: // FNSTSW m16
      c.wr16(la, c.fpuSw);
      return;
  }
  it.unimpl(`x87 ${b.toString(16)} /${reg}`);
}

/** FST/FSTP m32/m64. */
function fstMem(c: Cpu, st: X87, la: number, bytes: number, popIt: boolean): void {
  const p0 = phys(c, 0);
  const fx = begin(c, st.fx, false);
  let bits: bigint;
  if (empty(c, p0)) {
    if (!underflow(c, fx)) return;
    bits = bytes === 4 ? 0xffc00000n : 0xfff8000000000000n;
  } else {
    load(st, p0);
    bits = toIeee(fx, st.s, st.e, st.m, bytes === 4 ? FMT32 : FMT64);
    // Unmasked OE/UE leave the memory operand unchanged (SDM vol. 1 4.9.2), without PE or C1.
    const noStore = fx.exc & ~fx.masks & (OE | UE);
    if (noStore) {
      fx.exc &= ~PE;
      fx.up = false;
    }
    if (!commitFlags(c, fx) || noStore) return;
  }
  if (bytes === 4) c.wr32(la, Number(bits) | 0);
  else c.wr64(la, Number(bits & 0xffffffffn) | 0, Number(bits >> 32n) | 0);
  if (popIt) pop(c);
}

/** FIST/FISTP/FISTTP m16/m32/m64. */
function fistMem(c: Cpu, st: X87, la: number, bytes: number, trunc: boolean, popIt: boolean): void {
  const p0 = phys(c, 0);
  const fx = begin(c, st.fx, false);
  const lim = 1n << BigInt(bytes * 8 - 1);
  let v: bigint | null = null;
  if (empty(c, p0)) {
    if (!underflow(c, fx)) return;
  } else {
    load(st, p0);
    v = toInteger(fx, st.s, st.e, st.m, trunc);
    if (v === null || v >= lim || v < -lim) {
      fx.exc = (fx.exc & DE) | IE;
      fx.up = false;
      v = null;
    }
    if (!commitFlags(c, fx)) return;
  }
  const out = v === null ? -lim : v;
  if (bytes === 2) c.wr16(la, Number(BigInt.asUintN(16, out)));
  else if (bytes === 4) c.wr32(la, Number(BigInt.asIntN(32, out)));
  else {
    const u = BigInt.asUintN(64, out);
    c.wr64(la, Number(u & 0xffffffffn) | 0, Number(u >> 32n) | 0);
  }
  if (popIt) pop(c);
}

function fbstp(c: Cpu, st: X87, la: number): void {
  const p0 = phys(c, 0);
  const fx = begin(c, st.fx, false);
  let v: bigint | null = null;
  let neg = 0;
  if (empty(c, p0)) {
    if (!underflow(c, fx)) return;
  } else {
    load(st, p0);
    v = toInteger(fx, st.s, st.e, st.m, false);
    neg = st.s;
    if (v === null || v > 999999999999999999n || v < -999999999999999999n) {
      fx.exc = (fx.exc & DE) | IE;
      fx.up = false;
      v = null;
    }
    if (!commitFlags(c, fx)) return;
  }
  c.checkW(la);
  c.checkW(la + 9);
  if (v === null) {
    // The packed BCD indefinite.
    for (let k = 0; k < 7; k++) c.wr8(la + k, 0);
    c.wr8(la + 7, 0xc0);
    c.wr8(la + 8, 0xff);
    c.wr8(la + 9, 0xff);
  } else {
    let a = v < 0n ? -v : v;
    for (let k = 0; k < 9; k++) {
      const d = Number(a % 100n);
      a /= 100n;
      c.wr8(la + k, ((d / 10) | 0) << 4 | (d % 10));
    }
    c.wr8(la + 9, neg ? 0x80 : 0);
  }
  pop(c);
}

/** FNSTENV to la in the current mode and operand size; returns the environment's size. */
function fstenv(it: Interp, la: number): number {
  const c = it.c;
  const st = x87State(c);
  const tw = fullTag(c);
  const real = (c.cr0 & CR0_PE) === 0 || (c.getFlags() & 0x20000) !== 0;
  const n = it.opsz === 2 ? 14 : 28;
  c.checkW(la);
  c.checkW(la + n - 1);
  if (n === 14) {
    const w = [c.fpuCw, c.fpuSw, tw];
    for (let k = 0; k < 3; k++) c.wr16(la + 2 * k, w[k]);
    if (real) {
      const fip = st.fip + st.fcs * 16, fdp = st.fdp + st.fds * 16;
      c.wr16(la + 6, fip & 0xffff);
      c.wr16(la + 8, ((fip >>> 16) & 0xf) << 12 | st.fop);
      c.wr16(la + 10, fdp & 0xffff);
      c.wr16(la + 12, ((fdp >>> 16) & 0xf) << 12);
    } else {
      c.wr16(la + 6, st.fip & 0xffff);
      c.wr16(la + 8, st.fcs);
      c.wr16(la + 10, st.fdp & 0xffff);
      c.wr16(la + 12, st.fds);
    }
    return n;
  }
  c.wr32(la, 0xffff0000 | c.fpuCw);
  c.wr32(la + 4, 0xffff0000 | c.fpuSw);
  c.wr32(la + 8, 0xffff0000 | tw);
  if (real) {
    const fip = (st.fip + st.fcs * 16) >>> 0, fdp = (st.fdp + st.fds * 16) >>> 0;
    c.wr32(la + 12, 0xffff0000 | (fip & 0xffff));
    c.wr32(la + 16, ((fip >>> 16) << 12) | st.fop);
    c.wr32(la + 20, 0xffff0000 | (fdp & 0xffff));
    c.wr32(la + 24, (fdp >>> 16) << 12);
  } else {
    c.wr32(la + 12, st.fip);
    c.wr32(la + 16, st.fcs | (st.fop << 16));
    c.wr32(la + 20, st.fdp);
    c.wr32(la + 24, 0xffff0000 | st.fds);
  }
  return n;
}

/** FLDENV from la; returns the environment's size. */
function fldenv(it: Interp, la: number): number {
  const c = it.c;
  const st = x87State(c);
  const real = (c.cr0 & CR0_PE) === 0 || (c.getFlags() & 0x20000) !== 0;
  const n = it.opsz === 2 ? 14 : 28;
  const w = n === 14 ? 2 : 4;
  const cw = c.rd16(la), sw = c.rd16(la + w), tw = c.rd16(la + 2 * w);
  c.rd8(la + n - 1);
  if (n === 14) {
    const a = c.rd16(la + 6), b = c.rd16(la + 8), d = c.rd16(la + 10), e = c.rd16(la + 12);
    if (real) {
      st.fip = a | ((b >> 12) << 16);
      st.fop = b & 0x7ff;
      st.fdp = d | ((e >> 12) << 16);
      st.fcs = st.fds = 0;
    } else {
      st.fip = a;
      st.fcs = b;
      st.fdp = d;
      st.fds = e;
    }
  } else {
    const a = c.rd32(la + 12), b = c.rd32(la + 16), d = c.rd32(la + 20), e = c.rd32(la + 24);
    if (real) {
      st.fip = ((a & 0xffff) | ((b >>> 12) << 16)) >>> 0;
      st.fop = b & 0x7ff;
      st.fdp = ((d & 0xffff) | ((e >>> 12) << 16)) >>> 0;
      st.fcs = st.fds = 0;
    } else {
      st.fip = a >>> 0;
      st.fcs = b & 0xffff;
      st.fop = (b >>> 16) & 0x7ff;
      st.fdp = d >>> 0;
      st.fds = e & 0xffff;
    }
  }
  c.fpuCw = cw | 0x40;
  c.fpuSw = sw;
  let ab = 0;
  for (let p = 0; p < 8; p++) if (((tw >> (2 * p)) & 3) !== 3) ab |= 1 << p;
  c.fpuTw = ab;
  updateEs(c);
  return n;
}
