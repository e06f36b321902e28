/**
 * x87 register stack and status bookkeeping (SDM vol. 1 8.1-8.5): physical registers in `Cpu.fpr` (FXSAVE
 * layout, register p at bytes 16p..16p+9), TOP, the abridged tag bits in `Cpu.fpuTw`, exception flags with
 * ES/B and C1, the stack fault responses, and pending-exception delivery (#MF).
 * @module
 */
import type { Interp } from "./interp.ts";
import { type Cpu, CR0_NE, CR0_TS, EXC_MF, EXC_NM } from "./cpu.ts";
import { DE, Fx, IE, INDEF_M, K_DEN, K_NORM, K_ZERO, kind, PE, SF, ZE } from "./f80.ts";

/** Status word bits. */
export const SW_ES = 0x80, SW_C0 = 0x100, SW_C1 = 0x200, SW_C2 = 0x400, SW_C3 = 0x4000, SW_B = 0x8000;
export const SW_CC = SW_C0 | SW_C1 | SW_C2 | SW_C3;

/** Per-vCPU x87 working state not kept in Cpu: views, scratch results and the last-instruction pointers. */
export class X87 {
  readonly dv: DataView;
  readonly fx = new Fx();
  readonly fx2 = new Fx();
  /** ST(i) as read by load(): sign, biased exponent, significand. */
  s = 0;
  e = 0;
  m = 0n;
  /** `Cpu.fpuPtr` (saved with the vCPU): FOP, FIP, FCS, FDP, FDS of the last non-control instruction. */
  readonly #ptr: Float64Array;
  constructor(c: Cpu) {
    this.dv = new DataView(c.fpr.buffer, c.fpr.byteOffset, 128);
    this.#ptr = c.fpuPtr;
  }
  get fop(): number {
    return this.#ptr[0];
  }
  set fop(v: number) {
    this.#ptr[0] = v;
  }
  get fip(): number {
    return this.#ptr[1];
  }
  set fip(v: number) {
    this.#ptr[1] = v;
  }
  get fcs(): number {
    return this.#ptr[2];
  }
  set fcs(v: number) {
    this.#ptr[2] = v;
  }
  get fdp(): number {
    return this.#ptr[3];
  }
  set fdp(v: number) {
    this.#ptr[3] = v;
  }
  get fds(): number {
    return this.#ptr[4];
  }
  set fds(v: number) {
    this.#ptr[4] = v;
  }
}

const states = new WeakMap<Cpu, X87>();

/** The x87 state of a vCPU (created on first use). */
export function x87State(c: Cpu): X87 {
  let s = states.get(c);
  if (!s) {
    s = new X87(c);
    states.set(c, s);
  }
  return s;
}

export function top(c: Cpu): number {
  return (c.fpuSw >> 11) & 7;
}

export function setTop(c: Cpu, t: number): void {
  c.fpuSw = (c.fpuSw & ~0x3800) | ((t & 7) << 11);
}

/** Physical register of ST(i). */
export function phys(c: Cpu, i: number): number {
  return (top(c) + i) & 7;
}

export function empty(c: Cpu, p: number): boolean {
  return (c.fpuTw & (1 << p)) === 0;
}

export function regSE(st: X87, p: number): number {
  return st.dv.getUint16(p * 16 + 8, true);
}

export function regM(st: X87, p: number): bigint {
  const o = p * 16;
  return (BigInt(st.dv.getUint32(o + 4, true)) << 32n) | BigInt(st.dv.getUint32(o, true));
}

/** Write a value into physical register p (marks it valid). */
export function putReg(c: Cpu, p: number, s: number, e: number, m: bigint): void {
  const st = x87State(c);
  const o = p * 16;
  st.dv.setUint32(o, Number(m & 0xffffffffn), true);
  st.dv.setUint32(o + 4, Number(m >> 32n), true);
  st.dv.setUint16(o + 8, (s << 15) | e, true);
  c.fpuTw |= 1 << p;
}

/**
 * Merge the exceptions of `fx` into the status word (C1 from rounding unless `keepC1`); returns whether the
 * destination may be written: not when IE, DE or ZE is unmasked (SDM vol. 1 8.6).
 */
export function commitFlags(c: Cpu, fx: Fx, keepC1 = false): boolean {
  let exc = fx.exc;
  if (exc & IE) exc &= ~DE; // an invalid operand outranks a denormal one
  const unmasked = exc & ~fx.masks & 0x3f;
  if (unmasked & (IE | DE | ZE)) exc &= IE | DE | ZE | SF;
  let sw = c.fpuSw | (exc & 0x7f);
  if (!keepC1) sw = (sw & ~SW_C1) | (fx.up && (exc & PE) ? SW_C1 : 0);
  if (exc & ~fx.masks & 0x3f) sw |= SW_ES | SW_B;
  c.fpuSw = sw;
  return (unmasked & (IE | DE | ZE)) === 0;
}

