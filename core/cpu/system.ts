/**
 * System semantics: segment loading with descriptor checks, far transfers, interrupt and exception
 * delivery in real, protected and long mode (IDT gates, TSS/IST stacks), IRET, SYSCALL/SYSRET,
 * control registers, descriptor-table instructions, MSRs and group 15 (SDM vol. 3A ch. 3, 5, 6).
 * @module
 */
import { xgetbv, xrstor, xsave, xsetbv } from "./xsave.ts";
import { cpuid } from "./cpuid.ts";
import { checkIoBitmap, sysenter, sysexit } from "./sysenter.ts";
import {
  CC_EAGER,
  type Cpu,
  CpuFault,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR4_PAE,
  CR4_PGE,
  CR4_PSE,
  CS,
  DS,
  EFER_LMA,
  EFER_LME,
  EFER_NXE,
  ES,
  EXC_DF,
  EXC_GP,
  EXC_NP,
  EXC_SS,
  EXC_UD,
  F_AC,
  F_ID,
  F_IF,
  F_IOPL,
  F_NT,
  F_RF,
  F_TF,
  F_VM,
  FS,
  GS,
  LDTR,
  SS,
  TR,
} from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { fxrstor, fxsave } from "./sse.ts";

const TWO32 = 4294967296;

// MSR numbers (SDM vol. 4; AMD APM vol. 2).
export const MSR_TSC = 0x10;
export const MSR_APIC_BASE = 0x1b;
export const MSR_FEATURE_CONTROL = 0x3a;
export const MSR_BIOS_SIGN_ID = 0x8b;
export const MSR_MTRRCAP = 0xfe;
export const MSR_SYSENTER_CS = 0x174;
export const MSR_SYSENTER_ESP = 0x175;
export const MSR_SYSENTER_EIP = 0x176;
export const MSR_MCG_CAP = 0x179;
export const MSR_MCG_STATUS = 0x17a;
export const MSR_MISC_ENABLE = 0x1a0;
export const MSR_PAT = 0x277;
export const MSR_MTRR_DEF_TYPE = 0x2ff;
export const MSR_TSC_DEADLINE = 0x6e0;
export const MSR_EFER = 0xc0000080;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SFMASK = 0xc0000084;
export const MSR_FS_BASE = 0xc0000100;
export const MSR_GS_BASE = 0xc0000101;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
export const MSR_TSC_AUX = 0xc0000103;

// ------------------------------------------------------------------ descriptors

/** Read the 8-byte descriptor for `sel`; returns low dword, high dword in c.hi. Faults #GP(sel) if outside the table. */
export function readDesc(c: Cpu, sel: number, vec = EXC_GP): number {
  const idx = sel & ~7;
  let base: number, limit: number;
  if (sel & 4) {
    base = c.segBase[LDTR];
    limit = c.segLimit[LDTR];
    if (!(c.segAttr[LDTR] & 0x80)) throw new CpuFault(vec, sel & 0xfffc);
  } else {
    base = c.gdtBase;
    limit = c.gdtLimit;
  }
  if (idx + 7 > limit) throw new CpuFault(vec, sel & 0xfffc);
  const la = base + idx;
  const lo = c.sysRd32(la);
  c.hi = c.sysRd32(la + 4);
  return lo;
}

function descBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
}

function descLimit(lo: number, hi: number): number {
  let l = (lo & 0xffff) | (hi & 0xf0000);
  if (hi & 0x800000) l = l * 4096 + 0xfff;
  return l;
}

/** attrs = descriptor bits 40..55 (type|S|DPL|P, limit 19:16, AVL|L|D/B|G): VMX access-rights layout. */
function descAttr(hi: number): number {
  return (hi >>> 8) & 0xffff;
}

/** Set the accessed bit of a code/data descriptor. */
function markAccessed(c: Cpu, sel: number, hi: number): void {
  if (hi & 0x100) return;
  const base = sel & 4 ? c.segBase[LDTR] : c.gdtBase;
  c.sysWr32(base + (sel & ~7) + 4, hi | 0x100);
}

/** Load a data/stack segment register (MOV/POP/LxS) with protected-mode checks. */
export function loadSeg(c: Cpu, s: number, sel: number): void {
  sel &= 0xffff;
  if (!(c.cr0 & CR0_PE) || (c.flags & F_VM)) {
    c.segSel[s] = sel;
    c.segBase[s] = sel * 16;
    if (s === CS) c.updateMode();
    return;
  }
  if ((sel & ~3) === 0) {
    if (s === SS && !(c.long64 && c.cpl !== 3)) c.gp(0);
    c.segSel[s] = sel;
    if (!c.long64 || s < FS) c.segBase[s] = 0;
    c.segLimit[s] = 0;
    c.segAttr[s] = s === SS ? (c.segAttr[s] & ~0x60) | (c.cpl << 5) : 0;
    if (s === SS) c.updateMode();
    else c.updateSegChk();
    return;
  }
  const lo = readDesc(c, sel);
  const hi = c.hi;
  const attr = descAttr(hi);
  if (!(attr & 0x10)) c.gp(sel & 0xfffc); // system descriptor
  const dpl = (attr >> 5) & 3, rpl = sel & 3;
  if (s === SS) {
    // Writable data, RPL == DPL == CPL.
    if ((attr & 0x8) || !(attr & 0x2)) c.gp(sel & 0xfffc);
    if (rpl !== c.cpl || dpl !== c.cpl) c.gp(sel & 0xfffc);
    if (!(attr & 0x80)) throw new CpuFault(EXC_SS, sel & 0xfffc);
  } else {
    if ((attr & 0xa) === 0x8) c.gp(sel & 0xfffc); // execute-only code
    // Data and non-conforming code: DPL >= max(CPL, RPL).
    if ((attr & 0xc) !== 0xc && dpl < Math.max(c.cpl, rpl)) c.gp(sel & 0xfffc);
    if (!(attr & 0x80)) throw new CpuFault(EXC_NP, sel & 0xfffc);
  }
  markAccessed(c, sel, hi);
  c.segSel[s] = sel;
  c.segBase[s] = descBase(lo, hi);
  c.segLimit[s] = descLimit(lo, hi);
  c.segAttr[s] = attr | 1;
  if (s === SS) c.updateMode();
  else c.updateSegChk();
}

