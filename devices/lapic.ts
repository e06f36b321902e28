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
import type { Clock, DeviceState, GuestLog, MsiSink, Timer } from "../core/types.ts";
import { StateError } from "../core/types.ts";

/** xAPIC register offsets (MMIO page; x2APIC MSR = 0x800 + offset / 16). */
export const APIC_ID = 0x020;
export const APIC_LVR = 0x030;
export const APIC_TASKPRI = 0x080;
export const APIC_ARBPRI = 0x090;
export const APIC_PROCPRI = 0x0a0;
export const APIC_EOI = 0x0b0;
export const APIC_RRR = 0x0c0;
export const APIC_LDR = 0x0d0;
export const APIC_DFR = 0x0e0;
export const APIC_SPIV = 0x0f0;
export const APIC_ISR = 0x100;
export const APIC_TMR = 0x180;
export const APIC_IRR = 0x200;
export const APIC_ESR = 0x280;
export const APIC_ICR = 0x300;
export const APIC_ICR2 = 0x310;
export const APIC_LVTT = 0x320;
export const APIC_LVTTHMR = 0x330;
export const APIC_LVTPC = 0x340;
export const APIC_LVT0 = 0x350;
export const APIC_LVT1 = 0x360;
export const APIC_LVTERR = 0x370;
export const APIC_TMICT = 0x380;
export const APIC_TMCCT = 0x390;
export const APIC_TDCR = 0x3e0;
export const APIC_SELF_IPI = 0x3f0;

/** MSRs. */
export const MSR_IA32_APICBASE = 0x1b;
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
export const MSR_X2APIC_BASE = 0x800;

/** IA32_APIC_BASE bits. */
export const APICBASE_BSP = 0x100;
export const APICBASE_EXTD = 0x400;
export const APICBASE_ENABLE = 0x800;
export const APIC_DEFAULT_BASE = 0xfee00000;

/** Version register: version 0x14, max LVT entry 5. */
export const APIC_VERSION = 0x50014;

export const APIC_SPIV_ENABLE = 0x100;
export const APIC_LVT_MASKED = 1 << 16;
export const APIC_LVT_LEVEL_TRIGGER = 1 << 15;
export const APIC_LVT_REMOTE_IRR = 1 << 14;
export const APIC_ICR_LEVEL_ASSERT = 1 << 14;
export const APIC_ICR_DEST_LOGICAL = 1 << 11;

/** Delivery modes (ICR, LVT, MSI data bits 10:8). */
export const APIC_DM_FIXED = 0;
export const APIC_DM_LOWEST = 1;
export const APIC_DM_SMI = 2;
export const APIC_DM_NMI = 4;
export const APIC_DM_INIT = 5;
export const APIC_DM_STARTUP = 6;
export const APIC_DM_EXTINT = 7;

/** LVT timer modes (bits 18:17). */
export const APIC_TIMER_ONESHOT = 0;
export const APIC_TIMER_PERIODIC = 1;
export const APIC_TIMER_TSC_DEADLINE = 2;

/** ESR bits. */
export const APIC_ESR_SEND_ILLEGAL_VECTOR = 0x20;
export const APIC_ESR_RECV_ILLEGAL_VECTOR = 0x40;
export const APIC_ESR_ILLEGAL_REGISTER = 0x80;

const LVT_TIMER = 0;
const LVT_LINT0 = 3;
const LVT_LINT1 = 4;
const LVT_ERROR = 5;
const LVT_NB = 6;
/** Shortest periodic timer period honoured (KVM's min_timer_period_us = 200). */
const MIN_PERIODIC_NS = 200_000;
/** Writable bits per LVT entry (SDM fig. 11-8); delivery status and remote IRR are read-only. */
const LVT_WRITABLE = [0x700ff, 0x107ff, 0x107ff, 0x1a7ff, 0x1a7ff, 0x100ff];

