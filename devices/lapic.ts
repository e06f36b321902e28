/**
 * The local APIC of each software vCPU (xAPIC MMIO and x2APIC MSRs) and the APIC bus that joins them,
 * following the Intel SDM vol. 3 ch. 11 and QEMU 7.2's hw/intc/apic.c: version 0x50014 (6 LVT entries),
 * TPR/PPR/APR, ISR/TMR/IRR, EOI with level-EOI broadcast to the IOAPIC, LDR/DFR (flat and cluster), SVR,
 * ESR, ICR IPIs (fixed, lowest priority, NMI, INIT, SIPI; shorthands), the LVT timer in one-shot, periodic
 * and TSC-deadline modes (1 GHz APIC bus clock as KVM and QEMU use; counts derived from the Clock), LINT0
 * as ExtINT from the PIC, LINT1 as NMI. Under KVM the in-kernel LAPIC replaces all of this.
 * @module
 */
import type { LocalApicPort } from "../core/accel.ts";
import type { Clock, DeviceState, GuestLog, Timer } from "../core/types.ts";
import type { ApicBus } from "./apic_bus.ts";
import {
  APIC_ARBPRI,
  APIC_DEFAULT_BASE,
  APIC_DFR,
  APIC_DM_EXTINT,
  APIC_DM_FIXED,
  APIC_DM_INIT,
  APIC_DM_LOWEST,
  APIC_DM_NMI,
  APIC_DM_SMI,
  APIC_DM_STARTUP,
  APIC_EOI,
  APIC_ESR,
  APIC_ESR_ILLEGAL_REGISTER,
  APIC_ESR_RECV_ILLEGAL_VECTOR,
  APIC_ESR_SEND_ILLEGAL_VECTOR,
  APIC_ICR,
  APIC_ICR2,
  APIC_ICR_DEST_LOGICAL,
  APIC_ICR_LEVEL_ASSERT,
  APIC_ID,
  APIC_IRR,
  APIC_ISR,
  APIC_LDR,
  APIC_LVR,
  APIC_LVT0,
  APIC_LVT1,
  APIC_LVT_LEVEL_TRIGGER,
  APIC_LVT_MASKED,
  APIC_LVT_REMOTE_IRR,
  APIC_LVTERR,
  APIC_LVTPC,
  APIC_LVTT,
  APIC_LVTTHMR,
  APIC_PROCPRI,
  APIC_RRR,
  APIC_SELF_IPI,
  APIC_SPIV,
  APIC_SPIV_ENABLE,
  APIC_TASKPRI,
  APIC_TDCR,
  APIC_TIMER_PERIODIC,
  APIC_TIMER_TSC_DEADLINE,
  APIC_TMCCT,
  APIC_TMICT,
  APIC_TMR,
  APIC_VERSION,
  APICBASE_BSP,
  APICBASE_ENABLE,
  APICBASE_EXTD,
  clearBit,
  highestBit,
  type LapicState,
  LVT_ERROR,
  LVT_LINT0,
  LVT_LINT1,
  LVT_NB,
  LVT_TIMER,
  LVT_WRITABLE,
  MIN_PERIODIC_NS,
  MSR_IA32_APICBASE,
  MSR_IA32_TSC_DEADLINE,
  MSR_X2APIC_BASE,
  setBit,
  testBit,
  validateLapicState,
} from "./lapic_regs.ts";

// The constants and the bus keep their old import path.
export * from "./lapic_regs.ts";
export { ApicBus, type ApicMessage } from "./apic_bus.ts";

/** Constructor options of {@link Lapic}. */
export interface LapicOptions {
  /** Initial APIC ID (= CPU index); ID 0 is the BSP. */
  id: number;
  clock: Clock;
  /** Guest TSC frequency in kHz: TSC = clock.now() × tscKhz / 1e6 (as AccelBoard.tscKhz). */
  tscKhz: number;
  bus: ApicBus;
  log: GuestLog;
}