/** Load CS from a code descriptor for a far transfer; cpl becomes `newCpl`. */
function loadCs(c: Cpu, sel: number, lo: number, hi: number, newCpl: number): void {
  const attr = descAttr(hi);
  if (!(attr & 0x80)) throw new CpuFault(EXC_NP, sel & 0xfffc);
  if ((attr & 0x18) !== 0x18) c.gp(sel & 0xfffc);
  markAccessed(c, sel, hi);
  c.segSel[CS] = (sel & ~3) | newCpl;
  c.segBase[CS] = descBase(lo, hi);
  c.segLimit[CS] = descLimit(lo, hi);
  c.segAttr[CS] = attr | 1;
  c.cpl = newCpl;
  c.updateMode();
  c.flushTlbIfCplChanged();
}

/** JMP FAR sel:off. */
export function farJump(it: Interp, sel: number, off: number): void {
  const c = it.c;
  if (!(c.cr0 & CR0_PE) || (c.flags & F_VM)) {
    c.segSel[CS] = sel;
    c.segBase[CS] = sel * 16;
    c.ip = sel * 16 + off;
    return;
  }
  if ((sel & ~3) === 0) c.gp(0);
  const lo = readDesc(c, sel);
  const hi = c.hi;
  if (!(hi & 0x1000)) it.unimpl("far jump through a gate/TSS");
  loadCs(c, sel, lo, hi, c.cpl);
  c.ip = c.segBase[CS] + off;
}

/** CALL FAR sel:off. */
export function farCall(it: Interp, sel: number, off: number): void {
  const c = it.c;
  const sz = it.opsz;
  const retCs = c.segSel[CS];
  const retIp = it.nextRip();
  if (!(c.cr0 & CR0_PE) || (c.flags & F_VM)) {
    it.push(sz, retCs, 0);
    it.push(sz, retIp, 0);
    c.segSel[CS] = sel;
    c.segBase[CS] = sel * 16;
    c.ip = sel * 16 + off;
    return;
  }
  const lo = readDesc(c, sel);
  const hi = c.hi;
  if (!(hi & 0x1000)) it.unimpl("far call through a gate");
  it.push(sz, retCs, 0);
  it.push(sz, retIp | 0, Math.floor(retIp / TWO32));
  loadCs(c, sel, lo, hi, c.cpl);
  c.ip = c.segBase[CS] + off;
}

/** RETF [n]. */
export function farRet(it: Interp, n: number): void {
  const c = it.c;
  const sz = it.opsz;
  const off = it.peek(sz, 0);
  const offh = c.hi;
  const sel = it.peek(sz, sz) & 0xffff;
  const target = sz === 8 ? offh * TWO32 + (off >>> 0) : sz === 4 ? off >>> 0 : off & 0xffff;
  if (!(c.cr0 & CR0_PE) || (c.flags & F_VM)) {
    it.addSp(2 * sz + n);
    c.segSel[CS] = sel;
    c.segBase[CS] = sel * 16;
    c.ip = sel * 16 + target;
    return;
  }
  const rpl = sel & 3;
  if (rpl < c.cpl) c.gp(sel & 0xfffc);
  const lo = readDesc(c, sel);
  const hi = c.hi;
  if (rpl > c.cpl) {
    const nsp = it.peek(sz, 2 * sz + n);
    const nsph = c.hi;
    const nss = it.peek(sz, 3 * sz + n) & 0xffff;
    loadCs(c, sel, lo, hi, rpl);
    loadSeg(c, SS, nss);
    c.setReg(sz === 8 ? 8 : c.ssB ? 4 : 2, 4, nsp, nsph);
  } else {
    it.addSp(2 * sz + n);
    loadCs(c, sel, lo, hi, c.cpl);
  }
  c.ip = c.segBase[CS] + target;
}

// ------------------------------------------------------------------ flags

/** Ring may use CLI/STI/POPF IF changes: CPL <= IOPL. */
export function iopOk(c: Cpu): boolean {
  return c.cpl <= ((c.flags & F_IOPL) >> 12);
}

/** POPF semantics: which bits may change depends on CPL and IOPL. */
export function popf(c: Cpu, v: number, sz: number): void {
  let mask = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | F_TF | 0x400 | 0x800 | F_NT | F_AC | F_ID;
  if (c.cpl === 0) mask |= F_IOPL;
  if (iopOk(c)) mask |= F_IF;
  if (sz === 2) mask &= 0xffff;
  const old = c.getFlags();
  const wasIf = old & F_IF;
  c.setFlags((old & ~mask) | (v & mask));
  if (!wasIf && (c.flags & F_IF)) c.brk = true;
}

/** #GP unless I/O at `port` is allowed (CPL <= IOPL, or the TSS I/O permission bitmap: sysenter.ts). */
export function checkIo(c: Cpu, port: number, sz: number): void {
  if ((c.cr0 & CR0_PE) && (c.cpl > ((c.flags & F_IOPL) >> 12) || (c.flags & F_VM))) {
    checkIoBitmap(c, port, sz);
  }
}

// ------------------------------------------------------------------ interrupts