/** Saved LAPIC state (version 1). */
export interface LapicState extends DeviceState {
  version: 1;
  apicBase: number;
  id: number;
  tpr: number;
  ldr: number;
  dfr: number;
  svr: number;
  isr: number[];
  tmr: number[];
  irr: number[];
  esr: number;
  esrPending: number;
  icrLo: number;
  icrHi: number;
  lvt: number[];
  initialCount: number;
  divideConf: number;
  timerStartNs: number;
  tscDeadline: string;
  nmiPending: boolean;
  initPending: boolean;
  sipiVector: number;
  lint0Level: boolean;
  lint1Level: boolean;
}

/**
 * The APIC bus: joins every LAPIC for IPIs and receives MSI messages (IOAPIC output, the apic-msi window).
 * The board creates one, passes it to each `Lapic`, and installs the IOAPIC EOI listener.
 *
 * @example
 * ```ts ignore
 * const bus = new ApicBus();
 * const lapics = [0, 1].map((id) => new Lapic({ id, clock, tscKhz, bus, log }));
 * bus.setEoiListener((vector) => ioapic.eoi(vector));
 * bus.sendMsi(0xfee01000, 0x41);   // fixed vector 0x41 to APIC ID 1
 * ```
 */
export class ApicBus implements MsiSink {
  readonly #lapics: Lapic[] = [];
  #eoiListener: ((vector: number) => void) | null = null;
  /** Scratch list of matching targets (no per-delivery allocation). */
  readonly #targets: Lapic[] = [];

  /** Called by the Lapic constructor. */
  attach(lapic: Lapic): void {
    this.#lapics.push(lapic);
  }

  /** The LAPICs on the bus, in attach order. */
  get lapics(): readonly Lapic[] {
    return this.#lapics;
  }

  /** Receiver of level-triggered EOIs (the IOAPIC's eoi). */
  setEoiListener(fn: ((vector: number) => void) | null): void {
    this.#eoiListener = fn;
  }

  /** Called by a LAPIC when it EOIs a level-triggered vector. */
  broadcastEoi(vector: number): void {
    this.#eoiListener?.(vector);
  }

  /**
   * Deliver an MSI (QEMU apic_send_msi): dest id = address[19:12], dest mode = address[2],
   * vector = data[7:0], delivery mode = data[10:8], trigger = data[15].
   */
  sendMsi(address: number, data: number): void {
    const dest = (address >>> 12) & 0xff;
    const logical = ((address >>> 2) & 1) === 1;
    const dm = (data >>> 8) & 7;
    const trigger = ((data >>> 15) & 1) === 1;
    this.deliver({
      dest,
      logical,
      shorthand: 0,
      deliveryMode: dm,
      vector: data & 0xff,
      level: trigger,
      source: null,
      x2: false,
    });
  }

  /** Deliver an interrupt message to every matching LAPIC (shared by MSIs and ICR writes). */
  deliver(m: ApicMessage): void {
    const t = this.#targets;
    t.length = 0;
    for (const l of this.#lapics) {
      switch (m.shorthand) {
        case 1:
          if (l === m.source) t.push(l);
          break;
        case 2:
          t.push(l);
          break;
        case 3:
          if (l !== m.source) t.push(l);
          break;
        default:
          if (l.matchesDestination(m.dest, m.logical, m.x2)) t.push(l);
      }
    }
    if (t.length === 0) return;
    if (m.deliveryMode === APIC_DM_LOWEST) {
      // Lowest priority: the target with the lowest TPR-derived priority (first on ties), as QEMU picks one.
      let best = t[0];
      for (const l of t) if (l.arbitrationPriority() < best.arbitrationPriority()) best = l;
      best.receive(APIC_DM_FIXED, m.vector, m.level);
      return;
    }
    for (const l of t) l.receive(m.deliveryMode, m.vector, m.level);
  }
}