/** Stack underflow (an empty register read): IE+SF with C1=0; fx holds the indefinite. Returns writable. */
export function underflow(c: Cpu, fx: Fx): boolean {
  fx.invalid();
  fx.exc |= SF;
  fx.up = false;
  const ok = commitFlags(c, fx);
  c.fpuSw &= ~SW_C1;
  return ok;
}

/** Stack overflow on push: IE+SF, C1=1; masked: the indefinite is pushed. */
export function overflow(c: Cpu, fx: Fx): void {
  fx.invalid();
  fx.exc |= SF;
  if (commitFlags(c, fx)) {
    const t = (top(c) - 1) & 7;
    setTop(c, t);
    putReg(c, t, 1, 0x7fff, INDEF_M);
  }
  c.fpuSw |= SW_C1;
}

/** True when ST(7) is free for a push (else the overflow response is done). */
export function canPush(c: Cpu, fx: Fx): boolean {
  if (empty(c, (top(c) - 1) & 7)) return true;
  overflow(c, fx);
  return false;
}

export function push(c: Cpu, s: number, e: number, m: bigint): void {
  const t = (top(c) - 1) & 7;
  setTop(c, t);
  putReg(c, t, s, e, m);
}

export function pop(c: Cpu): void {
  const t = top(c);
  c.fpuTw &= ~(1 << t);
  setTop(c, t + 1);
}

export function begin(c: Cpu, fx: Fx, usePc: boolean): Fx {
  fx.begin(c.fpuCw, usePc);
  return fx;
}

/** Raise a pending unmasked exception as #MF (CR0.NE=1; with NE=0 the FERR# line is not modelled). */
export function checkPending(c: Cpu): void {
  if ((c.fpuSw & SW_ES) && (c.cr0 & CR0_NE)) c.fault(EXC_MF);
}

/** FWAIT: deliver a pending x87 exception. */
export function fwait(c: Cpu): void {
  if ((c.cr0 & (CR0_TS | 2)) === (CR0_TS | 2)) c.fault(EXC_NM);
  checkPending(c);
}

export function finit(c: Cpu): void {
  c.fpuCw = 0x37f;
  c.fpuSw = 0;
  c.fpuTw = 0;
  const st = x87State(c);
  st.fop =
    st.fip =
    st.fcs =
    st.fdp =
    st.fds =
      0;
}

/** Read physical register p into st.s/st.e/st.m. */
export function load(st: X87, p: number): void {
  const se = regSE(st, p);
  st.s = se >> 15;
  st.e = se & 0x7fff;
  st.m = regM(st, p);
}

/** ES/B follow the unmasked exception flags (after FLDCW/FLDENV/FRSTOR). */
export function updateEs(c: Cpu): void {
  if (c.fpuSw & ~c.fpuCw & 0x3f) c.fpuSw |= SW_ES | SW_B;
  else c.fpuSw &= ~(SW_ES | SW_B);
}

/** Full tag word (2 bits per physical register) from the abridged tags and the register contents. */
export function fullTag(c: Cpu): number {
  const st = x87State(c);
  let tw = 0;
  for (let p = 0; p < 8; p++) {
    let t = 3;
    if (!empty(c, p)) {
      const e = regSE(st, p) & 0x7fff;
      const k = kind(e, regM(st, p));
      t = k === K_ZERO ? 1 : k === K_NORM ? 0 : 2;
      if (k === K_DEN) t = 2;
    }
    tw |= t << (2 * p);
  }
  return tw;
}

/** FXSAVE bytes 6-23: FOP, FIP and FDP (64-bit with REX.W, else 32-bit offsets with FCS/FDS). */
export function fxsavePointers(it: Interp, la: number): void {
  const c = it.c;
  const st = x87State(c);
  c.wr16(la + 6, st.fop);
  c.wr32(la + 8, st.fip);
  c.wr32(la + 12, it.rexW ? Math.floor(st.fip / 4294967296) : st.fcs);
  c.wr32(la + 16, st.fdp);
  c.wr32(la + 20, it.rexW ? Math.floor(st.fdp / 4294967296) : st.fds);
}

/** FXRSTOR of FOP/FIP/FDP (the inverse of fxsavePointers). */
export function fxrstorPointers(it: Interp, la: number): void {
  const c = it.c;
  const st = x87State(c);
  st.fop = c.rd16(la + 6) & 0x7ff;
  const ip = c.rd32(la + 8) >>> 0, ipHi = c.rd32(la + 12) >>> 0;
  const dp = c.rd32(la + 16) >>> 0, dpHi = c.rd32(la + 20) >>> 0;
  if (it.rexW) {
    st.fip = ipHi * 4294967296 + ip;
    st.fdp = dpHi * 4294967296 + dp;
  } else {
    st.fip = ip;
    st.fcs = ipHi & 0xffff;
    st.fdp = dp;
    st.fds = dpHi & 0xffff;
  }
}