/** INT n / INT3 / INTO / INT1: software interrupt with the return address after the instruction. */
export function softInt(it: Interp, vec: number, exception: boolean): void {
  const c = it.c;
  const ret = it.nextRip();
  deliver(c, vec, -1, ret, exception ? 2 : 1);
  // deliver sets c.rip; keep ip consistent for step()'s epilogue.
  c.ip = c.rip + c.segBase[CS];
}

/**
 * Deliver interrupt/exception `vec` with error code `err` (-1 none), returning to `retRip`.
 * kind: 0 hardware/exception, 1 INT n (DPL checked), 2 INT3/INTO (DPL checked, trap-like).
 */
export function deliver(c: Cpu, vec: number, err: number, retRip: number, kind: number): void {
  const flags = c.getFlags();
  if (!(c.cr0 & CR0_PE)) {
    // Real mode: IVT (the IDTR limit is checked here too; a reset-vector stub relies on it).
    if (vec * 4 + 3 > c.idtLimit) gateFault(vec, kind);
    const ent = c.idtBase + vec * 4;
    const w = c.sysRd32(ent);
    const sp16 = (v: number) => {
      const sp = (c.r[4] - 2) & 0xffff;
      c.wr16((c.segBase[SS] + sp) >>> 0, v);
      c.r[4] = (c.r[4] & ~0xffff) | sp;
    };
    sp16(flags & 0xffff);
    sp16(c.segSel[CS]);
    sp16(retRip & 0xffff);
    c.flags &= ~(F_IF | F_TF | F_AC | F_RF);
    c.segSel[CS] = w >>> 16;
    c.segBase[CS] = (w >>> 16) * 16;
    c.rip = w & 0xffff;
    return;
  }
  if (c.efer & EFER_LMA) {
    deliverLong(c, vec, err, retRip, kind, flags);
    return;
  }
  deliverProt32(c, vec, err, retRip, kind, flags);
}

function gateFault(vec: number, kind: number): never {
  throw new CpuFault(EXC_GP, vec * 8 + 2 + (kind === 0 ? 1 : 0));
}

function deliverLong(c: Cpu, vec: number, err: number, retRip: number, kind: number, flags: number): void {
  if (vec * 16 + 15 > c.idtLimit) gateFault(vec, kind);
  const g = c.idtBase + vec * 16;
  const w0 = c.sysRd32(g), w1 = c.sysRd32(g + 4), w2 = c.sysRd32(g + 8);
  const type = (w1 >> 8) & 0xf;
  const dpl = (w1 >> 13) & 3;
  if (type !== 0xe && type !== 0xf) gateFault(vec, kind);
  if (kind !== 0 && dpl < c.cpl) gateFault(vec, kind);
  if (!(w1 & 0x8000)) throw new CpuFault(EXC_NP, vec * 8 + 2);
  const sel = w0 >>> 16;
  const target = w2 * TWO32 + (((w1 & 0xffff0000) | (w0 & 0xffff)) >>> 0);
  const ist = w1 & 7;
  const clo = readDesc(c, sel);
  const chi = c.hi;
  const newCpl = (chi >> 13) & 3;
  const oldCpl = c.cpl;
  const oldSs = c.segSel[SS];
  const oldRspLo = c.r[4], oldRspHi = c.r[20];
  let rsp: number;
  const tss = c.segBase[TR];
  if (ist) {
    const lo = c.sysRd32(tss + 0x24 + (ist - 1) * 8);
    rsp = c.sysRd32(tss + 0x28 + (ist - 1) * 8) * TWO32 + (lo >>> 0);
  } else if (newCpl < oldCpl) {
    const lo = c.sysRd32(tss + 4 + newCpl * 8);
    rsp = c.sysRd32(tss + 8 + newCpl * 8) * TWO32 + (lo >>> 0);
  } else rsp = oldRspHi * TWO32 + (oldRspLo >>> 0);
  rsp -= ((rsp % 16) + 16) % 16;
  // Push with supervisor rights (the new stack belongs to ring newCpl).
  const saveCpl = c.cpl;
  c.cpl = newCpl;
  c.setPermMasks();
  try {
    const push = (lo: number, hi: number) => {
      rsp -= 8;
      c.wr64(rsp, lo, hi);
    };
    push(oldSs, 0);
    push(oldRspLo, oldRspHi);
    push(flags, 0);
    push(c.segSel[CS], 0);
    push(retRip | 0, Math.floor(retRip / TWO32));
    if (err >= 0) push(err, 0);
  } catch (e) {
    c.cpl = saveCpl;
    c.setPermMasks();
    throw e;
  }
  loadCs(c, sel, clo, chi, newCpl);
  if (newCpl < oldCpl) {
    c.segSel[SS] = newCpl;
    c.segBase[SS] = 0;
    c.segLimit[SS] = 0;
    c.segAttr[SS] = newCpl << 5;
    c.updateMode();
  }
  c.r[4] = rsp | 0;
  c.r[20] = Math.floor(rsp / TWO32) | 0;
  c.flags &= ~(F_TF | F_NT | F_RF | F_VM);
  if (type === 0xe) c.flags &= ~F_IF;
  c.rip = target;
}

