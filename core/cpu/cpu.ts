/**
 * Architectural state of one software x86-64 vCPU: registers as int32 lo/hi pairs, lazy flags,
 * segment caches, control registers, a software TLB with 4-level paging, and guest-memory access
 * through linear addresses (Intel SDM vol. 3A ch. 3-4). Faults unwind the current instruction by
 * throwing a `CpuFault`, caught by the run loop (interp.ts) which delivers the exception.
 * @module
 */
import type { AccelBoard, LocalApicPort, PhysMap } from "../accel.ts";
import { CpuidModel } from "./cpuid.ts";

/** Segment register indices (the x86 sreg encoding), plus LDTR and TR. */
export const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5, LDTR = 6, TR = 7;

/** Exception vectors (SDM vol. 3A table 6-1). */
export const EXC_DE = 0, EXC_DB = 1, EXC_NMI = 2, EXC_BP = 3, EXC_OF = 4, EXC_BR = 5, EXC_UD = 6, EXC_NM = 7;
export const EXC_DF = 8, EXC_TS = 10, EXC_NP = 11, EXC_SS = 12, EXC_GP = 13, EXC_PF = 14, EXC_MF = 16;
export const EXC_AC = 17, EXC_XM = 19;

/** EFLAGS bits. */
export const F_CF = 0x1, F_PF = 0x4, F_AF = 0x10, F_ZF = 0x40, F_SF = 0x80, F_TF = 0x100, F_IF = 0x200;
export const F_DF = 0x400, F_OF = 0x800, F_IOPL = 0x3000, F_NT = 0x4000, F_RF = 0x10000, F_VM = 0x20000;
export const F_AC = 0x40000, F_VIF = 0x80000, F_VIP = 0x100000, F_ID = 0x200000;
export const F_ARITH = F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF;

/** Control register bits. */
export const CR0_PE = 0x1, CR0_MP = 0x2, CR0_EM = 0x4, CR0_TS = 0x8, CR0_ET = 0x10, CR0_NE = 0x20;
export const CR0_WP = 0x10000,
  CR0_AM = 0x40000,
  CR0_NW = 0x20000000,
  CR0_CD = 0x40000000,
  CR0_PG = 0x80000000;
export const CR4_PSE = 0x10, CR4_PAE = 0x20, CR4_PGE = 0x80, CR4_OSFXSR = 0x200, CR4_OSXMMEXCPT = 0x400;
export const CR4_FSGSBASE = 0x10000;
export const EFER_SCE = 0x1, EFER_LME = 0x100, EFER_LMA = 0x400, EFER_NXE = 0x800;

/** Lazy flag operations: which formula derives OSZAPC from (res, a, b). */
export const CC_EAGER = 0, CC_ADD = 1, CC_SUB = 2, CC_ADC = 3, CC_SBB = 4, CC_INC = 5, CC_DEC = 6, CC_RES = 7;

const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let p = 1;
  for (let b = i; b; b >>= 1) p ^= b & 1;
  PARITY[i] = p ? F_PF : 0;
}

/** Thrown to abandon the current instruction with an exception (vector, error code or -1). */
export class CpuFault {
  constructor(readonly vec: number, readonly err: number) {}
}

const TLB_SIZE = 4096;
const TLB_MASK = TLB_SIZE - 1;
/** TLB permission bits. */
const P_KR = 1, P_KW = 2, P_UR = 4, P_UW = 8, P_KX = 16, P_UX = 32;
/** TLB entry is a 4 KiB piece of a large page (INVLPG). */
const P_LARGE = 64;
const TWO32 = 4294967296;

/** Sign bit per operand size (1, 2, 4 bytes). */
export const SIGN = [0, 0x80, 0x8000, 0, 0x80000000 | 0];
/** Value mask per operand size (1, 2, 4 bytes). */
export const MASK = [0, 0xff, 0xffff, 0, -1];

/** One vCPU's architectural state plus its memory path. */
export class Cpu {
  /** GPRs: low halves r[0..15], high halves r[16..31]. */
  readonly r = new Int32Array(32);
  /** Instruction pointer: sign-extended canonical address as a JS number. */
  rip = 0;
  /** Non-arithmetic EFLAGS bits, and the arithmetic ones when ccOp is CC_EAGER. */
  flags = 2;
  ccOp = CC_EAGER;
  ccSz = 4;
  ccR = 0;
  ccRh = 0;
  ccA = 0;
  ccAh = 0;
  ccB = 0;
  ccBh = 0;
  /** CC_RES: stored CF|OF|AF bits; CC_INC/DEC: CF in bit 0. */
  ccAux = 0;
  /** High half returned by 64-bit reads (the low half is the return value). */
  hi = 0;

  readonly segSel = new Int32Array(8);
  readonly segBase = new Float64Array(8);
  readonly segLimit = new Float64Array(8);
  readonly segAttr = new Int32Array(8);
  gdtBase = 0;
  gdtLimit = 0xffff;
  idtBase = 0;
  idtLimit = 0x3ff;

  cr0 = CR0_ET | CR0_NE;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  cr8 = 0;
  efer = 0;
  readonly dr = new Float64Array(8);
  cpl = 0;
  /** Derived mode bits, updated by updateMode(). */
  long64 = false;
  /** CS.D (32-bit default operand size) outside 64-bit mode. */
  csD = false;
  /** SS.B (32-bit stack). */
  ssB = false;
  /** Paging enabled in any form. */
  paging = false;

  // MSRs kept by the CPU.
  star = 0n;
  lstar = 0;
  cstar = 0;
  sfmask = 0;
  kernelGsBase = 0;
  sysenterCs = 0;
  sysenterEsp = 0n;
  sysenterEip = 0n;
  pat = 0x0007040600070406n;
  tscAux = 0;
  /** Guest TSC minus clock-derived TSC (WRMSR IA32_TSC), in ticks. */
  tscOffsetNum = 0;
  readonly mtrr = new Map<number, bigint>();
  miscEnable = 1n;
  apicBaseFallback = 0xfee00900n;