/** One interrupt message on the APIC bus. */
export interface ApicMessage {
  /** Destination (8-bit xAPIC, 32-bit x2APIC). */
  dest: number;
  logical: boolean;
  /** 0 none, 1 self, 2 all including self, 3 all excluding self. */
  shorthand: number;
  deliveryMode: number;
  vector: number;
  /** Level-triggered (sets TMR; EOI is broadcast). */
  level: boolean;
  /** Sending LAPIC (shorthands), or null for MSIs. */
  source: Lapic | null;
  /** Destination is in x2APIC format (32-bit, broadcast 0xffffffff). */
  x2: boolean;
}

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
    const s = state as Partial<LapicState>;
    if (s.version !== 1) {
      throw new StateError(`Invalid apic state: unsupported version "${String(s.version)}"`);
    }
    const u32 = (v: unknown, name: string): number => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new StateError(`Invalid apic state: field "${name}" is not a 32-bit unsigned integer`);
      }
      return v;
    };
    const arr = (v: unknown, n: number, name: string): number[] => {
      if (!Array.isArray(v) || v.length !== n) {
        throw new StateError(`Invalid apic state: "${name}" must have ${n} entries`);
      }
      return v.map((x) => u32(x, name));
    };
    const bool = (v: unknown, name: string): boolean => {
      if (typeof v !== "boolean") {
        throw new StateError(`Invalid apic state: field "${name}" is not a boolean`);
      }
      return v;
    };
    if (typeof s.tscDeadline !== "string" || !/^\d+$/.test(s.tscDeadline)) {
      throw new StateError(`Invalid apic state: field "tscDeadline" is not a decimal string`);
    }
    if (typeof s.timerStartNs !== "number" || !Number.isFinite(s.timerStartNs)) {
      throw new StateError(`Invalid apic state: field "timerStartNs" is not a number`);
    }
    const sipi = s.sipiVector;
    if (typeof sipi !== "number" || !Number.isInteger(sipi) || sipi < -1 || sipi > 0xff) {
      throw new StateError(`Invalid apic state: field "sipiVector" out of range`);
    }
    const v = {
      apicBase: u32(s.apicBase, "apicBase"),
      id: u32(s.id, "id"),
      tpr: u32(s.tpr, "tpr") & 0xff,
      ldr: u32(s.ldr, "ldr"),
      dfr: u32(s.dfr, "dfr"),
      svr: u32(s.svr, "svr") & 0x1ff,
      isr: arr(s.isr, 8, "isr"),
      tmr: arr(s.tmr, 8, "tmr"),
      irr: arr(s.irr, 8, "irr"),
      esr: u32(s.esr, "esr"),
      esrPending: u32(s.esrPending, "esrPending"),
      icrLo: u32(s.icrLo, "icrLo"),
      icrHi: u32(s.icrHi, "icrHi"),
      lvt: arr(s.lvt, LVT_NB, "lvt"),
      initialCount: u32(s.initialCount, "initialCount"),
      divideConf: u32(s.divideConf, "divideConf") & 0xb,
      nmiPending: bool(s.nmiPending, "nmiPending"),
      initPending: bool(s.initPending, "initPending"),
      lint0Level: bool(s.lint0Level, "lint0Level"),
      lint1Level: bool(s.lint1Level, "lint1Level"),
    };
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
    this.#timerStartNs = s.timerStartNs;
    this.#tscDeadline = BigInt.asUintN(64, BigInt(s.tscDeadline));
    this.#nmiPending = v.nmiPending;
    this.#initPending = v.initPending;
    this.#sipiVector = sipi;
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

function highestBit(a: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = a[i];
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

function setBit(a: Uint32Array, v: number): void {
  a[v >>> 5] |= 1 << (v & 31);
}

function clearBit(a: Uint32Array, v: number): void {
  a[v >>> 5] &= ~(1 << (v & 31));
}

function testBit(a: Uint32Array, v: number): boolean {
  return (a[v >>> 5] & (1 << (v & 31))) !== 0;
}