function deliverProt32(c: Cpu, vec: number, err: number, retRip: number, kind: number, flags: number): void {
  if (vec * 8 + 7 > c.idtLimit) gateFault(vec, kind);
  const g = c.idtBase + vec * 8;
  const w0 = c.sysRd32(g), w1 = c.sysRd32(g + 4);
  const type = (w1 >> 8) & 0xf;
  const dpl = (w1 >> 13) & 3;
  if (type !== 0xe && type !== 0xf && type !== 6 && type !== 7) gateFault(vec, kind);
  if (kind !== 0 && dpl < c.cpl) gateFault(vec, kind);
  if (!(w1 & 0x8000)) throw new CpuFault(EXC_NP, vec * 8 + 2);
  const gate32 = (type & 8) !== 0;
  const sel = w0 >>> 16;
  const target = ((w1 & 0xffff0000) | (w0 & 0xffff)) >>> 0;
  const clo = readDesc(c, sel);
  const chi = c.hi;
  const newCpl = (chi >> 13) & 3;
  const oldCpl = c.cpl;
  const sz = gate32 ? 4 : 2;
  const oldSs = c.segSel[SS], oldEsp = c.r[4];
  if (newCpl < oldCpl) {
    const tss = c.segBase[TR];
    const esp = c.sysRd32(tss + 4 + newCpl * 8);
    const ss = c.sysRd32(tss + 8 + newCpl * 8) & 0xffff;
    const saveCpl = c.cpl;
    c.cpl = newCpl;
    c.setPermMasks();
    try {
      loadSeg(c, SS, ss);
    } catch (e) {
      c.cpl = saveCpl;
      c.setPermMasks();
      throw e;
    }
    c.r[4] = esp;
  }
  const push = (v: number) => {
    if (c.ssB) {
      c.r[4] = (c.r[4] - sz) | 0;
      c.wr(sz, ((c.r[4] >>> 0) + c.segBase[SS]) >>> 0, v, 0);
    } else {
      const sp = (c.r[4] - sz) & 0xffff;
      c.r[4] = (c.r[4] & ~0xffff) | sp;
      c.wr(sz, (sp + c.segBase[SS]) >>> 0, v, 0);
    }
  };
  const saveCpl = c.cpl;
  c.cpl = newCpl;
  c.setPermMasks();
  try {
    if (newCpl < oldCpl) {
      push(oldSs);
      push(oldEsp);
    }
    push(flags);
    push(c.segSel[CS]);
    push(retRip);
    if (err >= 0) push(err);
  } catch (e) {
    c.cpl = saveCpl;
    c.setPermMasks();
    throw e;
  }
  loadCs(c, sel, clo, chi, newCpl);
  c.flags &= ~(F_TF | F_NT | F_RF | F_VM);
  if (!(type & 1)) c.flags &= ~F_IF;
  c.rip = target;
}

/** IRET / IRETD / IRETQ. */
export function iret(it: Interp): void {
  const c = it.c;
  const sz = it.opsz;
  c.nmiBlocked = false;
  if (!(c.cr0 & CR0_PE)) {
    const ip = it.pop(sz);
    const cs = it.pop(sz) & 0xffff;
    const fl = it.pop(sz);
    c.segSel[CS] = cs;
    c.segBase[CS] = cs * 16;
    const keep = sz === 2 ? c.getFlags() & ~0xffff : c.getFlags() & (F_VM | 0x180000);
    c.setFlags(keep | (fl & (sz === 2 ? 0xffff : ~(F_VM | 0x180000))));
    c.ip = cs * 16 + (sz === 2 ? ip & 0xffff : ip >>> 0);
    c.brk = true;
    return;
  }
  if (c.flags & F_NT && !(c.efer & EFER_LMA)) it.unimpl("iret task switch");
  const ripLo = it.peek(sz, 0);
  const ripHi = sz === 8 ? c.hi : 0;
  const cs = it.peek(sz, sz) & 0xffff;
  const fl = it.peek(sz, 2 * sz);
  const rpl = cs & 3;
  if (rpl < c.cpl) c.gp(cs & 0xfffc);
  const lo = readDesc(c, cs);
  const hi = c.hi;
  const long = (c.efer & EFER_LMA) !== 0;
  const target = sz === 8 ? ripHi * TWO32 + (ripLo >>> 0) : sz === 4 ? ripLo >>> 0 : ripLo & 0xffff;
  const oldCpl = c.cpl;
  if (long && c.long64 || rpl > oldCpl) {
    // Pop RSP/SS too (always in 64-bit mode).
    const sp = it.peek(sz, 3 * sz);
    const sph = c.hi;
    const ss = it.peek(sz, 4 * sz) & 0xffff;
    loadCs(c, cs, lo, hi, rpl);
    if ((ss & ~3) === 0 && long && rpl !== 3) {
      c.segSel[SS] = ss;
      c.segBase[SS] = 0;
      c.segLimit[SS] = 0;
      c.segAttr[SS] = rpl << 5;
      c.updateMode();
    } else loadSeg(c, SS, ss);
    if (sz === 8) {
      c.r[4] = sp;
      c.r[20] = sph;
    } else if (sz === 4) {
      c.r[4] = sp;
      if (long) c.r[20] = 0;
    } else c.r[4] = (c.r[4] & ~0xffff) | (sp & 0xffff);
    if (rpl > oldCpl) {
      // Data segments not accessible at the new CPL are nulled.
      for (const s of [ES, DS, FS, GS]) {
        const a = c.segAttr[s];
        const dpl = (a >> 5) & 3;
        const conformingCode = (a & 0x1c) === 0x1c;
        if ((c.segSel[s] & ~3) !== 0 && !conformingCode && dpl < rpl) {
          c.segSel[s] = 0;
          c.segAttr[s] = 0;
        }
      }
    }
  } else {
    it.addSp(3 * sz);
    loadCs(c, cs, lo, hi, oldCpl);
  }
  // Flags: IOPL only at CPL 0, IF if CPL <= IOPL (evaluated with the old CPL).
  let mask = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | F_TF | 0x400 | 0x800 | F_NT | F_AC | F_ID | F_RF;
  if (oldCpl === 0) mask |= F_IOPL;
  if (oldCpl <= ((c.flags & F_IOPL) >> 12)) mask |= F_IF;
  if (sz === 2) mask &= 0xffff;
  c.setFlags((c.flags & ~mask) | (fl & mask));
  c.ip = c.segBase[CS] + target;
  c.brk = true;
}