  // SSE / x87 state.
  readonly xmm = new Int32Array(64);
  /** Upper 128 bits of YMM0-15 (AVX), same layout as xmm. */
  readonly ymmh = new Int32Array(64);
  /** XCR0 (XSETBV): bit 0 x87, 1 SSE, 2 AVX. */
  xcr0 = 1;
  mxcsr = 0x1f80;
  fpuCw = 0x37f;
  fpuSw = 0;
  fpuTw = 0;
  readonly fpr = new Uint8Array(128);
  /** x87 last-instruction pointers: FOP, FIP, FCS, FDP, FDS (x87_stack.ts). */
  readonly fpuPtr = new Float64Array(5);
  /** Typed-array views over xmm, created by sse.ts on first use. */
  sseViews: unknown = null;
  /** SIMD extension views and scratch (xmmops.ts XCtx), created on first use. */
  simdCtx: unknown = null;

  halted = false;
  /** Waiting for SIPI (APs after INIT / at power-on). */
  waitSipi = false;
  /** Interrupt shadow after STI / MOV SS. */
  intShadow = false;
  /** Set by instructions that need the run loop's attention right after them. */
  brk = false;
  nmiBlocked = false;
  /** The last instruction transferred control (a block may start at rip). */
  atBranch = true;
  /** Instructions retired. */
  icount = 0;
  /** Dirty log (one byte per backing page, live migration) or null: writes then fill the TLB only for dirty pages. */
  dirty: Uint8Array | null = null;

  // Debugger hooks (core/cpu/debug.ts); null when no watchpoint is set.
  /** Called on every slow-path data access (acc 0 read, 1 write) with its linear address. */
  dbgWatch: ((la: number, acc: number) => void) | null = null;
  /** TLB permission bits withheld per virtual page number, keeping watched pages on the slow path. */
  dbgPages: Map<number, number> | null = null;

  // Software TLB.
  readonly tlbTag = new Float64Array(TLB_SIZE).fill(NaN);
  /** u8 offset of each page (RAM up to 4 GiB of backing store). */
  readonly tlbOff = new Uint32Array(TLB_SIZE);
  readonly tlbPerm = new Uint8Array(TLB_SIZE);
  /** Permission masks for the current CPL. */
  rdMask = P_KR;
  wrMask = P_KW;
  exMask = P_KX;

  // Per-instruction fetch state.
  /** Linear address of the next byte to fetch when the fetch pointer is inactive. */
  ipSlow = 0;
  /** Fetch pointer into u8 (active while fp < fpEnd or fpActive). */
  fp = 0;
  fpEnd = 0;
  fpActive = false;

  /** Linear address of the next byte to fetch. */
  get ip(): number {
    return this.fpActive ? this.fpLin + (this.fp - this.fpBase) : this.ipSlow;
  }

  set ip(v: number) {
    // A target in the cached code page keeps the fetch pointer (jumps within a page skip fetch8Slow).
    const o = v - this.fpLin;
    if (o >= 0 && o < 4096) {
      const base = this.fpBase;
      this.fp = (base + o) >>> 0;
      this.fpEnd = (base + 4096) >>> 0;
      this.fpActive = true;
      return;
    }
    this.ipSlow = v;
    this.fpActive = false;
    this.fpEnd = 0;
  }
  startIp = 0;
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly phys: PhysMap;
  readonly lapic: LocalApicPort | null;
  readonly board: AccelBoard;
  readonly index: number;
  readonly cpuidModel: CpuidModel;
  /** Called when an unimplemented instruction or guest error is seen (logged once per kind). */
  log: (msg: string) => void = () => {};

  constructor(board: AccelBoard, index: number) {
    this.board = board;
    this.index = index;
    this.phys = board.phys;
    this.u8 = board.phys.u8;
    this.dv = new DataView(this.u8.buffer, this.u8.byteOffset, this.u8.byteLength);
    this.lapic = board.lapics[index] ?? null;
    this.cpuidModel = new CpuidModel(board.cpuModel, board.cpuFeatures, board.tscKhz || 1000000);
    this.resetState();
  }

  /** Power-on state (SDM vol. 3A 9.1.1): real mode at f000:fff0. */
  resetState(): void {
    this.r.fill(0);
    this.rip = 0xfff0;
    this.flags = 2;
    this.ccOp = CC_EAGER;
    for (let i = 0; i < 8; i++) {
      this.segSel[i] = 0;
      this.segBase[i] = 0;
      this.segLimit[i] = 0xffff;
      this.segAttr[i] = 0x93;
    }
    this.segSel[CS] = 0xf000;
    this.segBase[CS] = 0xffff0000;
    this.segAttr[CS] = 0x9b;
    this.segAttr[LDTR] = 0x82;
    this.segAttr[TR] = 0x8b;
    this.gdtBase = 0;
    this.gdtLimit = 0xffff;
    this.idtBase = 0;
    this.idtLimit = 0x3ff;
    this.cr0 = CR0_ET | CR0_NE;
    this.cr2 =
      this.cr3 =
      this.cr4 =
      this.cr8 =
        0;
    this.efer = 0;
    this.xmm.fill(0);
    this.ymmh.fill(0);
    this.xcr0 = 1;
    this.mxcsr = 0x1f80;
    this.fpuCw = 0x37f;
    this.fpuSw = 0;
    this.fpuTw = 0;
    this.fpuPtr.fill(0);
    this.halted = false;
    this.intShadow = false;
    this.nmiBlocked = false;
    this.updateMode();
    this.flushTlb();
  }

