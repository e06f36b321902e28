/**
 * The x87 FPU (escape opcodes D8-DF; SDM vol. 1 ch. 8, vol. 2 "FADD".."FYL2XP1"): the register stack
 * over `Cpu.fpr` (FXSAVE layout: physical register p at bytes 16p..16p+9), TOP/tag/status/control words,
 * the stack fault rules with their masked responses, pending unmasked exceptions delivered as #MF on the
 * next waiting instruction (CR0.NE), FLDENV/FSTENV/FSAVE/FRSTOR in 16- and 32-bit formats, and the
 * arithmetic from f80.ts / x87_trans.ts.
 * @module
 */
import { type Cpu, CR0_EM, CR0_NE, CR0_PE, CR0_TS, CS, DS, EXC_MF, EXC_NM, F_CF, F_PF, F_ZF } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import {
  DE,
  fadd,
  fcmp,
  fdiv,
  FMT32,
  FMT64,
  fmul,
  fprem,
  frndint,
  fromIeee,
  fromInteger,
  fscale,
  fsqrt,
  Fx,
  fxtract,
  IE,
  INDEF_M,
  K_BAD,
  K_DEN,
  K_INF,
  K_NORM,
  K_QNAN,
  K_SNAN,
  K_ZERO,
  kind,
  OE,
  PE,
  SF,
  toIeee,
  toInteger,
  UE,
  ZE,
} from "./f80.ts";
import { constant, f2xm1, fpatan, fsincos, fyl2x, fyl2xp1 } from "./x87_trans.ts";

/** Status word bits. */
export const SW_ES = 0x80, SW_C0 = 0x100, SW_C1 = 0x200, SW_C2 = 0x400, SW_C3 = 0x4000, SW_B = 0x8000;
const SW_CC = SW_C0 | SW_C1 | SW_C2 | SW_C3;

