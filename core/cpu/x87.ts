/**
 * The x87 FPU (escape opcodes D8-DF; SDM vol. 1 ch. 8, vol. 2 "FADD".."FYL2XP1"): the register stack
 * over `Cpu.fpr` (FXSAVE layout: physical register p at bytes 16p..16p+9), TOP/tag/status/control words,
 * the stack fault rules with their masked responses, pending unmasked exceptions delivered as #MF on the
 * next waiting instruction (CR0.NE), FLDENV/FSTENV/FSAVE/FRSTOR in 16- and 32-bit formats, and the
 * arithmetic from f80.ts / x87_trans.ts.
 * @module
 */
import { type Cpu, CR0_EM, CR0_TS, CS, DS, EXC_NM, F_CF, F_PF, F_ZF } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { segRead } from "./seglimit.ts";
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
  K_INF,
  K_NORM,
  K_QNAN,
  K_SNAN,
  K_ZERO,
  kind,
  SF,
} from "./f80.ts";
import { constant, f2xm1, fpatan, fsincos, fyl2x, fyl2xp1 } from "./x87_trans.ts";
import { execMemOther } from "./x87_mem.ts";
import {
  begin,
  canPush,
  checkPending,
  commitFlags,
  empty,
  finit,
  overflow,
  phys,
  pop,
  push,
  putReg,
  regM,
  regSE,
  setTop,
  SW_B,
  SW_C0,
  SW_C1,
  SW_C2,
  SW_C3,
  SW_CC,
  top,
  underflow,
  type X87,
  x87State,
} from "./x87_stack.ts";

export { fwait } from "./x87_stack.ts";

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
  if (c.segChk) segRead(c, it.ms, it.ea, b === 0xdc ? 8 : b === 0xde ? 2 : 4);
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
  return execMemOther(it, st, b, reg);
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
    // C1 follows the sine (ST(1)) rounding.
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