// ------------------------------------------------------------------ 0F system opcodes

/** 0F 00-09, 20-23, 30-35, A2. */
export function exec0fSystem(it: Interp, b: number): void {
  const c = it.c;
  const r = c.r;
  switch (b) {
    case 0x00:
      group6(it);
      return;
    case 0x01:
      group7(it);
      return;
    case 0x02:
    case 0x03: {
      // LAR / LSL
      it.modrm(0);
      const sel = it.rdE(2);
      c.eager();
      try {
        if ((sel & ~3) === 0) throw new CpuFault(EXC_GP, 0);
        const lo = readDesc(c, sel);
        const hi = c.hi;
        const v = b === 0x02 ? hi & 0xf0ff00 : descLimit(lo, hi);
        c.setReg(it.opsz === 2 ? 2 : 4, it.reg, v | 0, 0);
        c.flags |= 0x40;
      } catch (e) {
        if (!(e instanceof CpuFault)) throw e;
        c.flags &= ~0x40;
      }
      return;
    }
    case 0x05:
      syscall(it);
      return;
    case 0x06:
      if (c.cpl) c.gp(0);
      c.cr0 &= ~CR0_TS;
      return;
    case 0x07:
      sysret(it);
      return;
    case 0x08:
    case 0x09:
      if (c.cpl) c.gp(0);
      return;
    case 0x20:
    case 0x22: {
      if (c.cpl) c.gp(0);
      it.modrm(0);
      const n = it.reg;
      const rm = it.rm;
      if (b === 0x20) {
        const v = readCr(c, n);
        if (c.long64) c.setReg(8, rm, v | 0, Math.floor(v / TWO32) | 0);
        else c.setReg(4, rm, v | 0, 0);
      } else {
        const v = c.long64 ? c.regNum(rm) : r[rm] >>> 0;
        writeCr(it, n, v, c.long64 ? r[rm + 16] : 0);
      }
      return;
    }
    case 0x21:
    case 0x23: {
      if (c.cpl) c.gp(0);
      it.modrm(0);
      const n = it.reg & 7;
      if (b === 0x21) {
        let v = c.dr[n];
        if (n === 6 || n === 4) v = c.dr[6] || 0xffff0ff0;
        if (n === 7 || n === 5) v = c.dr[7] || 0x400;
        c.setReg(c.long64 ? 8 : 4, it.rm, v | 0, Math.floor(v / TWO32) | 0);
      } else c.dr[n] = c.long64 ? c.regNum(it.rm) : r[it.rm] >>> 0;
      return;
    }
    case 0x30: {
      if (c.cpl) c.gp(0);
      const v = (BigInt(r[2] >>> 0) << 32n) | BigInt(r[0] >>> 0);
      if (!wrmsr(c, r[1] >>> 0, v)) c.gp(0);
      c.brk = true;
      return;
    }
    case 0x31: {
      if (c.cpl && (c.cr4 & 0x4)) c.gp(0);
      r[0] = c.tscLo();
      r[2] = c.hi;
      r[16] = r[18] = 0;
      c.brk = true;
      return;
    }
    case 0x32: {
      if (c.cpl) c.gp(0);
      const v = rdmsr(c, r[1] >>> 0) ?? c.gp(0);
      r[0] = Number(v & 0xffffffffn) | 0;
      r[2] = Number((v >> 32n) & 0xffffffffn) | 0;
      r[16] = r[18] = 0;
      return;
    }
    case 0x33:
      r[0] =
        r[2] =
        r[16] =
        r[18] =
          0;
      return;
    case 0x34:
      sysenter(c);
      return;
    case 0x35:
      sysexit(c, it.opsz);
      return;
    case 0xa2: {
      const res = cpuid(c, r[0] >>> 0, r[1] >>> 0);
      r[0] = res[0];
      r[3] = res[1];
      r[1] = res[2];
      r[2] = res[3];
      r[16] =
        r[19] =
        r[17] =
        r[18] =
          0;
      return;
    }
  }
}

function readCr(c: Cpu, n: number): number {
  switch (n) {
    case 0:
      return c.cr0 >>> 0;
    case 2:
      return c.cr2;
    case 3:
      return c.cr3;
    case 4:
      return c.cr4;
    case 8:
      return c.lapic ? (c.lapic.mmioRead(0x80) >> 4) & 15 : c.cr8;
    default:
      c.ud();
  }
}

function writeCr(it: Interp, n: number, v: number, vh: number): void {
  const c = it.c;
  switch (n) {
    case 0: {
      let nv = (v >>> 0) | 0x10;
      if ((nv & CR0_PG) && !(nv & CR0_PE)) c.gp(0);
      if (vh) c.gp(0);
      if ((nv & CR0_PG) && !(c.cr0 & CR0_PG) && (c.efer & EFER_LME) && !(c.cr4 & CR4_PAE)) c.gp(0);
      nv |= 0;
      const changed = (c.cr0 ^ nv) & (CR0_PG | CR0_PE | 0x10000);
      c.cr0 = nv;
      if (changed) {
        c.updateMode();
        c.flushTlb();
      }
      c.brk = true;
      return;
    }
    case 2:
      c.cr2 = v;
      return;
    case 3:
      c.cr3 = v % 0x10000000000000;
      c.flushTlb();
      c.codePagesChanged();
      return;
    case 4: {
      const old = c.cr4;
      c.cr4 = v >>> 0;
      if ((old ^ c.cr4) & (CR4_PGE | CR4_PAE | CR4_PSE | 0x1000)) c.flushTlb();
      c.updateMode();
      return;
    }
    case 8:
      c.cr8 = v & 15;
      if (c.lapic) c.lapic.mmioWrite(0x80, (v & 15) << 4);
      c.brk = true;
      return;
    default:
      c.ud();
  }
}