/**
 * One local APIC (typename "apic"), implementing LocalApicPort for the software CPU.
 *
 * Wiring: the board passes the shared `ApicBus`; the PIC's INT output drives `setLint0(level)` of LAPIC 0 and
 * `setExtIntAck(() => pic.intAck())` gives every LAPIC the INTA cycle. The CPU sets `onWake` to be woken
 * from HLT when an interrupt, NMI, INIT or SIPI arrives (called synchronously, possibly from a timer callback
 * or another vCPU's ICR write; it must only flag the CPU, never run it).
 *
 * @example
 * ```ts ignore
 * const lapic = new Lapic({ id: 0, clock, tscKhz: 1_000_000, bus, log });
 * lapic.onWake = () => cpu.wake();
 * if (cpu.if && lapic.hasInterrupt()) cpu.interrupt(lapic.acknowledge());
 * ```
 */
export class Lapic implements LocalApicPort {
  /** QEMU type name. */
  static readonly typeName = "apic";
  readonly typeName = Lapic.typeName;
  /** Called when something becomes pending (interrupt, NMI, INIT/SIPI). Set by the CPU. */
  onWake: (() => void) | null = null;

  readonly #initialId: number;
  readonly #clock: Clock;
  readonly #tscKhz: number;
  readonly #bus: ApicBus;
  readonly #log: GuestLog;
  readonly #timer: Timer;
  #extIntAck: (() => number) | null = null;

  #apicBase = 0;
  #id = 0;
  #tpr = 0;
  #ldr = 0;
  #dfr = 0xffffffff;
  #svr = 0xff;
  readonly #isr = new Uint32Array(8);
  readonly #tmr = new Uint32Array(8);
  readonly #irr = new Uint32Array(8);
  #esr = 0;
  #esrPending = 0;
  #icrLo = 0;
  #icrHi = 0;
  readonly #lvt = new Uint32Array(LVT_NB);
  #initialCount = 0;
  #divideConf = 0;
  #timerStartNs = 0;
  #tscDeadline = 0n;
  #nmiPending = false;
  #initPending = false;
  #sipiVector = -1;
  #lint0Level = false;
  #lint1Level = false;

  constructor(opts: LapicOptions) {
    this.#initialId = opts.id >>> 0;
    this.#clock = opts.clock;
    this.#tscKhz = opts.tscKhz;
    this.#bus = opts.bus;
    this.#log = opts.log;
    this.#timer = opts.clock.timer(() => this.#timerExpired());
    opts.bus.attach(this);
    this.reset();
  }

  /** Device id for logs ("apic0"…). */
  get id(): string {
    return `apic${this.#initialId}`;
  }

  /** Current APIC ID (xAPIC: 8 bits; x2APIC: 32 bits). */
  get apicId(): number {
    return this.#id;
  }