  /** Recompute derived mode bits after CR0/EFER/CS/SS changes. */
  updateMode(): void {
    const pe = (this.cr0 & CR0_PE) !== 0;
    if ((this.cr0 & CR0_PG) && (this.efer & EFER_LME)) this.efer |= EFER_LMA;
    else this.efer &= ~EFER_LMA;
    const lma = (this.efer & EFER_LMA) !== 0;
    const csa = this.segAttr[CS];
    this.long64 = lma && (csa & 0x2000) !== 0;
    // In 64-bit mode the CS base is ignored (treated as 0).
    if (this.long64) this.segBase[CS] = 0;
    this.csD = (csa & 0x4000) !== 0 && !this.long64;
    this.ssB = (this.segAttr[SS] & 0x4000) !== 0;
    if (!pe) this.cpl = 0;
    else if (this.flags & F_VM) this.cpl = 3;
    else this.cpl = (csa >> 5) & 3;
    this.paging = pe && (this.cr0 & CR0_PG) !== 0;
    this.setPermMasks();
    this.updateSegChk();
  }

  /** Some usable segment is not flat in 16/32-bit protected mode: memory operands get limit checks (seglimit.ts). */
  segChk = false;

  /** Recompute segChk (after a segment load or a mode change). */
  updateSegChk(): void {
    let chk = false;
    if (!this.long64 && (this.cr0 & CR0_PE) && !(this.flags & F_VM)) {
      for (let s = ES; s <= GS; s++) {
        const a = this.segAttr[s];
        if ((a & 0x80) && ((a & 0x1c) === 0x14 || this.segLimit[s] < 0xffffffff)) chk = true;
      }
    }
    this.segChk = chk;
  }

  setPermMasks(): void {
    this.invalidateFetch();
    if (this.cpl === 3) {
      this.rdMask = P_UR;
      this.wrMask = P_UW;
      this.exMask = P_UX;
    } else {
      this.rdMask = P_KR;
      this.wrMask = P_KW;
      this.exMask = P_KX;
    }
  }

  flushTlb(): void {
    this.tlbTag.fill(NaN);
    this.tlbLarge = false;
    this.invalidateFetch();
    this.tlbGen = (this.tlbGen + 1) | 0;
  }

  /** A TLB entry was filled from a 2 MiB / 4 MiB / 1 GiB page since the last full flush. */
  tlbLarge = false;

  /**
   * INVLPG: drop the translation of the page holding `la` and keep the rest. Entries are 4 KiB pieces; pieces of
   * large pages are tagged P_LARGE, and all of those within the 1 GiB region around `la` go too (the page that
   * held `la` may have been large). The JIT's linear-address lookups and chains are per tlbGen: bumped.
   */
  invlpg(la: number): void {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    if (this.tlbTag[i] === vpn) this.tlbTag[i] = NaN;
    if (this.tlbLarge) {
      const lo = vpn - (vpn % 262144), hi = lo + 262144;
      const tag = this.tlbTag, perm = this.tlbPerm;
      for (let j = 0; j < TLB_SIZE; j++) {
        if ((perm[j] & P_LARGE) && tag[j] >= lo && tag[j] < hi) tag[j] = NaN;
      }
    }
    this.invalidateFetch();
    this.tlbGen = (this.tlbGen + 1) | 0;
  }

  // JIT write tracking (jit.ts): pages holding translated code never get write permission in the TLB.
  /** Bumped by every TLB flush: the JIT's per-vCPU lookups and chains are only valid for one generation. */
  tlbGen = 0;
  /** 1 per physical page (u8 offset / 4096) holding translated code; null without a JIT. */
  codePages: Uint8Array | null = null;
  /** This vCPU's index in the JIT. */
  jitIndex = 0;
  /** Set when a store invalidated translated code: the running block exits after that instruction. */
  smc = false;
  /** Set by the JIT when a block stopped before an instruction it does not translate: re-enter after it. */
  jitAfter = false;
  /** Called for a store into a page marked in codePages (u8 offset, bytes). */
  onCodeWrite: ((p: number, len: number) => void) | null = null;

  /** Take write permission away from TLB entries mapping the page at u8 offset `base` (it now holds code). */
  protectCodePage(base: number): void {
    const off = this.tlbOff, perm = this.tlbPerm;
    for (let i = 0; i < TLB_SIZE; i++) if (off[i] === base) perm[i] &= ~(P_KW | P_UW);
  }

  /** CPL changes need no flush: TLB entries carry user and supervisor permissions separately. */
  flushTlbIfCplChanged(): void {}

  /** Hook for the block cache: the address space changed (CR3 write). */
  codePagesChanged(): void {}

  // ---------------------------------------------------------------- flags

  /** Materialise EFLAGS (all bits). */
  getFlags(): number {
    if (this.ccOp === CC_EAGER) return this.flags;
    const f = (this.flags & ~F_ARITH) | this.cf() | this.pf() | this.af() | this.zf() | this.sf() | this.of();
    return f;
  }

  /** Set EFLAGS (all bits given; caller masks what may change). */
  setFlags(f: number): void {
    this.flags = (f & 0x3f7fd5) | 2;
    this.ccOp = CC_EAGER;
  }

  /** Make the arithmetic flags eager (before changing a subset of them). */
  eager(): void {
    if (this.ccOp !== CC_EAGER) {
      this.flags = this.getFlags();
      this.ccOp = CC_EAGER;
    }
  }