/** Per-vCPU x87 working state not kept in Cpu: views, scratch results and the last-instruction pointers. */
export class X87 {
  readonly dv: DataView;
  readonly fx = new Fx();
  readonly fx2 = new Fx();
  /** Last non-control instruction: opcode (11 bits), CS:IP and the data pointer. */
  fop = 0;
  fip = 0;
  fcs = 0;
  fdp = 0;
  fds = 0;
  constructor(c: Cpu) {
    this.dv = new DataView(c.fpr.buffer, c.fpr.byteOffset, 128);
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

function top(c: Cpu): number {
  return (c.fpuSw >> 11) & 7;
}

function setTop(c: Cpu, t: number): void {
  c.fpuSw = (c.fpuSw & ~0x3800) | ((t & 7) << 11);
}

/** Physical register of ST(i). */
function phys(c: Cpu, i: number): number {
  return (top(c) + i) & 7;
}

function empty(c: Cpu, p: number): boolean {
  return (c.fpuTw & (1 << p)) === 0;
}

function regSE(st: X87, p: number): number {
  return st.dv.getUint16(p * 16 + 8, true);
}

function regM(st: X87, p: number): bigint {
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

/** Operand A/B of the current instruction. */
let aS = 0, aE = 0, aM = 0n, bS = 0, bE = 0, bM = 0n;

function loadA(st: X87, p: number): void {
  const se = regSE(st, p);
  aS = se >> 15;
  aE = se & 0x7fff;
  aM = regM(st, p);
}

function loadB(st: X87, p: number): void {
  const se = regSE(st, p);
  bS = se >> 15;
  bE = se & 0x7fff;
  bM = regM(st, p);
}

/** Move fx's result into operand B. */
function fxToB(fx: Fx): void {
  bS = fx.s;
  bE = fx.e;
  bM = fx.m;
}

/**
 * Merge the exceptions of `fx` into the status word (C1 from rounding unless `keepC1`); returns whether the
 * destination may be written: not when IE, DE or ZE is unmasked (SDM vol. 1 8.6).
 */
function commitFlags(c: Cpu, fx: Fx, keepC1 = false): boolean {
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
function underflow(c: Cpu, fx: Fx): boolean {
  fx.invalid();
  fx.exc |= SF;
  fx.up = false;
  const ok = commitFlags(c, fx);
  c.fpuSw &= ~SW_C1;
  return ok;
}

/** Stack overflow on push: IE+SF, C1=1; masked: the indefinite is pushed. */
function overflow(c: Cpu, fx: Fx): void {
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
function canPush(c: Cpu, fx: Fx): boolean {
  if (empty(c, (top(c) - 1) & 7)) return true;
  overflow(c, fx);
  return false;
}

function push(c: Cpu, s: number, e: number, m: bigint): void {
  const t = (top(c) - 1) & 7;
  setTop(c, t);
  putReg(c, t, s, e, m);
}

function pop(c: Cpu): void {
  const t = top(c);
  c.fpuTw &= ~(1 << t);
  setTop(c, t + 1);
}

function begin(c: Cpu, fx: Fx, usePc: boolean): Fx {
  fx.begin(c.fpuCw, usePc);
  return fx;
}

/** Raise a pending unmasked exception as #MF (CR0.NE=1; with NE=0 the FERR# line is not modelled). */
function checkPending(c: Cpu): void {
  if ((c.fpuSw & SW_ES) && (c.cr0 & CR0_NE)) c.fault(EXC_MF);
}

/** FWAIT: deliver a pending x87 exception. */
export function fwait(c: Cpu): void {
  if ((c.cr0 & (CR0_TS | 2)) === (CR0_TS | 2)) c.fault(EXC_NM);
  checkPending(c);
}

/** The arithmetic of D8/DC/DA/DE /0-/7 on a (first operand) and b: 0 add, 1 mul, 4 a-b, 5 b-a, 6 a/b, 7 b/a. */
function arith(fx: Fx, op: number): void {
  switch (op) {
    case 0:
      return fadd(fx, aS, aE, aM, bS, bE, bM, false);
    case 1:
      return fmul(fx, aS, aE, aM, bS, bE, bM);
    case 4:
      return fadd(fx, aS, aE, aM, bS, bE, bM, true);
    case 5:
      return fadd(fx, bS, bE, bM, aS, aE, aM, true);
    case 6:
      return fdiv(fx, aS, aE, aM, bS, bE, bM);
    default:
      return fdiv(fx, bS, bE, bM, aS, aE, aM);
  }
}

/** Set C3/C2/C0 from an fcmp result (0 >, 1 <, 2 =, 3 unordered). */
function setCmp(c: Cpu, r: number): void {
  const cc = r === 0 ? 0 : r === 1 ? SW_C0 : r === 2 ? SW_C3 : SW_C0 | SW_C2 | SW_C3;
  c.fpuSw = (c.fpuSw & ~SW_CC) | cc;
}

/** Compare ST(0) with operand B (already loaded); `pops` registers popped when allowed. */
function compare(c: Cpu, st: X87, quiet: boolean, pops: number, eflags: boolean): void {
  const fx = begin(c, st.fx, false);
  const p0 = phys(c, 0);
  let r = 3;
  if (empty(c, p0) || emptyOperand) {
    fx.exc = IE | SF;
  } else {
    loadA(st, p0);
    r = fcmp(fx, aS, aE, aM, bS, bE, bM, quiet);
  }
  fx.up = false;
  const ok = commitFlags(c, fx);
  if (!ok) {
    // Unmasked: the condition codes are still written.
    if (!eflags) {
      setCmp(c, fx.exc & IE ? 3 : r);
    }
    return;
  }
  if (eflags) {
    const f = r === 0 ? 0 : r === 1 ? F_CF : r === 2 ? F_ZF : F_ZF | F_PF | F_CF;
    c.setFlags((c.getFlags() & ~(F_ZF | F_PF | F_CF | 0x800 | 0x80 | 0x10)) | f);
  } else setCmp(c, r);
  for (let i = 0; i < pops; i++) pop(c);
}

/** Write fx's result to ST(i) (after commitFlags said so) and pop `pops` times. */
function writeSt(c: Cpu, fx: Fx, i: number, pops: number): void {
  if (!commitFlags(c, fx)) return;
  putReg(c, phys(c, i), fx.s, fx.e, fx.m);
  for (let k = 0; k < pops; k++) pop(c);
}

/** Two-operand arithmetic on registers: ST(d) = ST(d) op ST(s) per the D8-order `op`. */
function arithReg(c: Cpu, st: X87, op: number, d: number, s: number, pops: number): void {
  const fx = begin(c, st.fx, true);
  const pd = phys(c, d), ps = phys(c, s);
  if (empty(c, pd) || empty(c, ps)) {
    if (underflow(c, fx)) {
      putReg(c, pd, 1, 0x7fff, INDEF_M);
      for (let k = 0; k < pops; k++) pop(c);
    }
    return;
  }
  loadA(st, pd);
  loadB(st, ps);
  arith(fx, op);
  writeSt(c, fx, d, pops);
}

/** Load a memory operand of D8/DA/DC/DE into B: 0 m32fp, 1 m32int, 2 m64fp, 3 m16int. Returns DE/IE bits. */
function loadMemB(c: Cpu, it: Interp, fx: Fx, b: number): void {
  const la = it.la;
  switch (b) {
    case 0xd8:
      fromIeee(fx, BigInt(c.rd32(la) >>> 0), FMT32);
      break;
    case 0xdc: {
      const lo = c.rd64(la);
      fromIeee(fx, (BigInt(c.hi >>> 0) << 32n) | BigInt(lo >>> 0), FMT64);
      break;
    }
    case 0xda:
      fromInteger(fx, BigInt(c.rd32(la) | 0));
      break;
    default:
      fromInteger(fx, BigInt((c.rd16(la) << 16) >> 16));
  }
  fxToB(fx);
}

/** x87 escape opcodes D8-DF. */
export function execX87(it: Interp, b: number): void {
  const c = it.c;
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(EXC_NM);
  const m = c.fetch8();
  c.ip = c.ip - 1;
  const reg = (m >> 3) & 7;
  const st = x87State(c);
  if (m >= 0xc0) {
    const nowait = (b === 0xdb && m >= 0xe0 && m <= 0xe4) || (b === 0xdf && m === 0xe0);
    if (!nowait) checkPending(c);
    c.fetch8();
    if (!nowait && !(b === 0xd9 && m === 0xd0)) note(it, st, b, m, false);
    execReg(it, st, b, m);
    return;
  }
  const nowait = (b === 0xd9 && reg >= 6) || (b === 0xdd && reg >= 6);
  if (!nowait) checkPending(c);
  it.modrm(0);
  const ctl = (b === 0xd9 && reg >= 4) || (b === 0xdd && (reg === 4 || reg >= 6));
  if (!ctl) note(it, st, b, m, true);
  execMem(it, st, b, reg);
}

/** Record FOP/FIP/FCS/FDP/FDS for FSTENV/FSAVE/FXSAVE. */
function note(it: Interp, st: X87, b: number, m: number, mem: boolean): void {
  const c = it.c;
  st.fop = ((b & 7) << 8) | m;
  st.fip = c.startIp - c.segBase[CS];
  st.fcs = c.segSel[CS];
  if (mem) {
    st.fdp = it.ea;
    st.fds = c.segSel[it.seg >= 0 ? it.seg : DS];
  }
}

function execReg(it: Interp, st: X87, b: number, m: number): void {
  const c = it.c;
  const reg = (m >> 3) & 7, i = m & 7;
  switch (b) {
    case 0xd8:
      if (reg === 2 || reg === 3) {
        loadStB(c, st, i);
        return compare(c, st, false, reg - 2, false);
      }
      return arithReg(c, st, reg, 0, i, 0);
    case 0xdc:
    case 0xde:
      if (reg === 2 || reg === 3) {
        if (b === 0xde && reg === 3 && i !== 1) return it.unimpl(`x87 de ${m.toString(16)}`);
        loadStB(c, st, b === 0xde && reg === 3 ? 1 : i);
        return compare(c, st, false, b === 0xde ? (reg === 3 ? 2 : 1) : reg - 2, false);
      }
      // DC/DE register forms name ST(i) as the destination: SUB/SUBR and DIV/DIVR trade places.
      return arithReg(c, st, reg >= 4 ? reg ^ 1 : reg, i, 0, b === 0xde ? 1 : 0);
    case 0xd9:
      return execD9(c, st, it, m);
    case 0xda:
      if (reg < 4) return fcmov(c, st, i, cmovCond(c, reg));
      if (m === 0xe9) {
        loadStB(c, st, 1);
        return compare(c, st, true, 2, false);
      }
      return it.unimpl(`x87 da ${m.toString(16)}`);
    case 0xdb:
      if (reg < 4) return fcmov(c, st, i, !cmovCond(c, reg));
      if (reg === 5 || reg === 6) {
        loadStB(c, st, i);
        return compare(c, st, reg === 5, 0, true);
      }
      switch (m) {
        case 0xe0: // FENI, FDISI, FSETPM (8087/287 leftovers): no-ops
        case 0xe1:
        case 0xe4:
          return;
        case 0xe2: // FNCLEX
          c.fpuSw &= ~(0xff | SW_B);
          return;
        case 0xe3: // FNINIT
          finit(c);
          return;
      }
      return it.unimpl(`x87 db ${m.toString(16)}`);
    case 0xdd:
      switch (reg) {
        case 0: // FFREE
          c.fpuTw &= ~(1 << phys(c, i));
          return;
        case 1: // FXCH4 (alias)
          return fxch(c, st, i);
        case 2:
        case 3:
          return fstReg(c, st, i, reg === 3 ? 1 : 0);
        case 4:
        case 5:
          loadStB(c, st, i);
          return compare(c, st, true, reg - 4, false);
      }
      return it.unimpl(`x87 dd ${m.toString(16)}`);
    default: // 0xdf
      switch (reg) {
        case 0: // FFREEP
          c.fpuTw &= ~(1 << phys(c, i));
          pop(c);
          return;
        case 1:
          return fxch(c, st, i);
        case 2:
        case 3:
          return fstReg(c, st, i, 1);
        case 4:
          if (m === 0xe0) {
            c.r[0] = (c.r[0] & ~0xffff) | c.fpuSw;
            return;
          }
          break;
        case 5:
        case 6:
          loadStB(c, st, i);
          return compare(c, st, reg === 5, 1, true);
      }
      return it.unimpl(`x87 df ${m.toString(16)}`);
  }
}

/** Load ST(i) into B for a compare; an empty register gives B = a value that makes compare() report SF. */
function loadStB(c: Cpu, st: X87, i: number): void {
  const p = phys(c, i);
  if (empty(c, p)) {
    // An empty operand compares as a stack underflow: mark with an unsupported encoding + SF below.
    bS = 0;
    bE = 0x7fff;
    bM = 0n;
    emptyOperand = true;
    return;
  }
  emptyOperand = false;
  loadB(st, p);
}
let emptyOperand = false;

function cmovCond(c: Cpu, reg: number): boolean {
  switch (reg) {
    case 0:
      return c.cf() !== 0;
    case 1:
      return c.zf() !== 0;
    case 2:
      return c.cf() !== 0 || c.zf() !== 0;
    default:
      return (c.getFlags() & F_PF) !== 0;
  }
}

function fcmov(c: Cpu, st: X87, i: number, cond: boolean): void {
  const p0 = phys(c, 0), pi = phys(c, i);
  if (empty(c, p0) || empty(c, pi)) {
    const fx = begin(c, st.fx, false);
    if (underflow(c, fx) && cond) putReg(c, p0, 1, 0x7fff, INDEF_M);
    return;
  }
  c.fpuSw &= ~SW_C1;
  if (cond) {
    loadA(st, pi);
    putReg(c, p0, aS, aE, aM);
  }
}

function fxch(c: Cpu, st: X87, i: number): void {
  const p0 = phys(c, 0), pi = phys(c, i);
  const e0 = empty(c, p0), ei = empty(c, pi);
  if (e0 || ei) {
    const fx = begin(c, st.fx, false);
    if (!underflow(c, fx)) return;
    // Masked response: empty operands become the indefinite, then the exchange happens.
    if (e0) putReg(c, p0, 1, 0x7fff, INDEF_M);
    if (ei) putReg(c, pi, 1, 0x7fff, INDEF_M);
  } else c.fpuSw &= ~SW_C1;
  loadA(st, p0);
  loadB(st, pi);
  putReg(c, p0, bS, bE, bM);
  putReg(c, pi, aS, aE, aM);
}

function fstReg(c: Cpu, st: X87, i: number, pops: number): void {
  const p0 = phys(c, 0);
  if (empty(c, p0)) {
    const fx = begin(c, st.fx, false);
    if (underflow(c, fx)) {
      putReg(c, phys(c, i), 1, 0x7fff, INDEF_M);
      if (pops) pop(c);
    }
    return;
  }
  c.fpuSw &= ~SW_C1;
  loadA(st, p0);
  putReg(c, phys(c, i), aS, aE, aM);
  if (pops) pop(c);
}

function finit(c: Cpu): void {
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

function execD9(c: Cpu, st: X87, it: Interp, m: number): void {
  const reg = (m >> 3) & 7, i = m & 7;
  switch (reg) {
    case 0: { // FLD ST(i)
      const fx = begin(c, st.fx, false);
      const pi = phys(c, i);
      if (empty(c, pi)) {
        if (!canPush(c, fx)) return;
        if (underflow(c, fx)) push(c, 1, 0x7fff, INDEF_M);
        return;
      }
      loadA(st, pi);
      if (!canPush(c, fx)) return;
      c.fpuSw &= ~SW_C1;
      push(c, aS, aE, aM);
      return;
    }
    case 1:
      return fxch(c, st, i);
    case 2:
      if (i === 0) return; // FNOP
      break;
    case 3: // FSTP1 (alias)
      return fstReg(c, st, i, 1);
    case 4:
      if (i === 0 || i === 1 || i === 4 || i === 5) return unary(c, st, i);
      break;
    case 5:
      if (i === 7) break;
      return fldConst(c, st, i);
    default: {
      switch (m) {
        case 0xf6: // FDECSTP
          c.fpuSw &= ~SW_C1;
          setTop(c, top(c) - 1);
          return;
        case 0xf7: // FINCSTP
          c.fpuSw &= ~SW_C1;
          setTop(c, top(c) + 1);
          return;
        case 0xf4:
          return xtract(c, st);
        case 0xf5:
        case 0xf8:
          return prem(c, st, m === 0xf5);
        case 0xfa:
        case 0xfc: {
          const p0 = phys(c, 0);
          const fx = begin(c, st.fx, m === 0xfa);
          if (empty(c, p0)) {
            if (underflow(c, fx)) putReg(c, p0, 1, 0x7fff, INDEF_M);
            return;
          }
          loadA(st, p0);
          if (m === 0xfa) fsqrt(fx, aS, aE, aM);
          else frndint(fx, aS, aE, aM);
          return writeSt(c, fx, 0, 0);
        }
        case 0xfd: {
          const fx = begin(c, st.fx, false);
          const p0 = phys(c, 0), p1 = phys(c, 1);
          if (empty(c, p0) || empty(c, p1)) {
            if (underflow(c, fx)) putReg(c, p0, 1, 0x7fff, INDEF_M);
            return;
          }
          loadA(st, p0);
          loadB(st, p1);
          fscale(fx, aS, aE, aM, bS, bE, bM);
          return writeSt(c, fx, 0, 0);
        }
        default:
          return transcendental(c, st, m);
      }
    }
  }
  it.unimpl(`x87 d9 ${m.toString(16)}`);
}

/** FCHS, FABS, FTST, FXAM. */
function unary(c: Cpu, st: X87, i: number): void {
  const p0 = phys(c, 0);
  const fx = begin(c, st.fx, false);
  if (i === 5) { // FXAM works on empty registers too
    let cc: number;
    if (empty(c, p0)) cc = SW_C3 | SW_C0;
    else {
      loadA(st, p0);
      const k = kind(aE, aM);
      cc = k === K_BAD
        ? 0
        : k === K_QNAN || k === K_SNAN
        ? SW_C0
        : k === K_NORM
        ? SW_C2
        : k === K_INF
        ? SW_C2 | SW_C0
        : k === K_ZERO
        ? SW_C3
        : SW_C3 | SW_C2;
    }
    const sign = (regSE(st, p0) >> 15) & 1;
    c.fpuSw = (c.fpuSw & ~SW_CC) | cc | (sign ? SW_C1 : 0);
    return;
  }
  if (empty(c, p0)) {
    if (i === 4) {
      fx.exc = IE | SF;
      if (commitFlags(c, fx)) setCmp(c, 3);
      c.fpuSw &= ~SW_C1;
      return;
    }
    if (underflow(c, fx)) putReg(c, p0, 1, 0x7fff, INDEF_M);
    return;
  }
  loadA(st, p0);
  if (i === 4) {
    bS = bE = 0;
    bM = 0n;
    emptyOperand = false;
    return compare(c, st, false, 0, false);
  }
  c.fpuSw &= ~SW_C1;
  putReg(c, p0, i === 0 ? aS ^ 1 : 0, aE, aM);
}

function fldConst(c: Cpu, st: X87, i: number): void {
  const fx = begin(c, st.fx, false);
  if (!canPush(c, fx)) return;
  constant(fx, i);
  c.fpuSw &= ~SW_C1;
  push(c, fx.s, fx.e, fx.m);
}

function xtract(c: Cpu, st: X87): void {
  const fx = begin(c, st.fx, false);
  const p0 = phys(c, 0);
  if (empty(c, p0)) {
    if (underflow(c, fx)) {
      putReg(c, p0, 1, 0x7fff, INDEF_M);
      if (canPush(c, fx)) push(c, 1, 0x7fff, INDEF_M);
    }
    return;
  }
  if (!empty(c, (top(c) - 1) & 7)) return overflow(c, fx);
  loadA(st, p0);
  const sig = st.fx2;
  fxtract(fx, aS, aE, aM, sig);
  if (!commitFlags(c, fx)) return;
  putReg(c, p0, fx.s, fx.e, fx.m);
  push(c, sig.s, sig.e, sig.m);
}

function prem(c: Cpu, st: X87, ieee: boolean): void {
  const fx = begin(c, st.fx, false);
  const p0 = phys(c, 0), p1 = phys(c, 1);
  if (empty(c, p0) || empty(c, p1)) {
    if (underflow(c, fx)) putReg(c, p0, 1, 0x7fff, INDEF_M);
    return;
  }
  loadA(st, p0);
  loadB(st, p1);
  const q = fprem(fx, aS, aE, aM, bS, bE, bM, ieee);
  fx.up = false;
  if (!commitFlags(c, fx)) return;
  c.fpuSw = (c.fpuSw & ~SW_CC) | (q & 1 ? SW_C0 : 0) | (q & 2 ? SW_C1 : 0) | (q & 4 ? SW_C2 : 0) |
    (q & 8 ? SW_C3 : 0);
  putReg(c, p0, fx.s, fx.e, fx.m);
}

function execMem(it: Interp, st: X87, b: number, reg: number): void {
  const c = it.c;
  const la = it.la;
  if (b === 0xd8 || b === 0xdc || b === 0xda || b === 0xde) {
    const fx = begin(c, st.fx, true);
    loadMemB(c, it, fx, b);
    const memExc = fx.exc;
    if (reg === 2 || reg === 3) {
      emptyOperand = false;
      // The conversion's DE is reported with the compare's own flags.
      if (empty(c, phys(c, 0))) return compare(c, st, false, reg - 2, false);
      const f2 = begin(c, st.fx, false);
      loadA(st, phys(c, 0));
      const r = fcmp(f2, aS, aE, aM, bS, bE, bM, false);
      f2.exc |= memExc;
      f2.up = false;
      if (!commitFlags(c, f2)) {
        setCmp(c, f2.exc & IE ? 3 : r);
        return;
      }
      setCmp(c, r);
      if (reg === 3) pop(c);
      return;
    }
    const p0 = phys(c, 0);
    if (empty(c, p0)) {
      if (underflow(c, fx)) putReg(c, p0, 1, 0x7fff, INDEF_M);
      return;
    }
    loadA(st, p0);
    fx.exc = memExc;
    arith(fx, reg);
    return writeSt(c, fx, 0, 0);
  }
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
        loadA(st, p0);
        s = aS;
        e = aE;
        mm = aM;
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

/** ES/B follow the unmasked exception flags (after FLDCW/FLDENV/FRSTOR). */
function updateEs(c: Cpu): void {
  if (c.fpuSw & ~c.fpuCw & 0x3f) c.fpuSw |= SW_ES | SW_B;
  else c.fpuSw &= ~(SW_ES | SW_B);
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
    loadA(st, p0);
    bits = toIeee(fx, aS, aE, aM, bytes === 4 ? FMT32 : FMT64);
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
    loadA(st, p0);
    v = toInteger(fx, aS, aE, aM, trunc);
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
    loadA(st, p0);
    v = toInteger(fx, aS, aE, aM, false);
    neg = aS;
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

/** D9 F0-F3, F9, FB, FE, FF: F2XM1, FYL2X, FPTAN, FPATAN, FYL2XP1, FSINCOS, FSIN, FCOS. */
function transcendental(c: Cpu, st: X87, m: number): void {
  const fx = begin(c, st.fx, false);
  const p0 = phys(c, 0), p1 = phys(c, 1);
  const two = m === 0xf1 || m === 0xf3 || m === 0xf9;
  if (empty(c, p0) || (two && empty(c, p1))) {
    if (!underflow(c, fx)) return;
    if (two) {
      putReg(c, p1, 1, 0x7fff, INDEF_M);
      pop(c);
    } else {
      putReg(c, p0, 1, 0x7fff, INDEF_M);
      if ((m === 0xf2 || m === 0xfb) && canPush(c, fx)) push(c, 1, 0x7fff, INDEF_M);
    }
    return;
  }
  loadA(st, p0);
  if (two) {
    loadB(st, p1);
    if (m === 0xf1) fyl2x(fx, bS, bE, bM, aS, aE, aM);
    else if (m === 0xf3) fpatan(fx, bS, bE, bM, aS, aE, aM);
    else fyl2xp1(fx, bS, bE, bM, aS, aE, aM);
    return writeSt(c, fx, 1, 1);
  }
  if (m === 0xf0) {
    f2xm1(fx, aS, aE, aM);
    return writeSt(c, fx, 0, 0);
  }
  // FSIN, FCOS, FPTAN, FSINCOS: out of range (|x| >= 2^63) sets C2 and leaves the stack alone.
  const pushes = m === 0xf2 || m === 0xfb;
  if (pushes && !empty(c, (top(c) - 1) & 7)) return overflow(c, fx);
  const which = m === 0xfe ? 0 : m === 0xff ? 1 : m === 0xf2 ? 2 : 0;
  if (!fsincos(fx, aS, aE, aM, which)) {
    c.fpuSw |= SW_C2;
    return;
  }
  c.fpuSw &= ~SW_C2;
  if (m === 0xfb) {
    const f2 = st.fx2;
    f2.begin(c.fpuCw, false);
    f2.exc = fx.exc & (IE | DE);
    fsincos(f2, aS, aE, aM, 1);
    const sinS = fx.s, sinE = fx.e, sinM = fx.m;
    fx.exc |= f2.exc;
    fx.up = f2.up;
    if (!commitFlags(c, fx)) return;
    putReg(c, p0, sinS, sinE, sinM);
    push(c, f2.s, f2.e, f2.m);
    return;
  }
  if (!commitFlags(c, fx)) return;
  putReg(c, p0, fx.s, fx.e, fx.m);
  if (m === 0xf2 && kind(fx.e, fx.m) < K_QNAN) push(c, 0, 16383, 1n << 63n);
  else if (m === 0xf2) push(c, fx.s, fx.e, fx.m);
}