function group6(it: Interp): void {
  const c = it.c;
  it.modrm(0);
  const op = it.reg & 7;
  if (!(c.cr0 & CR0_PE)) c.ud();
  switch (op) {
    case 0:
    case 1: {
      const v = c.segSel[op === 0 ? LDTR : TR];
      if (it.isReg) c.setReg(it.opsz, it.rm, v, 0);
      else c.wr16(it.la, v);
      return;
    }
    case 2:
    case 3: {
      if (c.cpl) c.gp(0);
      const sel = it.rdE(2);
      const s = op === 2 ? LDTR : TR;
      if ((sel & ~3) === 0) {
        if (op === 3) c.gp(0);
        c.segSel[s] = sel;
        c.segBase[s] = 0;
        c.segLimit[s] = 0;
        c.segAttr[s] = 0;
        return;
      }
      if (sel & 4) c.gp(sel & 0xfffc);
      const lo = readDesc(c, sel);
      const hi = c.hi;
      const type = (hi >> 8) & 0x1f;
      if (op === 2 ? type !== 2 : type !== 9 && type !== 1) c.gp(sel & 0xfffc);
      if (!(hi & 0x8000)) throw new CpuFault(EXC_NP, sel & 0xfffc);
      let base = descBase(lo, hi);
      if (c.efer & EFER_LMA) base += c.sysRd32(c.gdtBase + (sel & ~7) + 8) * TWO32;
      c.segSel[s] = sel;
      c.segBase[s] = base > 0x7fffffffffff ? base - 18446744073709551616 : base;
      c.segLimit[s] = descLimit(lo, hi);
      if (op === 3) {
        c.sysWr32(c.gdtBase + (sel & ~7) + 4, hi | 0x200);
        c.segAttr[s] = descAttr(hi | 0x200);
      } else c.segAttr[s] = descAttr(hi);
      return;
    }
    case 4:
    case 5: {
      // VERR / VERW: report accessible for flat data segments.
      const sel = it.rdE(2);
      c.eager();
      let ok = false;
      try {
        if (sel & ~3) {
          readDesc(c, sel);
          const a = descAttr(c.hi);
          ok = (a & 0x10) !== 0 && (op === 4 ? !(a & 8) || (a & 2) !== 0 : !(a & 8) && (a & 2) !== 0);
        }
      } catch (e) {
        if (!(e instanceof CpuFault)) throw e;
      }
      c.flags = ok ? c.flags | 0x40 : c.flags & ~0x40;
      return;
    }
    default:
      c.ud();
  }
}

function group7(it: Interp): void {
  const c = it.c;
  const r = c.r;
  it.modrm(0);
  const op = it.reg & 7;
  if (it.isReg) {
    const m = (op << 3) | (it.rm & 7);
    switch (m) {
      case 0o10: // monitor
      case 0o11: // mwait
        if (c.cpl) c.gp(0);
        c.halted = m === 0o11;
        c.brk = true;
        return;
      case 0o12: // clac
        c.flags &= ~F_AC;
        return;
      case 0o13: // stac
        c.flags |= F_AC;
        return;
      case 0o20: // xgetbv
        return xgetbv(c);
      case 0o21: // xsetbv
        return xsetbv(c);
      case 0o01: // vmcall
      case 0o31: // vmmcall
        // KVM hypercall: no paravirt features are advertised beyond kvmclock: -KVM_ENOSYS.
        r[0] = -1000;
        r[16] = -1;
        return;
      case 0o56: // rdpkru
        r[0] = 0;
        r[2] = 0;
        r[16] = r[18] = 0;
        return;
      case 0o57: // wrpkru
        return;
      case 0o70: // swapgs
        if (!c.long64) c.ud();
        if (c.cpl) c.gp(0);
        {
          const t = c.segBase[GS];
          c.segBase[GS] = c.kernelGsBase;
          c.kernelGsBase = t;
        }
        return;
      case 0o71: {
        // rdtscp
        r[0] = c.tscLo();
        r[2] = c.hi;
        r[1] = c.tscAux;
        r[16] = r[18] = r[17] = 0;
        c.brk = true;
        return;
      }
    }
    if (op === 4) {
      c.setReg(it.opsz, it.rm, c.cr0 & 0xffff, 0);
      return;
    }
    if (op === 6) {
      if (c.cpl) c.gp(0);
      const v = it.rdE(2);
      c.cr0 = (c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & 1);
      c.updateMode();
      return;
    }
    it.unimpl(`0f 01 ${(0xc0 | m).toString(16)}`);
  }
  const la = it.la;
  switch (op) {
    case 0:
    case 1: {
      // SGDT / SIDT
      const base = op === 0 ? c.gdtBase : c.idtBase;
      const limit = op === 0 ? c.gdtLimit : c.idtLimit;
      c.wr16(la, limit);
      if (c.long64) c.wr64(la + 2, base | 0, Math.floor(base / TWO32) | 0);
      else c.wr32(la + 2, base | 0);
      return;
    }
    case 2:
    case 3: {
      if (c.cpl) c.gp(0);
      const limit = c.rd16(la);
      let base: number;
      if (c.long64) {
        const lo = c.rd32(la + 2);
        base = c.hi = c.rd32(la + 6);
        base = base * TWO32 + (lo >>> 0);
      } else {
        base = c.rd32(la + 2) >>> 0;
        if (it.opsz === 2) base &= 0xffffff;
      }
      if (op === 2) {
        c.gdtBase = base;
        c.gdtLimit = limit;
      } else {
        c.idtBase = base;
        c.idtLimit = limit;
      }
      return;
    }
    case 4:
      c.wr16(la, c.cr0 & 0xffff);
      return;
    case 6: {
      if (c.cpl) c.gp(0);
      const v = c.rd16(la);
      c.cr0 = (c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & 1);
      c.updateMode();
      return;
    }
    case 7:
      // INVLPG: that page only (cpu.ts invlpg; large pages included).
      if (c.cpl) c.gp(0);
      c.invlpg(la);
      return;
    default:
      c.ud();
  }
}