  /** MMIO base of the xAPIC page, or -1 while the APIC is disabled or in x2APIC mode (no MMIO page then). */
  get baseAddress(): number {
    if (!(this.#apicBase & APICBASE_ENABLE) || (this.#apicBase & APICBASE_EXTD)) return -1;
    return (this.#apicBase & 0xfffff000) >>> 0;
  }

  /** True in x2APIC mode (APIC_BASE bit 10). */
  get x2apic(): boolean {
    return (this.#apicBase & APICBASE_EXTD) !== 0;
  }

  /** PIC INTA callback used for ExtINT delivery. */
  setExtIntAck(fn: (() => number) | null): void {
    this.#extIntAck = fn;
  }

  /** LINT0 input (the PIC's INT output). */
  setLint0(level: boolean): void {
    const was = this.#lint0Level;
    this.#lint0Level = level;
    const lvt = this.#lvt[LVT_LINT0];
    if (level && !(lvt & APIC_LVT_MASKED)) {
      const dm = (lvt >>> 8) & 7;
      if (dm === APIC_DM_NMI && !was) this.#raiseNmi();
      else if (dm === APIC_DM_FIXED && (!was || (lvt & APIC_LVT_LEVEL_TRIGGER))) {
        this.receive(APIC_DM_FIXED, lvt & 0xff, false);
      }
    }
    if (level && this.#acceptsPic()) this.#wake();
  }

  /** LINT1 input (NMI pin). */
  setLint1(level: boolean): void {
    const was = this.#lint1Level;
    this.#lint1Level = level;
    const lvt = this.#lvt[LVT_LINT1];
    if (level && !was && !(lvt & APIC_LVT_MASKED)) {
      const dm = (lvt >>> 8) & 7;
      if (dm === APIC_DM_NMI) this.#raiseNmi();
      else if (dm === APIC_DM_FIXED) this.receive(APIC_DM_FIXED, lvt & 0xff, false);
    }
  }

  // ---- LocalApicPort ----

  hasInterrupt(): boolean {
    if ((this.#svr & APIC_SPIV_ENABLE) && (this.#apicBase & APICBASE_ENABLE)) {
      const irrv = highestBit(this.#irr);
      if (irrv >= 0 && (irrv & 0xf0) > (this.#ppr() & 0xf0)) return true;
    }
    return this.#lint0Level && this.#acceptsPic();
  }

  acknowledge(): number {
    if ((this.#svr & APIC_SPIV_ENABLE) && (this.#apicBase & APICBASE_ENABLE)) {
      const irrv = highestBit(this.#irr);
      if (irrv >= 0) {
        // SDM 11.8.3: a vector masked by PPR when the CPU acknowledges yields the spurious vector.
        if ((irrv & 0xf0) <= (this.#ppr() & 0xf0)) return this.#svr & 0xff;
        clearBit(this.#irr, irrv);
        setBit(this.#isr, irrv);
        return irrv;
      }
    }
    if (this.#lint0Level && this.#acceptsPic() && this.#extIntAck) return this.#extIntAck() & 0xff;
    return -1;
  }

  takeNmi(): boolean {
    const p = this.#nmiPending;
    this.#nmiPending = false;
    return p;
  }

  takeStartup(): number {
    if (this.#initPending) {
      this.#initPending = false;
      return -2;
    }
    const v = this.#sipiVector;
    this.#sipiVector = -1;
    return v;
  }

  mmioRead(offset: number): number {
    if (!(this.#apicBase & APICBASE_ENABLE) || this.x2apic) return 0xffffffff;
    const reg = offset & 0xff0;
    switch (reg) {
      case APIC_ID:
        return (this.#id << 24) >>> 0;
      case APIC_DFR:
        return this.#dfr;
      case APIC_ARBPRI:
        return this.arbitrationPriority();
      case APIC_ICR2:
        return this.#icrHi;
      case APIC_SELF_IPI:
      case APIC_EOI:
        return 0;
    }
    const v = this.#readCommon(reg);
    if (v === undefined) {
      this.#error(APIC_ESR_ILLEGAL_REGISTER);
      return 0;
    }
    return v;
  }

  mmioWrite(offset: number, value: number): void {
    if (!(this.#apicBase & APICBASE_ENABLE) || this.x2apic) return;
    value >>>= 0;
    const reg = offset & 0xff0;
    switch (reg) {
      case APIC_ID:
        this.#id = value >>> 24;
        return;
      case APIC_LDR:
        this.#ldr = (value & 0xff000000) >>> 0;
        return;
      case APIC_DFR:
        this.#dfr = (value | 0x0fffffff) >>> 0;
        return;
      case APIC_ICR2:
        this.#icrHi = (value & 0xff000000) >>> 0;
        return;
      case APIC_ICR:
        this.#icrLo = value & 0xccfff; // delivery status (bit 12) reads 0: delivery is instant
        this.#sendIpi(this.#icrHi >>> 24, false);
        return;
      case APIC_SELF_IPI:
        return; // x2APIC only
    }
    if (!this.#writeCommon(reg, value)) this.#error(APIC_ESR_ILLEGAL_REGISTER);
  }

  readMsr(msr: number): bigint | undefined {
    if (msr === MSR_IA32_APICBASE) return BigInt(this.#apicBase >>> 0);
    if (msr === MSR_IA32_TSC_DEADLINE) {
      return this.#timerMode() === APIC_TIMER_TSC_DEADLINE ? this.#tscDeadline : 0n;
    }
    if (msr < MSR_X2APIC_BASE || msr > 0x8ff || !this.x2apic) return undefined;
    const reg = (msr - MSR_X2APIC_BASE) << 4;
    switch (reg) {
      case APIC_ID:
        return BigInt(this.#id >>> 0);
      case APIC_ICR:
        return (BigInt(this.#icrHi >>> 0) << 32n) | BigInt(this.#icrLo >>> 0);
      case APIC_DFR:
      case APIC_ARBPRI:
      case APIC_ICR2:
      case APIC_EOI:
      case APIC_SELF_IPI:
      case APIC_RRR:
        return undefined;
    }
    const v = this.#readCommon(reg);
    return v === undefined ? undefined : BigInt(v >>> 0);
  }

  writeMsr(msr: number, value: bigint): boolean {
    if (msr === MSR_IA32_APICBASE) return this.#writeApicBase(value);
    if (msr === MSR_IA32_TSC_DEADLINE) {
      this.#writeTscDeadline(BigInt.asUintN(64, value));
      return true;
    }
    if (msr < MSR_X2APIC_BASE || msr > 0x8ff || !this.x2apic) return false;
    const reg = (msr - MSR_X2APIC_BASE) << 4;
    const lo = Number(value & 0xffffffffn);
    const hi = Number((value >> 32n) & 0xffffffffn);
    switch (reg) {
      case APIC_ICR:
        this.#icrHi = hi;
        this.#icrLo = lo & 0xccfff;
        this.#sendIpi(hi, true);
        return true;
      case APIC_SELF_IPI:
        if (hi !== 0 || lo > 0xff) return false;
        this.#bus.deliver({
          dest: 0,
          logical: false,
          shorthand: 1,
          deliveryMode: APIC_DM_FIXED,
          vector: lo,
          level: false,
          source: this,
          x2: true,
        });
        return true;
      case APIC_EOI:
        if (value !== 0n) return false;
        this.#eoi();
        return true;
      case APIC_ID:
      case APIC_LDR:
      case APIC_DFR:
      case APIC_ARBPRI:
      case APIC_ICR2:
      case APIC_RRR:
        return false;
    }
    if (hi !== 0) return false;
    return this.#writeCommon(reg, lo);
  }

  reset(): void {
    this.#timer.cancel();
    this.#apicBase = (APIC_DEFAULT_BASE | APICBASE_ENABLE | (this.#initialId === 0 ? APICBASE_BSP : 0)) >>> 0;
    this.#id = this.#initialId;
    this.#initReset();
    // QEMU apic_reset_common: the BIOS would program LINT0 of the BSP as ExtINT so the PIC reaches the CPU.
    if (this.#initialId === 0) this.#lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
    this.#nmiPending = false;
    this.#initPending = false;
    this.#sipiVector = -1;
  }

  // ---- bus-facing ----

  /** True if a message for `dest` (logical or physical; x2APIC format if `x2`) addresses this LAPIC. */
  matchesDestination(dest: number, logical: boolean, x2: boolean): boolean {
    dest >>>= 0;
    if (this.x2apic) {
      if (x2 ? dest === 0xffffffff : dest === 0xff) return true;
      if (!logical) return dest === this.#id;
      const ldr = this.#x2Ldr();
      if (!x2) return false;
      return (dest >>> 16) === (ldr >>> 16) && (dest & ldr & 0xffff) !== 0;
    }
    if (dest === 0xff) return true;
    if (!logical) return dest === (this.#id & 0xff);
    const ldr = this.#ldr >>> 24;
    if ((this.#dfr >>> 28) === 0xf) return (dest & ldr) !== 0; // flat model
    // Cluster model: high nibble is the cluster, low nibble a bitmap.
    return (dest >>> 4) === (ldr >>> 4) && (dest & ldr & 0xf) !== 0;
  }

  /** Priority used for lowest-priority arbitration (APR, SDM 11.6.2.4). */
  arbitrationPriority(): number {
    const isrv = highestBit(this.#isr);
    const irrv = highestBit(this.#irr);
    const tpr = this.#tpr;
    const isrc = isrv < 0 ? 0 : isrv & 0xf0;
    const irrc = irrv < 0 ? 0 : irrv & 0xf0;
    if ((tpr & 0xf0) >= isrc && (tpr & 0xf0) >= irrc) return tpr;
    return Math.max(isrc, irrc);
  }

  /** Accept one interrupt message (delivery mode, vector, level-triggered). */
  receive(deliveryMode: number, vector: number, level: boolean): void {
    vector &= 0xff;
    switch (deliveryMode) {
      case APIC_DM_FIXED:
      case APIC_DM_LOWEST:
        if (vector < 16) {
          this.#error(APIC_ESR_RECV_ILLEGAL_VECTOR);
          return;
        }
        setBit(this.#irr, vector);
        if (level) setBit(this.#tmr, vector);
        else clearBit(this.#tmr, vector);
        this.#wake();
        return;
      case APIC_DM_NMI:
        this.#raiseNmi();
        return;
      case APIC_DM_INIT:
        this.#initReset();
        this.#initPending = true;
        this.#sipiVector = -1;
        this.#wake();
        return;
      case APIC_DM_STARTUP:
        this.#sipiVector = vector;
        this.#wake();
        return;
      case APIC_DM_EXTINT:
        // ExtINT message (IOAPIC pin in ExtINT mode): run the PIC INTA cycle now, as QEMU ioapic_entry_parse does.
        if (this.#extIntAck) {
          const v = this.#extIntAck() & 0xff;
          setBit(this.#irr, v);
          clearBit(this.#tmr, v);
          this.#wake();
        }
        return;
      default:
        this.#log.unimp(this.id, `delivery mode ${deliveryMode} ignored`);
    }
  }

  // ---- state ----

  saveState(): LapicState {
    return {
      version: 1,
      apicBase: this.#apicBase,
      id: this.#id,
      tpr: this.#tpr,
      ldr: this.#ldr,
      dfr: this.#dfr,
      svr: this.#svr,
      isr: Array.from(this.#isr),
      tmr: Array.from(this.#tmr),
      irr: Array.from(this.#irr),
      esr: this.#esr,
      esrPending: this.#esrPending,
      icrLo: this.#icrLo,
      icrHi: this.#icrHi,
      lvt: Array.from(this.#lvt),
      initialCount: this.#initialCount,
      divideConf: this.#divideConf,
      timerStartNs: this.#timerStartNs,
      tscDeadline: this.#tscDeadline.toString(),
      nmiPending: this.#nmiPending,
      initPending: this.#initPending,
      sipiVector: this.#sipiVector,
      lint0Level: this.#lint0Level,
      lint1Level: this.#lint1Level,
    };
  }

  loadState(state: DeviceState): void {
    const v = validateLapicState(state);
    this.#apicBase = v.apicBase;
    this.#id = v.id;
    this.#tpr = v.tpr;
    this.#ldr = v.ldr;
    this.#dfr = v.dfr;
    this.#svr = v.svr;
    this.#isr.set(v.isr);
    this.#tmr.set(v.tmr);
    this.#irr.set(v.irr);
    this.#esr = v.esr;
    this.#esrPending = v.esrPending;
    this.#icrLo = v.icrLo;
    this.#icrHi = v.icrHi;
    this.#lvt.set(v.lvt);
    this.#initialCount = v.initialCount;
    this.#divideConf = v.divideConf;
    this.#timerStartNs = v.timerStartNs;
    this.#tscDeadline = BigInt.asUintN(64, BigInt(v.tscDeadline));
    this.#nmiPending = v.nmiPending;
    this.#initPending = v.initPending;
    this.#sipiVector = v.sipiVector;
    this.#lint0Level = v.lint0Level;
    this.#lint1Level = v.lint1Level;
    this.#rearmTimer();
  }

  // ---- internals ----

  /** SDM 11.4.7.3 / QEMU apic_init_reset: everything but APIC_BASE and the ID. */
  #initReset(): void {
    this.#timer.cancel();
    this.#tpr = 0;
    this.#ldr = this.x2apic ? this.#x2Ldr() : 0;
    this.#dfr = 0xffffffff;
    this.#svr = 0xff;
    this.#isr.fill(0);
    this.#tmr.fill(0);
    this.#irr.fill(0);
    this.#esr = 0;
    this.#esrPending = 0;
    this.#icrLo = 0;
    this.#icrHi = 0;
    this.#lvt.fill(APIC_LVT_MASKED);
    this.#initialCount = 0;
    this.#divideConf = 0;
    this.#timerStartNs = this.#clock.now();
    this.#tscDeadline = 0n;
  }

  #x2Ldr(): number {
    return (((this.#id >>> 4) << 16) | (1 << (this.#id & 0xf))) >>> 0;
  }

  #wake(): void {
    this.onWake?.();
  }

  #raiseNmi(): void {
    this.#nmiPending = true;
    this.#wake();
  }

  /** QEMU apic_accept_pic_intr: the PIC reaches the CPU when the APIC is hardware-disabled or LINT0 is unmasked ExtINT. */
  #acceptsPic(): boolean {
    if (!(this.#apicBase & APICBASE_ENABLE)) return true;
    const lvt = this.#lvt[LVT_LINT0];
    return !(lvt & APIC_LVT_MASKED) && ((lvt >>> 8) & 7) === APIC_DM_EXTINT;
  }

  #ppr(): number {
    const isrv = highestBit(this.#isr);
    const isrc = isrv < 0 ? 0 : isrv & 0xf0;
    return (this.#tpr & 0xf0) >= isrc ? this.#tpr : isrc;
  }

  #eoi(): void {
    const v = highestBit(this.#isr);
    if (v < 0) return;
    clearBit(this.#isr, v);
    if (testBit(this.#tmr, v)) this.#bus.broadcastEoi(v);
    if (this.hasInterrupt()) this.#wake();
  }

  #error(bits: number): void {
    this.#esrPending |= bits;
    const lvt = this.#lvt[LVT_ERROR];
    if (!(lvt & APIC_LVT_MASKED) && (lvt & 0xff) >= 16) this.receive(APIC_DM_FIXED, lvt & 0xff, false);
  }

  /** Registers shared by xAPIC MMIO and x2APIC MSRs (reads). */
  #readCommon(reg: number): number | undefined {
    switch (reg) {
      case APIC_LVR:
        return APIC_VERSION;
      case APIC_TASKPRI:
        return this.#tpr;
      case APIC_PROCPRI:
        return this.#ppr();
      case APIC_LDR:
        return this.x2apic ? this.#x2Ldr() : this.#ldr;
      case APIC_SPIV:
        return this.#svr;
      case APIC_ESR:
        return this.#esr;
      case APIC_ICR:
        return this.#icrLo;
      case APIC_LVTT:
      case APIC_LVTTHMR:
      case APIC_LVTPC:
      case APIC_LVT0:
      case APIC_LVT1:
      case APIC_LVTERR:
        return this.#lvt[(reg - APIC_LVTT) >> 4];
      case APIC_TMICT:
        return this.#initialCount;
      case APIC_TMCCT:
        return this.#currentCount();
      case APIC_TDCR:
        return this.#divideConf;
    }
    if (reg >= APIC_ISR && reg < APIC_ISR + 0x80) return this.#isr[(reg - APIC_ISR) >> 4];
    if (reg >= APIC_TMR && reg < APIC_TMR + 0x80) return this.#tmr[(reg - APIC_TMR) >> 4];
    if (reg >= APIC_IRR && reg < APIC_IRR + 0x80) return this.#irr[(reg - APIC_IRR) >> 4];
    return undefined;
  }

  /** Registers shared by xAPIC MMIO and x2APIC MSRs (writes); false for an invalid register. */
  #writeCommon(reg: number, value: number): boolean {
    switch (reg) {
      case APIC_TASKPRI:
        this.#tpr = value & 0xff;
        if (this.hasInterrupt()) this.#wake();
        return true;
      case APIC_EOI:
        this.#eoi();
        return true;
      case APIC_SPIV:
        this.#svr = value & 0x1ff;
        if (!(this.#svr & APIC_SPIV_ENABLE)) {
          // SDM 11.4.7.2: software disable masks every LVT entry.
          for (let i = 0; i < LVT_NB; i++) this.#lvt[i] |= APIC_LVT_MASKED;
        } else if (this.hasInterrupt()) {
          this.#wake();
        }
        return true;
      case APIC_ESR:
        // A write latches the errors collected since the previous write (SDM 11.5.3).
        this.#esr = this.#esrPending;
        this.#esrPending = 0;
        return true;
      case APIC_LVTT:
      case APIC_LVTTHMR:
      case APIC_LVTPC:
      case APIC_LVT0:
      case APIC_LVT1:
      case APIC_LVTERR: {
        const n = (reg - APIC_LVTT) >> 4;
        const old = this.#lvt[n];
        let v = (value & LVT_WRITABLE[n]) | (old & APIC_LVT_REMOTE_IRR);
        if (!(this.#svr & APIC_SPIV_ENABLE)) v |= APIC_LVT_MASKED;
        this.#lvt[n] = v >>> 0;
        if (n === LVT_TIMER && ((old >>> 17) & 3) !== ((v >>> 17) & 3)) {
          const wasDeadline = ((old >>> 17) & 3) === APIC_TIMER_TSC_DEADLINE;
          if (wasDeadline !== (((v >>> 17) & 3) === APIC_TIMER_TSC_DEADLINE)) {
            // Entering or leaving TSC-deadline mode disarms the timer (SDM 11.5.4.1; KVM does the same).
            this.#timer.cancel();
            this.#initialCount = 0;
            this.#tscDeadline = 0n;
          } else {
            this.#rearmTimer(); // one-shot <-> periodic keeps counting
          }
        }
        if (n === LVT_LINT0 && this.#lint0Level && this.#acceptsPic()) this.#wake();
        return true;
      }
      case APIC_TMICT:
        if (this.#timerMode() === APIC_TIMER_TSC_DEADLINE) return true;
        this.#initialCount = value >>> 0;
        this.#timerStartNs = this.#clock.now();
        this.#rearmTimer();
        return true;
      case APIC_TDCR: {
        // Keep the count consistent: restart from the current count with the new divisor.
        const cur = this.#currentCount();
        this.#divideConf = value & 0xb;
        if (this.#initialCount !== 0 && cur !== 0 && this.#timerMode() !== APIC_TIMER_TSC_DEADLINE) {
          const elapsedTicks = this.#initialCount - cur;
          this.#timerStartNs = this.#clock.now() - elapsedTicks * this.#divisor();
          this.#rearmTimer();
        }
        return true;
      }
      case APIC_TMCCT:
      case APIC_LVR:
      case APIC_PROCPRI:
        return true; // read-only: writes ignored
    }
    if (reg >= APIC_ISR && reg < APIC_IRR + 0x80) return true; // read-only
    return false;
  }

  #writeApicBase(value: bigint): boolean {
    if (value >> 32n) return false; // MAXPHYADDR-reserved bits (we advertise 32-bit base only)
    const v = Number(value) >>> 0;
    if (v & 0x2ff) return false; // reserved bits 0-7 and 9
    const oldMode = this.#apicBase & (APICBASE_ENABLE | APICBASE_EXTD);
    const newMode = v & (APICBASE_ENABLE | APICBASE_EXTD);
    // SDM 10.12.5: invalid state (EXTD without EN) and x2APIC → xAPIC directly are #GP.
    if (newMode === APICBASE_EXTD) return false;
    if (oldMode === (APICBASE_ENABLE | APICBASE_EXTD) && newMode === APICBASE_ENABLE) return false;
    if (oldMode === 0 && newMode === (APICBASE_ENABLE | APICBASE_EXTD)) return false;
    const bsp = this.#apicBase & APICBASE_BSP;
    this.#apicBase = ((v & ~APICBASE_BSP) | bsp) >>> 0;
    if (newMode === 0 && oldMode !== 0) {
      // Disabling the APIC resets it (ID kept); it comes back in xAPIC mode.
      this.#initReset();
      this.#id = this.#initialId;
    } else if (newMode !== oldMode && newMode === (APICBASE_ENABLE | APICBASE_EXTD)) {
      this.#ldr = this.#x2Ldr();
    }
    return true;
  }

  #timerMode(): number {
    return (this.#lvt[LVT_TIMER] >>> 17) & 3;
  }

  /** Divide configuration → divisor (1..128); at 1 GHz bus clock one tick = divisor ns. */
  #divisor(): number {
    const d = (this.#divideConf & 3) | ((this.#divideConf >>> 1) & 4);
    return 1 << ((d + 1) & 7);
  }

  #currentCount(): number {
    const mode = this.#timerMode();
    if (this.#initialCount === 0 || mode === APIC_TIMER_TSC_DEADLINE) return 0;
    const ticks = Math.floor((this.#clock.now() - this.#timerStartNs) / this.#divisor());
    if (mode === APIC_TIMER_PERIODIC) return this.#initialCount - (ticks % this.#initialCount);
    return ticks >= this.#initialCount ? 0 : this.#initialCount - ticks;
  }

  #rearmTimer(): void {
    const mode = this.#timerMode();
    if (mode === APIC_TIMER_TSC_DEADLINE) {
      if (this.#tscDeadline === 0n) this.#timer.cancel();
      else this.#timer.arm(this.#tscToNs(this.#tscDeadline));
      return;
    }
    if (this.#initialCount === 0) {
      this.#timer.cancel();
      return;
    }
    const period = this.#initialCount * this.#divisor();
    const now = this.#clock.now();
    if (mode === APIC_TIMER_PERIODIC) {
      if (period < MIN_PERIODIC_NS) {
        // KVM's min_timer_period_us: a tiny period would starve the run loop. Fire at most every 200 µs.
        this.#timer.arm(now + MIN_PERIODIC_NS);
        return;
      }
      const n = Math.floor((now - this.#timerStartNs) / period) + 1;
      this.#timer.arm(this.#timerStartNs + n * period);
      return;
    }
    const deadline = this.#timerStartNs + period;
    if (deadline > now) this.#timer.arm(deadline);
    else this.#timer.cancel();
  }

  #timerExpired(): void {
    const mode = this.#timerMode();
    if (mode === APIC_TIMER_TSC_DEADLINE) {
      if (this.#tscDeadline === 0n) return;
      this.#tscDeadline = 0n;
    } else if (this.#initialCount === 0) {
      return;
    }
    const lvt = this.#lvt[LVT_TIMER];
    if (!(lvt & APIC_LVT_MASKED)) this.receive(APIC_DM_FIXED, lvt & 0xff, false);
    if (mode === APIC_TIMER_PERIODIC) this.#rearmTimer();
  }

  #writeTscDeadline(tsc: bigint): void {
    // SDM 11.5.4.1: writes are ignored outside TSC-deadline mode.
    if (this.#timerMode() !== APIC_TIMER_TSC_DEADLINE) return;
    this.#tscDeadline = tsc;
    if (tsc === 0n) {
      this.#timer.cancel();
      return;
    }
    if (this.#tscToNs(tsc) <= this.#clock.now()) {
      // Already passed: the interrupt is raised at once.
      this.#timer.cancel();
      this.#timerExpired();
      return;
    }
    this.#rearmTimer();
  }

  /** Virtual ns at which the TSC reaches `tsc` (TSC = ns × tscKhz / 1e6), rounded up. */
  #tscToNs(tsc: bigint): number {
    const khz = BigInt(this.#tscKhz);
    const ns = (tsc * 1_000_000n + khz - 1n) / khz;
    return ns > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(ns);
  }

  #sendIpi(dest: number, x2: boolean): void {
    const lo = this.#icrLo;
    const vector = lo & 0xff;
    const dm = (lo >>> 8) & 7;
    const logical = (lo & APIC_ICR_DEST_LOGICAL) !== 0;
    const assert = (lo & APIC_ICR_LEVEL_ASSERT) !== 0;
    const shorthand = (lo >>> 18) & 3;
    switch (dm) {
      case APIC_DM_FIXED:
      case APIC_DM_LOWEST:
        if (vector < 16) {
          this.#error(APIC_ESR_SEND_ILLEGAL_VECTOR);
          return;
        }
        break;
      case APIC_DM_INIT:
        // INIT level de-assert: a no-op on modern CPUs (QEMU only resyncs arbitration IDs).
        if (!assert && (lo & APIC_LVT_LEVEL_TRIGGER)) return;
        break;
      case APIC_DM_SMI:
        this.#log.unimp(this.id, "SMI IPI ignored");
        return;
      case APIC_DM_EXTINT:
      case 3:
        this.#log.guestError(this.id, `IPI with reserved delivery mode ${dm}`);
        return;
    }
    this.#bus.deliver({
      dest: x2 ? dest >>> 0 : dest & 0xff,
      logical,
      shorthand,
      deliveryMode: dm,
      vector,
      level: false,
      source: this,
      x2,
    });
  }
}