  cf(): number {
    const a = this.ccA, r = this.ccR;
    switch (this.ccOp) {
      case CC_EAGER:
        return this.flags & F_CF;
      case CC_ADD:
        if (this.ccSz === 8) return ult64(this.ccR, this.ccRh, this.ccA, this.ccAh) ? 1 : 0;
        return (r >>> 0) < (a >>> 0) ? 1 : 0;
      case CC_ADC:
        if (this.ccSz === 8) {
          return (this.ccAux & 1
              ? !ult64(this.ccA, this.ccAh, this.ccR, this.ccRh)
              : ult64(this.ccR, this.ccRh, this.ccA, this.ccAh))
            ? 1
            : 0;
        }
        return (this.ccAux & 1 ? (r >>> 0) <= (a >>> 0) : (r >>> 0) < (a >>> 0)) ? 1 : 0;
      case CC_SUB:
        if (this.ccSz === 8) return ult64(this.ccA, this.ccAh, this.ccB, this.ccBh) ? 1 : 0;
        return (a >>> 0) < (this.ccB >>> 0) ? 1 : 0;
      case CC_SBB:
        if (this.ccSz === 8) {
          return (this.ccAux & 1
              ? !ult64(this.ccB, this.ccBh, this.ccA, this.ccAh)
              : ult64(this.ccA, this.ccAh, this.ccB, this.ccBh))
            ? 1
            : 0;
        }
        return (this.ccAux & 1 ? (a >>> 0) <= (this.ccB >>> 0) : (a >>> 0) < (this.ccB >>> 0)) ? 1 : 0;
      default:
        return this.ccAux & F_CF;
    }
  }

  zf(): number {
    if (this.ccOp === CC_EAGER) return this.flags & F_ZF;
    if (this.ccSz === 8) return (this.ccR | this.ccRh) === 0 ? F_ZF : 0;
    return this.ccR === 0 ? F_ZF : 0;
  }

  sf(): number {
    if (this.ccOp === CC_EAGER) return this.flags & F_SF;
    if (this.ccSz === 8) return this.ccRh < 0 ? F_SF : 0;
    return (this.ccR & SIGN[this.ccSz]) ? F_SF : 0;
  }

  pf(): number {
    if (this.ccOp === CC_EAGER) return this.flags & F_PF;
    return PARITY[this.ccR & 0xff];
  }

  af(): number {
    switch (this.ccOp) {
      case CC_EAGER:
        return this.flags & F_AF;
      case CC_RES:
        return this.ccAux & F_AF;
      default:
        return (this.ccA ^ this.ccB ^ this.ccR) & F_AF;
    }
  }

  of(): number {
    let x: number;
    switch (this.ccOp) {
      case CC_EAGER:
        return this.flags & F_OF;
      case CC_ADD:
      case CC_ADC:
      case CC_INC:
        x = this.ccSz === 8
          ? (this.ccAh ^ this.ccRh) & (this.ccBh ^ this.ccRh)
          : (this.ccA ^ this.ccR) & (this.ccB ^ this.ccR);
        break;
      case CC_SUB:
      case CC_SBB:
      case CC_DEC:
        x = this.ccSz === 8
          ? (this.ccAh ^ this.ccBh) & (this.ccAh ^ this.ccRh)
          : (this.ccA ^ this.ccB) & (this.ccA ^ this.ccR);
        break;
      default:
        return this.ccAux & F_OF;
    }
    if (this.ccSz === 8) return x < 0 ? F_OF : 0;
    return (x & SIGN[this.ccSz]) ? F_OF : 0;
  }

  /** Evaluate condition code cc (0..15) as used by Jcc/SETcc/CMOVcc. */
  cond(cc: number): boolean {
    // Fast paths for compare and logic results.
    if (this.ccOp === CC_SUB && this.ccSz !== 8) {
      const sz = this.ccSz;
      const a = this.ccA, b = this.ccB;
      switch (cc) {
        case 2:
          return (a >>> 0) < (b >>> 0);
        case 3:
          return (a >>> 0) >= (b >>> 0);
        case 4:
          return a === b;
        case 5:
          return a !== b;
        case 6:
          return (a >>> 0) <= (b >>> 0);
        case 7:
          return (a >>> 0) > (b >>> 0);
        case 0xc:
          return sext(a, sz) < sext(b, sz);
        case 0xd:
          return sext(a, sz) >= sext(b, sz);
        case 0xe:
          return sext(a, sz) <= sext(b, sz);
        case 0xf:
          return sext(a, sz) > sext(b, sz);
      }
    }
    switch (cc) {
      case 0:
        return this.of() !== 0;
      case 1:
        return this.of() === 0;
      case 2:
        return this.cf() !== 0;
      case 3:
        return this.cf() === 0;
      case 4:
        return this.zf() !== 0;
      case 5:
        return this.zf() === 0;
      case 6:
        return (this.cf() | this.zf()) !== 0;
      case 7:
        return (this.cf() | this.zf()) === 0;
      case 8:
        return this.sf() !== 0;
      case 9:
        return this.sf() === 0;
      case 0xa:
        return this.pf() !== 0;
      case 0xb:
        return this.pf() === 0;
      case 0xc:
        return (this.sf() !== 0) !== (this.of() !== 0);
      case 0xd:
        return (this.sf() !== 0) === (this.of() !== 0);
      case 0xe:
        return this.zf() !== 0 || (this.sf() !== 0) !== (this.of() !== 0);
      default:
        return this.zf() === 0 && (this.sf() !== 0) === (this.of() !== 0);
    }
  }

  /** Record a result whose CF/OF/AF are given (logic ops: 0). */
  setRes(sz: number, r: number, rh: number, cfof: number): void {
    this.ccOp = CC_RES;
    this.ccSz = sz;
    this.ccR = r;
    this.ccRh = rh;
    this.ccAux = cfof;
  }

  // ---------------------------------------------------------------- registers

  /** Read GPR `n` of size `sz` (byte regs: n 4..7 without REX are AH..BH, handled by getReg8). */
  getReg(sz: number, n: number): number {
    const v = this.r[n];
    switch (sz) {
      case 1:
        return v & 0xff;
      case 2:
        return v & 0xffff;
      case 4:
        return v;
      default:
        this.hi = this.r[n + 16];
        return v;
    }
  }