function syscall(it: Interp): void {
  const c = it.c;
  if (!(c.efer & 1)) c.ud();
  const r = c.r;
  const next = it.nextRip();
  const star = c.star;
  const sel = Number((star >> 32n) & 0xffffn);
  const flags = c.getFlags();
  if (c.efer & EFER_LMA) {
    r[1] = next | 0;
    r[17] = Math.floor(next / TWO32) | 0;
    r[11] = flags & ~F_RF;
    r[27] = 0;
    c.setFlags(flags & ~c.sfmask & ~F_RF);
    setFlatCs(c, sel & 0xfffc, 0, true);
    setFlatSs(c, (sel + 8) & 0xfffc, 0);
    c.ip = c.long64 ? c.lstar : c.cstar;
  } else {
    r[1] = next | 0;
    c.setFlags(flags & ~(F_VM | F_IF | F_RF));
    setFlatCs(c, sel & 0xfffc, 0, false);
    setFlatSs(c, (sel + 8) & 0xfffc, 0);
    c.ip = Number(star & 0xffffffffn);
  }
}

function sysret(it: Interp): void {
  const c = it.c;
  if (!(c.efer & 1)) c.ud();
  if (c.cpl || !(c.cr0 & CR0_PE)) c.gp(0);
  const r = c.r;
  const sel = Number((c.star >> 48n) & 0xffffn);
  if (it.opsz === 8) {
    const target = c.regNum(1);
    if (target < -0x800000000000 || target >= 0x800000000000) c.gp(0);
    setFlatCs(c, ((sel + 16) & 0xfffc) | 3, 3, true);
    c.ip = target;
  } else {
    setFlatCs(c, (sel & 0xfffc) | 3, 3, false);
    c.ip = r[1] >>> 0;
  }
  setFlatSs(c, ((sel + 8) & 0xfffc) | 3, 3);
  if (c.efer & EFER_LMA) c.setFlags(r[11] & 0x3c7fd7);
}

function setFlatCs(c: Cpu, sel: number, dpl: number, long: boolean): void {
  c.segSel[CS] = sel;
  c.segBase[CS] = 0;
  c.segLimit[CS] = 0xffffffff;
  c.segAttr[CS] = 0x9b | (dpl << 5) | (long ? 0xa000 : 0xc000);
  c.cpl = dpl;
  c.updateMode();
  c.flushTlbIfCplChanged();
}

function setFlatSs(c: Cpu, sel: number, dpl: number): void {
  c.segSel[SS] = sel;
  c.segBase[SS] = 0;
  c.segLimit[SS] = 0xffffffff;
  c.segAttr[SS] = 0x93 | (dpl << 5) | 0xc000;
  c.updateMode();
}

// ------------------------------------------------------------------ MSRs

function b2n(v: bigint): number {
  return Number(BigInt.asIntN(64, v));
}

function n2b(v: number): bigint {
  return BigInt.asUintN(64, BigInt(v));
}

/** RDMSR: value, or undefined for #GP. */
export function rdmsr(c: Cpu, msr: number): bigint | undefined {
  for (const h of c.board.msrHandlers) if (h.handles(msr)) return h.read(c.index, msr);
  if (c.lapic && (msr === MSR_APIC_BASE || msr === MSR_TSC_DEADLINE || (msr >= 0x800 && msr <= 0x8ff))) {
    return c.lapic.readMsr(msr);
  }
  switch (msr) {
    case MSR_TSC:
      return c.tsc();
    case MSR_APIC_BASE:
      return c.apicBaseFallback;
    case MSR_BIOS_SIGN_ID:
      return 0n;
    case MSR_MTRRCAP:
      return 0x508n;
    case MSR_SYSENTER_CS:
      return BigInt(c.sysenterCs);
    case MSR_SYSENTER_ESP:
      return c.sysenterEsp;
    case MSR_SYSENTER_EIP:
      return c.sysenterEip;
    case MSR_MCG_CAP:
    case MSR_MCG_STATUS:
      return 0n;
    case MSR_MISC_ENABLE:
      return c.miscEnable;
    case MSR_PAT:
      return c.pat;
    case MSR_EFER:
      return BigInt(c.efer);
    case MSR_STAR:
      return c.star;
    case MSR_LSTAR:
      return n2b(c.lstar);
    case MSR_CSTAR:
      return n2b(c.cstar);
    case MSR_SFMASK:
      return BigInt(c.sfmask >>> 0);
    case MSR_FS_BASE:
      return n2b(c.segBase[FS]);
    case MSR_GS_BASE:
      return n2b(c.segBase[GS]);
    case MSR_KERNEL_GS_BASE:
      return n2b(c.kernelGsBase);
    case MSR_TSC_AUX:
      return BigInt(c.tscAux >>> 0);
  }
  if (
    msr === MSR_MTRR_DEF_TYPE || (msr >= 0x200 && msr <= 0x20f) || msr === 0x250 || msr === 0x258 ||
    msr === 0x259 || (msr >= 0x268 && msr <= 0x26f)
  ) {
    return c.mtrr.get(msr) ?? 0n;
  }
  // AMD perf counters, HWCR, interrupt-pending, DE_CFG, NB_CFG, OSVW: read as zero.
  if (
    (msr >= 0xc0010000 && msr <= 0xc0010007) || msr === 0xc0010015 || msr === 0xc0010055 ||
    msr === 0xc0011029 || msr === 0xc001001f || msr === 0xc0010140 || msr === 0xc0010141
  ) {
    return 0n;
  }
  return undefined;
}