  setReg(sz: number, n: number, v: number, vh: number): void {
    switch (sz) {
      case 1:
        this.r[n] = (this.r[n] & ~0xff) | (v & 0xff);
        return;
      case 2:
        this.r[n] = (this.r[n] & ~0xffff) | (v & 0xffff);
        return;
      case 4:
        this.r[n] = v;
        this.r[n + 16] = 0;
        return;
      default:
        this.r[n] = v;
        this.r[n + 16] = vh;
    }
  }

  /** Byte register by encoding: with REX (or n >= 8) SPL..R15B, else AL..BH. */
  getReg8(n: number, rex: number): number {
    if (n < 4 || rex) return this.r[n] & 0xff;
    return (this.r[n - 4] >> 8) & 0xff;
  }

  setReg8(n: number, rex: number, v: number): void {
    if (n < 4 || rex) this.r[n] = (this.r[n] & ~0xff) | (v & 0xff);
    else this.r[n - 4] = (this.r[n - 4] & ~0xff00) | ((v & 0xff) << 8);
  }

  /** Register as a JS number (signed 64-bit view; exact below 2^53). */
  regNum(n: number): number {
    return this.r[n + 16] * TWO32 + (this.r[n] >>> 0);
  }

  // ---------------------------------------------------------------- faults

  fault(vec: number, err = -1): never {
    throw new CpuFault(vec, err);
  }

  gp(err = 0): never {
    throw new CpuFault(EXC_GP, err);
  }

  ud(): never {
    throw new CpuFault(EXC_UD, -1);
  }

  // ---------------------------------------------------------------- paging

  /**
   * Translate linear `la` for an access (0 read, 1 write, 2 exec) and fill the TLB.
   * Returns the physical address; throws #PF on a fault.
   */
  translate(la: number, acc: number): number {
    if (this.dbgWatch !== null && acc !== 2) this.dbgWatch(la, acc);
    if (!this.paging) {
      const pa = la >= 0 ? la % TWO32 : (la % TWO32) + TWO32;
      this.fillTlb(la, pa, P_KR | P_KW | P_UR | P_UW | P_KX | P_UX);
      return pa;
    }
    const user = this.cpl === 3;
    const wp = (this.cr0 & CR0_WP) !== 0;
    const nxe = (this.efer & EFER_NXE) !== 0;
    let rw = 1, us = 1, nx = 0;
    let pa = 0, pageSize = 4096;
    let entAddr: number;
    const vpn = Math.floor(la / 4096);
    if (this.efer & EFER_LMA) {
      if (la < -0x800000000000 || la >= 0x800000000000) this.gp(0);
      let table = this.cr3 - (this.cr3 % 4096);
      table = table % 0x10000000000000;
      const idx = [
        Math.floor(la / 0x8000000000) & 511,
        Math.floor(la / 0x40000000) & 511,
        Math.floor(la / 0x200000) & 511,
        vpn & 511,
      ];
      for (let level = 0; level < 4; level++) {
        entAddr = table + idx[level] * 8;
        let lo = this.physRd32(entAddr);
        const hi = this.physRd32(entAddr + 4);
        if (!(lo & 1)) this.pageFault(la, acc, user, false);
        if (nxe) nx |= hi >>> 31;
        else if (hi < 0) this.pageFault(la, acc, user, true, true);
        rw &= (lo >> 1) & 1;
        us &= (lo >> 2) & 1;
        const large = (lo & 0x80) !== 0 && (level === 1 || level === 2);
        const leaf = level === 3 || large;
        const base = (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
        if (leaf) {
          // Permission check before setting A/D.
          this.checkPerm(la, acc, user, rw, us, nx, wp);
          let nlo = lo | 0x20;
          if (acc === 1) nlo |= 0x40;
          if (nlo !== lo) {
            this.physWr32(entAddr, nlo);
            lo = nlo;
          }
          if (level === 1) {
            pageSize = 0x40000000;
            pa = base - (base % 0x40000000) + (la - Math.floor(la / 0x40000000) * 0x40000000);
          } else if (level === 2) {
            pageSize = 0x200000;
            pa = base - (base % 0x200000) + (la - Math.floor(la / 0x200000) * 0x200000);
          } else {
            pa = base + (la - vpn * 4096);
          }
          const dirty = (lo & 0x40) !== 0;
          this.fillTlbPerm(la, pa, rw, us, nx, wp, dirty, level < 3);
          return pa;
        }
        if (!(lo & 0x20)) this.physWr32(entAddr, lo | 0x20);
        table = base;
      }
      return 0;
    }
    if (this.cr4 & CR4_PAE) {
      // PAE 3-level (SDM 4.4).
      const l = la >>> 0;
      const pdpteAddr = (this.cr3 & 0xffffffe0 >>> 0) + ((l >>> 30) & 3) * 8;
      const plo = this.physRd32(pdpteAddr >>> 0);
      const phi = this.physRd32((pdpteAddr >>> 0) + 4);
      if (!(plo & 1)) this.pageFault(la, acc, user, false);
      let table = (phi & 0xfffff) * TWO32 + ((plo & 0xfffff000) >>> 0);
      for (let level = 2; level < 4; level++) {
        entAddr = table + (level === 2 ? (l >>> 21) & 511 : (l >>> 12) & 511) * 8;
        let lo = this.physRd32(entAddr);
        const hi = this.physRd32(entAddr + 4);
        if (!(lo & 1)) this.pageFault(la, acc, user, false);
        if (nxe) nx |= hi >>> 31;
        rw &= (lo >> 1) & 1;
        us &= (lo >> 2) & 1;
        const large = level === 2 && (lo & 0x80) !== 0;
        const base = (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
        if (large || level === 3) {
          this.checkPerm(la, acc, user, rw, us, nx, wp);
          let nlo = lo | 0x20;
          if (acc === 1) nlo |= 0x40;
          if (nlo !== lo) {
            this.physWr32(entAddr, nlo);
            lo = nlo;
          }
          pa = large ? base - (base % 0x200000) + (l & 0x1fffff) : base + (l & 0xfff);
          this.fillTlbPerm(la, pa, rw, us, nx, wp, (lo & 0x40) !== 0, large);
          return pa;
        }
        if (!(lo & 0x20)) this.physWr32(entAddr, lo | 0x20);
        table = base;
      }
      return 0;
    }
    // Legacy 2-level 32-bit paging (SDM 4.3).
    const l = la >>> 0;
    const pdeAddr = ((this.cr3 & 0xfffff000) >>> 0) + (l >>> 22) * 4;
    let pde = this.physRd32(pdeAddr);
    if (!(pde & 1)) this.pageFault(la, acc, user, false);
    rw &= (pde >> 1) & 1;
    us &= (pde >> 2) & 1;
    if ((pde & 0x80) && (this.cr4 & CR4_PSE)) {
      this.checkPerm(la, acc, user, rw, us, 0, wp);
      const n = pde | 0x20 | (acc === 1 ? 0x40 : 0);
      if (n !== pde) this.physWr32(pdeAddr, n);
      pde = n;
      pa = ((pde & 0xffc00000) >>> 0) + (l & 0x3fffff);
      this.fillTlbPerm(la, pa, rw, us, 0, wp, (pde & 0x40) !== 0, true);
      return pa;
    }
    if (!(pde & 0x20)) this.physWr32(pdeAddr, pde | 0x20);
    const pteAddr = ((pde & 0xfffff000) >>> 0) + ((l >>> 12) & 1023) * 4;
    let pte = this.physRd32(pteAddr);
    if (!(pte & 1)) this.pageFault(la, acc, user, false);
    rw &= (pte >> 1) & 1;
    us &= (pte >> 2) & 1;
    this.checkPerm(la, acc, user, rw, us, 0, wp);
    const n = pte | 0x20 | (acc === 1 ? 0x40 : 0);
    if (n !== pte) this.physWr32(pteAddr, n);
    pte = n;
    pa = ((pte & 0xfffff000) >>> 0) + (l & 0xfff);
    void pageSize;
    this.fillTlbPerm(la, pa, rw, us, 0, wp, (pte & 0x40) !== 0);
    return pa;
  }

  checkPerm(la: number, acc: number, user: boolean, rw: number, us: number, nx: number, wp: boolean): void {
    if (user && !us) this.pageFault(la, acc, user, true);
    if (acc === 1 && !rw && (user || wp)) this.pageFault(la, acc, user, true);
    if (acc === 2 && nx) this.pageFault(la, acc, user, true);
  }

  pageFault(la: number, acc: number, user: boolean, present: boolean, rsvd = false): never {
    this.cr2 = la;
    let err = present ? 1 : 0;
    if (acc === 1) err |= 2;
    if (user) err |= 4;
    if (rsvd) err |= 8;
    if (acc === 2 && (this.efer & EFER_NXE)) err |= 0x10;
    throw new CpuFault(EXC_PF, err);
  }

  fillTlbPerm(
    la: number,
    pa: number,
    rw: number,
    us: number,
    nx: number,
    wp: boolean,
    dirty: boolean,
    large = false,
  ): void {
    let p = P_KR;
    if (large) {
      p |= P_LARGE;
      this.tlbLarge = true;
    }
    if (dirty && (rw || !wp)) p |= P_KW;
    if (!nx) p |= P_KX;
    if (us) {
      p |= P_UR;
      if (dirty && rw) p |= P_UW;
      if (!nx) p |= P_UX;
    }
    this.fillTlb(la, pa, p);
  }

  fillTlb(la: number, pa: number, perm: number): void {
    const vpn = Math.floor(la / 4096);
    const gpn = Math.floor(pa / 4096);
    const base = this.phys.pageBase(gpn);
    if (base < 0) return; // MMIO: always the slow path
    if (this.lapic && gpn === Math.floor(this.lapic.baseAddress / 4096)) return;
    if (this.phys.isReadOnly(gpn)) perm &= ~(P_KW | P_UW);
    const cp = this.codePages;
    if (cp !== null && cp[Math.floor(base / 4096)]) perm &= ~(P_KW | P_UW);
    if (this.dbgPages !== null) perm &= ~(this.dbgPages.get(vpn) ?? 0);
    if (this.dirty !== null && this.dirty[base >>> 12] === 0) perm &= ~(P_KW | P_UW);
    const i = vpn & TLB_MASK;
    this.tlbTag[i] = vpn;
    this.tlbOff[i] = base;
    this.tlbPerm[i] = perm;
  }

  // ---------------------------------------------------------------- physical access

  physRd32(pa: number): number {
    const base = this.phys.pageBase(Math.floor(pa / 4096));
    const o = pa % 4096;
    if (base >= 0 && o <= 4092) return this.dv.getInt32(base + o, true);
    return this.physRdSlow(pa, 4);
  }

  physWr32(pa: number, v: number): void {
    const gpn = Math.floor(pa / 4096);
    const base = this.phys.pageBase(gpn);
    const o = pa % 4096;
    if (base >= 0 && o <= 4092) {
      if (!this.phys.isReadOnly(gpn)) {
        this.codeWrite(base + o, 4);
        this.dv.setInt32(base + o, v, true);
      }
      if (this.dirty !== null) this.dirty[base >>> 12] = 1;
      return;
    }
    this.physWrSlow(pa, 4, v);
  }

  /** Physical read of 1/2/4 bytes not on the RAM fast path (MMIO, LAPIC, page-crossing). */
  physRdSlow(pa: number, sz: number): number {
    const gpn = Math.floor(pa / 4096);
    const o = pa % 4096;
    if (o + sz > 4096) {
      let v = 0;
      for (let i = 0; i < sz; i++) v |= this.physRdSlow(pa + i, 1) << (8 * i);
      return sz === 4 ? v : v >>> 0;
    }
    const base = this.phys.pageBase(gpn);
    if (base >= 0) {
      const p = base + o;
      if (sz === 1) return this.u8[p];
      if (sz === 2) return this.dv.getUint16(p, true);
      return this.dv.getInt32(p, true);
    }
    const lapic = this.lapic;
    if (lapic && gpn === Math.floor(lapic.baseAddress / 4096)) {
      const v = lapic.mmioRead(o & ~3) >>> ((o & 3) * 8);
      return sz === 4 ? v | 0 : v & (sz === 1 ? 0xff : 0xffff);
    }
    if (pa >= TWO32) return sz === 4 ? -1 : sz === 1 ? 0xff : 0xffff;
    const v = this.board.mmio.read(pa, sz as 1 | 2 | 4);
    return sz === 4 ? v | 0 : v;
  }

  physWrSlow(pa: number, sz: number, v: number): void {
    const gpn = Math.floor(pa / 4096);
    const o = pa % 4096;
    if (o + sz > 4096) {
      for (let i = 0; i < sz; i++) this.physWrSlow(pa + i, 1, v >>> (8 * i));
      return;
    }
    const base = this.phys.pageBase(gpn);
    if (base >= 0) {
      if (this.phys.isReadOnly(gpn)) return;
      const p = base + o;
      this.codeWrite(p, sz);
      if (this.dirty !== null) this.dirty[p >>> 12] = 1;
      if (sz === 1) this.u8[p] = v;
      else if (sz === 2) this.dv.setUint16(p, v, true);
      else this.dv.setInt32(p, v, true);
      return;
    }
    const lapic = this.lapic;
    if (lapic && gpn === Math.floor(lapic.baseAddress / 4096)) {
      lapic.mmioWrite(o & ~3, sz === 4 ? v >>> 0 : (v & (sz === 1 ? 0xff : 0xffff)) << ((o & 3) * 8));
      this.brk = true;
      return;
    }
    if (pa >= TWO32) return;
    this.board.mmio.write(pa, sz as 1 | 2 | 4, sz === 4 ? v >>> 0 : v & (sz === 1 ? 0xff : 0xffff));
    this.brk = true;
  }

  /** A store of `len` bytes hit RAM at u8 offset `p` outside the TLB fast path: tell the JIT if it holds code. */
  codeWrite(p: number, len: number): void {
    const cp = this.codePages;
    if (cp === null) return;
    const a = Math.floor(p / 4096), b = Math.floor((p + len - 1) / 4096);
    if (cp[a] || cp[b]) this.onCodeWrite?.(p, len);
  }

  // ---------------------------------------------------------------- linear access

  rd8(la: number): number {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.rdMask)) {
      return this.u8[this.tlbOff[i] + (la - vpn * 4096)];
    }
    return this.physRdSlow(this.translate(la, 0), 1);
  }