/** WRMSR: false for #GP. */
export function wrmsr(c: Cpu, msr: number, v: bigint): boolean {
  for (const h of c.board.msrHandlers) if (h.handles(msr)) return h.write(c.index, msr, v);
  if (c.lapic && (msr === MSR_APIC_BASE || msr === MSR_TSC_DEADLINE || (msr >= 0x800 && msr <= 0x8ff))) {
    const ok = c.lapic.writeMsr(msr, v);
    // The xAPIC page may have moved or been disabled: TLB entries must not cover it.
    if (msr === MSR_APIC_BASE) c.flushTlb();
    return ok;
  }
  switch (msr) {
    case MSR_TSC:
      c.tscOffsetNum += Number(BigInt.asIntN(64, v - c.tsc()));
      return true;
    case MSR_APIC_BASE:
      c.apicBaseFallback = v;
      return true;
    case MSR_BIOS_SIGN_ID:
      return true;
    case MSR_SYSENTER_CS:
      c.sysenterCs = Number(v & 0xffffn);
      return true;
    case MSR_SYSENTER_ESP:
      c.sysenterEsp = v;
      return true;
    case MSR_SYSENTER_EIP:
      c.sysenterEip = v;
      return true;
    case MSR_MCG_STATUS:
      return true;
    case MSR_MISC_ENABLE:
      c.miscEnable = v;
      return true;
    case MSR_PAT:
      c.pat = v;
      return true;
    case MSR_EFER: {
      const nv = Number(v & 0xd01n);
      if (v & ~0xd01n) return false;
      if ((nv ^ c.efer) & EFER_LME && (c.cr0 & CR0_PG)) return false;
      const old = c.efer;
      c.efer = (nv & ~EFER_LMA) | (c.efer & EFER_LMA);
      if ((old ^ c.efer) & EFER_NXE) c.flushTlb();
      c.updateMode();
      return true;
    }
    case MSR_STAR:
      c.star = v;
      return true;
    case MSR_LSTAR:
      c.lstar = b2n(v);
      return true;
    case MSR_CSTAR:
      c.cstar = b2n(v);
      return true;
    case MSR_SFMASK:
      c.sfmask = Number(v & 0xffffffffn) | 0;
      return true;
    case MSR_FS_BASE:
      c.segBase[FS] = b2n(v);
      return true;
    case MSR_GS_BASE:
      c.segBase[GS] = b2n(v);
      return true;
    case MSR_KERNEL_GS_BASE:
      c.kernelGsBase = b2n(v);
      return true;
    case MSR_TSC_AUX:
      c.tscAux = Number(v & 0xffffffffn) | 0;
      return true;
  }
  if (
    msr === MSR_MTRR_DEF_TYPE || (msr >= 0x200 && msr <= 0x20f) || msr === 0x250 || msr === 0x258 ||
    msr === 0x259 || (msr >= 0x268 && msr <= 0x26f)
  ) {
    c.mtrr.set(msr, v);
    return true;
  }
  if (
    (msr >= 0xc0010000 && msr <= 0xc0010007) || msr === 0xc0010015 || msr === 0xc0011029 || msr === 0xc001001f
  ) {
    return true;
  }
  return false;
}

// ------------------------------------------------------------------ group 15

/** 0F AE: FXSAVE/FXRSTOR/LDMXCSR/STMXCSR/XSAVE*, fences, CLFLUSH, RD/WR FS/GS BASE. */
export function group15(it: Interp): void {
  const c = it.c;
  it.modrm(0);
  const op = it.reg & 7;
  if (it.isReg) {
    if (op >= 5) return; // lfence / mfence / sfence
    if (it.rep === 1) {
      // RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE
      const s = op & 1 ? GS : FS;
      if (op < 2) {
        const v = c.segBase[s];
        c.setReg(it.opsz, it.rm, v | 0, Math.floor(v / TWO32) | 0);
      } else c.segBase[s] = it.opsz === 8 ? c.regNum(it.rm) : c.r[it.rm] >>> 0;
      return;
    }
    it.unimpl(`0f ae reg /${op}`);
  }
  switch (op) {
    case 0:
      fxsave(it, it.la);
      return;
    case 1:
      fxrstor(it, it.la);
      return;
    case 2: {
      const mx = c.rd32(it.la); // LDMXCSR: reserved bits (31:16, beyond MXCSR_MASK 0xffff) → #GP(0)
      if (mx & ~0xffff) c.gp(0);
      c.mxcsr = mx;
      return;
    }
    case 3:
      c.wr32(it.la, c.mxcsr);
      return;
    case 4:
      return xsave(it);
    case 5:
      return xrstor(it);
    case 6:
      if (it.pfx !== 0 || !c.cpuidModel.has("xsaveopt")) c.ud();
      return xsave(it); // XSAVEOPT: writing every component is a valid XSAVEOPT
    case 7:
      return; // clflush
    default:
      it.unimpl(`0f ae /${op}`);
  }
}

/** Deliver an exception raised while executing, converting nested faults to #DF / triple fault. Returns false on triple fault. */
export function raise(c: Cpu, vec: number, err: number): boolean {
  try {
    deliver(c, vec, err, c.rip, 0);
    return true;
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    if (vec === EXC_DF) return false;
    try {
      deliver(c, EXC_DF, 0, c.rip, 0);
      return true;
    } catch (e2) {
      if (!(e2 instanceof CpuFault)) throw e2;
      return false;
    }
  }
}

export { CC_EAGER, EXC_UD };