  rd16(la: number): number {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    const o = la - vpn * 4096;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.rdMask) && o <= 4094) {
      return this.dv.getUint16(this.tlbOff[i] + o, true);
    }
    if (o > 4094) return this.rd8(la) | (this.rd8(la + 1) << 8);
    return this.physRdSlow(this.translate(la, 0), 2);
  }

  rd32(la: number): number {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    const o = la - vpn * 4096;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.rdMask) && o <= 4092) {
      return this.dv.getInt32(this.tlbOff[i] + o, true);
    }
    if (o > 4092) return this.rd16(la) | (this.rd16(la + 2) << 16);
    return this.physRdSlow(this.translate(la, 0), 4);
  }

  /** 64-bit read: returns the low half, high half in `this.hi`. */
  rd64(la: number): number {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    const o = la - vpn * 4096;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.rdMask) && o <= 4088) {
      const p = this.tlbOff[i] + o;
      this.hi = this.dv.getInt32(p + 4, true);
      return this.dv.getInt32(p, true);
    }
    const lo = this.rd32(la);
    this.hi = this.rd32(la + 4);
    return lo;
  }

  /** Read of size 1/2/4/8 (8: high half in `this.hi`). */
  rd(sz: number, la: number): number {
    switch (sz) {
      case 1:
        return this.rd8(la);
      case 2:
        return this.rd16(la);
      case 4:
        return this.rd32(la);
      default:
        return this.rd64(la);
    }
  }

  wr8(la: number, v: number): void {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.wrMask)) {
      const p = this.tlbOff[i] + (la - vpn * 4096);
      this.u8[p] = v;
      return;
    }
    this.physWrSlow(this.translateW(la), 1, v);
  }

  wr16(la: number, v: number): void {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    const o = la - vpn * 4096;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.wrMask) && o <= 4094) {
      this.dv.setUint16(this.tlbOff[i] + o, v, true);
      return;
    }
    if (o > 4094) {
      this.checkW(la + 1);
      this.wr8(la, v);
      this.wr8(la + 1, v >> 8);
      return;
    }
    this.physWrSlow(this.translateW(la), 2, v);
  }

  wr32(la: number, v: number): void {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    const o = la - vpn * 4096;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.wrMask) && o <= 4092) {
      this.dv.setInt32(this.tlbOff[i] + o, v, true);
      return;
    }
    if (o > 4092) {
      this.checkW(la);
      this.checkW(la + 3);
      for (let k = 0; k < 4; k++) this.wr8(la + k, v >> (8 * k));
      return;
    }
    this.physWrSlow(this.translateW(la), 4, v);
  }

  wr64(la: number, lo: number, hi: number): void {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    const o = la - vpn * 4096;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.wrMask) && o <= 4088) {
      const p = this.tlbOff[i] + o;
      this.dv.setInt32(p, lo, true);
      this.dv.setInt32(p + 4, hi, true);
      return;
    }
    this.checkW(la);
    this.checkW(la + 7);
    this.wr32(la, lo);
    this.wr32(la + 4, hi);
  }

  wr(sz: number, la: number, v: number, vh: number): void {
    switch (sz) {
      case 1:
        this.wr8(la, v);
        return;
      case 2:
        this.wr16(la, v);
        return;
      case 4:
        this.wr32(la, v);
        return;
      default:
        this.wr64(la, v, vh);
    }
  }

  /** Probe that `la` is writable (faults now, before any part of a split store is done). */
  checkW(la: number): void {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    if (this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.wrMask)) return;
    this.translateW(la);
  }

  translateW(la: number): number {
    return this.translate(la, 1);
  }

  /** Fetch permission probe: u8 offset of the code byte at `la`, or -1 when not RAM (MMIO / ROM fetch through slow path). */
  fetchOff(la: number): number {
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    if (!(this.tlbTag[i] === vpn && (this.tlbPerm[i] & this.exMask))) {
      const pa = this.translate(la, 2);
      const gpn = Math.floor(pa / 4096);
      const base = this.phys.pageBase(gpn);
      if (base < 0) return -1;
      if (this.tlbTag[i] !== vpn) return base + (pa % 4096);
    }
    return this.tlbOff[i] + (la - vpn * 4096);
  }

  /** Linear start of the cached code page (NaN: none) and its u8 offset. */
  fpLin = NaN;
  fpBase = 0;

  /** Read an instruction byte at the fetch pointer. */
  fetch8(): number {
    const p = this.fp;
    if (p < this.fpEnd) {
      this.fp = (p + 1) >>> 0;
      return this.u8[p];
    }
    return this.fetch8Slow();
  }

  /** Re-establish the fetch pointer (new page, jump, TLB flush) and read one byte. */
  fetch8Slow(): number {
    const la = this.ip;
    const o = la - this.fpLin;
    if (o >= 0 && o < 4096) {
      const p = (this.fpBase + o) >>> 0;
      this.fp = (p + 1) >>> 0;
      this.fpEnd = (this.fpBase + 4096) >>> 0;
      this.fpActive = true;
      return this.u8[p];
    }
    const off = this.fetchOff(la);
    if (off >= 0) {
      const vpn = Math.floor(la / 4096);
      this.fpLin = vpn * 4096;
      this.fpBase = (off - (la - vpn * 4096)) >>> 0;
      this.fp = (off + 1) >>> 0;
      this.fpEnd = (this.fpBase + 4096) >>> 0;
      this.fpActive = true;
      return this.u8[off];
    }
    this.ip = la + 1;
    return this.physRdSlow(this.translate(la, 2), 1);
  }

  /** Drop the cached code page (keeps the current ip). */
  invalidateFetch(): void {
    if (this.fpActive) {
      this.ipSlow = this.fpLin + (this.fp - this.fpBase);
      this.fpActive = false;
      this.fpEnd = 0;
    }
    this.fpLin = NaN;
  }

  fetch16(): number {
    const a = this.fetch8();
    return a | (this.fetch8() << 8);
  }

  fetch32(): number {
    const p = this.fp;
    if (p + 4 <= this.fpEnd) {
      this.fp = (p + 4) >>> 0;
      return this.dv.getInt32(p, true);
    }
    const a = this.fetch8(), b = this.fetch8(), c = this.fetch8(), d = this.fetch8();
    return a | (b << 8) | (c << 16) | (d << 24);
  }

  // ---------------------------------------------------------------- system-table access (supervisor)

  /** Supervisor read of a system structure (GDT/IDT/TSS) regardless of CPL. */
  sysRd32(la: number): number {
    const save = this.rdMask;
    this.rdMask = P_KR;
    const saveCpl = this.cpl;
    this.cpl = 0;
    try {
      return this.rd32(la);
    } finally {
      this.rdMask = save;
      this.cpl = saveCpl;
    }
  }

  sysWr32(la: number, v: number): void {
    const save = this.wrMask;
    this.wrMask = P_KW;
    const saveCpl = this.cpl;
    this.cpl = 0;
    try {
      this.wr32(la, v);
    } finally {
      this.wrMask = save;
      this.cpl = saveCpl;
    }
  }

  /** TSC value: clock ns × kHz / 1e6 plus the guest's offset (from WRMSR TSC). */
  tsc(): bigint {
    const lo = this.tscLo();
    return (BigInt(this.hi >>> 0) << 32n) | BigInt(lo >>> 0);
  }

  /** TSC as (lo, hi in this.hi) without BigInt: exact while clock ms × kHz < 2^53. */
  tscLo(): number {
    const ns = this.board.clock.now();
    const khz = this.board.tscKhz || 1000000;
    const ms = Math.floor(ns / 1e6);
    let t = ms * khz + Math.floor(((ns - ms * 1e6) * khz) / 1e6) + this.tscOffsetNum;
    if (t < 0) t = 0;
    const hi = Math.floor(t / 4294967296);
    this.hi = hi | 0;
    return (t - hi * 4294967296) | 0;
  }
}

/** Unsigned 64-bit a < b on (lo, hi) pairs. */
export function ult64(alo: number, ahi: number, blo: number, bhi: number): boolean {
  if (ahi !== bhi) return (ahi >>> 0) < (bhi >>> 0);
  return (alo >>> 0) < (blo >>> 0);
}

/** Sign-extend a value of `sz` bytes (1, 2, 4) to int32. */
export function sext(v: number, sz: number): number {
  if (sz === 1) return (v << 24) >> 24;
  if (sz === 2) return (v << 16) >> 16;
  return v | 0;
}
