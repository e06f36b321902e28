/**
 * Two cascaded 8259A PICs ("isa-i8259" master at 0x20, slave at 0xa0 on IRQ2) with the PIIX ELCR
 * edge/level registers, following QEMU 7.2's hw/intc/i8259.c and the Intel 8259A datasheet:
 * ICW1–ICW4, OCW1–OCW3 (IRR/ISR read, poll, special mask), auto-EOI, rotation, specific and non-specific
 * EOI, special fully nested mode, spurious IRQ 7/15.
 * @module
 */
import type { Device, DeviceState, GuestLog, IrqLine, RegionOps } from "../core/types.ts";
import { StateError } from "../core/types.ts";

// Command port (offset 0) bits.
export const ICW1_IC4 = 0x01;
export const ICW1_SNGL = 0x02;
export const ICW1_LTIM = 0x08;
export const ICW1_INIT = 0x10;
export const OCW3_SELECT = 0x08;
export const OCW3_RIS = 0x01;
export const OCW3_RR = 0x02;
export const OCW3_P = 0x04;
export const OCW3_SMM = 0x20;
export const OCW3_ESMM = 0x40;
export const ICW4_AEOI = 0x02;
export const ICW4_SFNM = 0x10;

/** ELCR masks of the PIIX: IRQ 0, 1, 2 (master) and 8, 13 (slave) are always edge. */
export const ELCR_MASK_MASTER = 0xf8;
export const ELCR_MASK_SLAVE = 0xde;

/** Saved state of one 8259A chip (field names follow QEMU's PICCommonState). */
export interface PicChipState {
  lastIrr: number;
  irr: number;
  imr: number;
  isr: number;
  priorityAdd: number;
  irqBase: number;
  readRegSelect: number;
  poll: number;
  specialMask: number;
  initState: number;
  autoEoi: number;
  rotateOnAutoEoi: number;
  specialFullyNestedMode: number;
  init4: number;
  singleMode: number;
  elcr: number;
}

/** Saved state of the PIC pair (version 1). `info pic` renders it with formatInfoPic. */
export interface I8259State extends DeviceState {
  version: 1;
  master: PicChipState;
  slave: PicChipState;
}

/** One 8259A (internal; the pair wires two of them). */
class PicChip {
  lastIrr = 0;
  irr = 0;
  imr = 0;
  isr = 0;
  priorityAdd = 0;
  irqBase = 0;
  readRegSelect = 0;
  poll = 0;
  specialMask = 0;
  initState = 0;
  autoEoi = 0;
  rotateOnAutoEoi = 0;
  specialFullyNestedMode = 0;
  init4 = 0;
  singleMode = 0;
  elcr = 0;
  output = false;

  constructor(
    readonly isMaster: boolean,
    readonly elcrMask: number,
    readonly onOutput: (level: boolean) => void,
    readonly log: GuestLog,
    readonly id: string,
  ) {}

  /** Highest priority (0 = highest) set in mask, relative to the rotation; 8 if none. */
  getPriority(mask: number): number {
    if (mask === 0) return 8;
    let p = 0;
    while ((mask & (1 << ((p + this.priorityAdd) & 7))) === 0) p++;
    return p;
  }

  /** The IRQ this chip wants to signal, or -1. */
  getIrq(): number {
    const p = this.getPriority(this.irr & ~this.imr);
    if (p === 8) return -1;
    // In special mask mode masked ISR bits do not block lower priorities; in special fully nested mode the
    // master ignores the cascade's ISR bit so the slave can nest (datasheet "Special Fully Nested Mode").
    let mask = this.isr;
    if (this.specialMask) mask &= ~this.imr;
    if (this.specialFullyNestedMode && this.isMaster) mask &= ~(1 << 2);
    const cur = this.getPriority(mask);
    return p < cur ? (p + this.priorityAdd) & 7 : -1;
  }

  update(): void {
    const level = this.getIrq() >= 0;
    if (level !== this.output) {
      this.output = level;
      this.onOutput(level);
    }
  }

  setIrq(irq: number, level: boolean): void {
    const mask = 1 << irq;
    if (this.elcr & mask) {
      if (level) {
        this.irr |= mask;
        this.lastIrr |= mask;
      } else {
        this.irr &= ~mask;
        this.lastIrr &= ~mask;
      }
    } else if (level) {
      if ((this.lastIrr & mask) === 0) this.irr |= mask;
      this.lastIrr |= mask;
    } else {
      this.lastIrr &= ~mask;
    }
    this.update();
  }

  intAck(irq: number): void {
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.priorityAdd = (irq + 1) & 7;
    } else {
      this.isr |= 1 << irq;
    }
    // A level-triggered request stays in IRR while its line is high.
    if (!(this.elcr & (1 << irq))) this.irr &= ~(1 << irq);
    this.update();
  }

  resetCommon(): void {
    this.lastIrr = 0;
    this.irr &= this.elcr;
    this.imr = 0;
    this.isr = 0;
    this.priorityAdd = 0;
    this.irqBase = 0;
    this.readRegSelect = 0;
    this.poll = 0;
    this.specialMask = 0;
    this.initState = 0;
    this.autoEoi = 0;
    this.rotateOnAutoEoi = 0;
    this.specialFullyNestedMode = 0;
    this.init4 = 0;
    this.singleMode = 0;
    // ELCR is not reset by ICW1.
  }

  write(offset: number, val: number): void {
    if ((offset & 1) === 0) {
      if (val & ICW1_INIT) {
        this.resetCommon();
        this.update();
        this.initState = 1;
        this.init4 = val & ICW1_IC4;
        this.singleMode = val & ICW1_SNGL;
        if (val & ICW1_LTIM) this.log.unimp(this.id, "i8259: level sensitive irq not supported");
      } else if (val & OCW3_SELECT) {
        if (val & OCW3_P) this.poll = 1;
        if (val & OCW3_RR) this.readRegSelect = val & OCW3_RIS;
        if (val & OCW3_ESMM) this.specialMask = (val >> 5) & 1;
      } else {
        const cmd = val >> 5;
        switch (cmd) {
          case 0: // rotate in auto-EOI mode: clear
          case 4: // rotate in auto-EOI mode: set
            this.rotateOnAutoEoi = cmd >> 2;
            break;
          case 1: // non-specific EOI
          case 5: { // rotate on non-specific EOI
            const p = this.getPriority(this.isr);
            if (p !== 8) {
              const irq = (p + this.priorityAdd) & 7;
              this.isr &= ~(1 << irq);
              if (cmd === 5) this.priorityAdd = (irq + 1) & 7;
              this.update();
            }
            break;
          }
          case 3: // specific EOI
            this.isr &= ~(1 << (val & 7));
            this.update();
            break;
          case 6: // set priority
            this.priorityAdd = (val + 1) & 7;
            this.update();
            break;
          case 7: { // rotate on specific EOI
            const irq = val & 7;
            this.isr &= ~(1 << irq);
            this.priorityAdd = (irq + 1) & 7;
            this.update();
            break;
          }
          default: // 2: no operation
            break;
        }
      }
      return;
    }
    switch (this.initState) {
      case 0: // OCW1
        this.imr = val;
        this.update();
        break;
      case 1: // ICW2
        this.irqBase = val & 0xf8;
        this.initState = this.singleMode ? (this.init4 ? 3 : 0) : 2;
        break;
      case 2: // ICW3 (cascade wiring is fixed on the PC)
        this.initState = this.init4 ? 3 : 0;
        break;
      case 3: // ICW4
        this.specialFullyNestedMode = (val >> 4) & 1;
        this.autoEoi = (val >> 1) & 1;
        this.initState = 0;
        break;
    }
  }

  read(offset: number): number {
    if (this.poll) {
      // Poll command: the read acts as an interrupt acknowledge (datasheet "The Poll Command").
      this.poll = 0;
      const irq = this.getIrq();
      if (irq >= 0) {
        this.intAck(irq);
        return irq | 0x80;
      }
      return 0;
    }
    if ((offset & 1) === 0) return this.readRegSelect ? this.isr : this.irr;
    return this.imr;
  }

  save(): PicChipState {
    return {
      lastIrr: this.lastIrr,
      irr: this.irr,
      imr: this.imr,
      isr: this.isr,
      priorityAdd: this.priorityAdd,
      irqBase: this.irqBase,
      readRegSelect: this.readRegSelect,
      poll: this.poll,
      specialMask: this.specialMask,
      initState: this.initState,
      autoEoi: this.autoEoi,
      rotateOnAutoEoi: this.rotateOnAutoEoi,
      specialFullyNestedMode: this.specialFullyNestedMode,
      init4: this.init4,
      singleMode: this.singleMode,
      elcr: this.elcr,
    };
  }

  static validate(v: unknown, which: string): PicChipState {
    if (v === null || typeof v !== "object") throw new StateError(`Invalid i8259 state: "${which}" missing`);
    const o = v as Record<string, unknown>;
    const get = (name: keyof PicChipState, max: number): number => {
      const x = o[name];
      if (typeof x !== "number" || !Number.isInteger(x) || x < 0 || x > max) {
        throw new StateError(`Invalid i8259 state: "${which}.${name}" must be an integer in 0..${max}`);
      }
      return x;
    };
    return {
      lastIrr: get("lastIrr", 0xff),
      irr: get("irr", 0xff),
      imr: get("imr", 0xff),
      isr: get("isr", 0xff),
      priorityAdd: get("priorityAdd", 7),
      irqBase: get("irqBase", 0xff),
      readRegSelect: get("readRegSelect", 1),
      poll: get("poll", 1),
      specialMask: get("specialMask", 1),
      initState: get("initState", 3),
      autoEoi: get("autoEoi", 1),
      rotateOnAutoEoi: get("rotateOnAutoEoi", 1),
      specialFullyNestedMode: get("specialFullyNestedMode", 1),
      init4: get("init4", 1),
      singleMode: get("singleMode", 0xff),
      elcr: get("elcr", 0xff),
    };
  }

  load(s: PicChipState): void {
    Object.assign(this, s);
    this.elcr &= this.elcrMask;
  }
}

/** Constructor options of I8259Pair. */
export interface I8259PairOptions {
  /** Device id (default "pic"). */
  id?: string;
  /** INT output of the master (to LAPIC LINT0 / the CPU's INTR). */
  output: IrqLine;
  log: GuestLog;
}

/**
 * The PC's master/slave 8259A pair. Inputs: `irqLine(0..15)`. Output: the master's INT level.
 * The CPU (or LAPIC ExtINT delivery) calls `intAck()` to run an INTA cycle and get the vector.
 * Map `masterOps` at 0x20 and `slaveOps` at 0xa0 (2 ports each, region "pic"), `elcrMasterOps` at 0x4d0
 * and `elcrSlaveOps` at 0x4d1 (1 port each, region "elcr").
 *
 * @example
 * ```ts ignore
 * const pic = new I8259Pair({ output: lapic0.lint0, log });
 * const uartIrq = pic.irqLine(4);
 * ```
 */
export class I8259Pair implements Device {
  /** QEMU type name (of each chip). */
  static readonly typeName = "isa-i8259";
  readonly typeName = I8259Pair.typeName;
  readonly id: string;
  /** Ports 0x20-0x21. */
  readonly masterOps: RegionOps;
  /** Ports 0xa0-0xa1. */
  readonly slaveOps: RegionOps;
  /** Port 0x4d0 (ELCR1, IRQ 0-7). */
  readonly elcrMasterOps: RegionOps;
  /** Port 0x4d1 (ELCR2, IRQ 8-15). */
  readonly elcrSlaveOps: RegionOps;

  readonly #master: PicChip;
  readonly #slave: PicChip;
  readonly #output: IrqLine;
  readonly #lines: IrqLine[];

  constructor(opts: I8259PairOptions) {
    this.id = opts.id ?? "pic";
    this.#output = opts.output;
    this.#master = new PicChip(true, ELCR_MASK_MASTER, (l) => this.#output.set(l), opts.log, this.id);
    // The slave's INT drives master input 2 (cascade).
    this.#slave = new PicChip(false, ELCR_MASK_SLAVE, (l) => this.#master.setIrq(2, l), opts.log, this.id);
    this.#lines = [];
    for (let n = 0; n < 16; n++) {
      const chip = n < 8 ? this.#master : this.#slave;
      const pin = n & 7;
      this.#lines.push({ set: (level: boolean) => chip.setIrq(pin, level) });
    }
    const chipOps = (c: PicChip): RegionOps => ({
      read: (offset: number, _size: 1 | 2 | 4): number => c.read(offset),
      write: (offset: number, _size: 1 | 2 | 4, value: number): void => c.write(offset, value & 0xff),
      impl: { min: 1, max: 1 },
    });
    const elcrOps = (c: PicChip): RegionOps => ({
      read: (_offset: number, _size: 1 | 2 | 4): number => c.elcr,
      write: (_offset: number, _size: 1 | 2 | 4, value: number): void => {
        c.elcr = value & c.elcrMask;
      },
      impl: { min: 1, max: 1 },
    });
    this.masterOps = chipOps(this.#master);
    this.slaveOps = chipOps(this.#slave);
    this.elcrMasterOps = elcrOps(this.#master);
    this.elcrSlaveOps = elcrOps(this.#slave);
    this.reset();
  }

  /** Input line for ISA IRQ n (0..15); IRQ 2 is the cascade and is not meant to be driven. */
  irqLine(n: number): IrqLine {
    if (!Number.isInteger(n) || n < 0 || n > 15) throw new RangeError(`i8259: IRQ ${n} out of range 0..15`);
    return this.#lines[n];
  }

  /** Current level of the INT output. */
  get output(): boolean {
    return this.#master.output;
  }

  /** INTA cycle: acknowledge the highest-priority request and return its vector (spurious: base+7). */
  intAck(): number {
    const m = this.#master;
    const s = this.#slave;
    let irq = m.getIrq();
    let vector: number;
    if (irq >= 0) {
      if (irq === 2) {
        let irq2 = s.getIrq();
        if (irq2 >= 0) s.intAck(irq2);
        else irq2 = 7; // spurious IRQ 15
        vector = s.irqBase + irq2;
      } else {
        vector = m.irqBase + irq;
      }
      m.intAck(irq);
    } else {
      irq = 7; // spurious IRQ 7
      vector = m.irqBase + irq;
    }
    return vector & 0xff;
  }

  reset(): void {
    for (const c of [this.#master, this.#slave]) {
      c.elcr = 0;
      c.resetCommon();
      c.update();
    }
  }

  saveState(): I8259State {
    return { version: 1, master: this.#master.save(), slave: this.#slave.save() };
  }

  loadState(state: DeviceState): void {
    if (state === null || typeof state !== "object") {
      throw new StateError("Invalid i8259 state: not an object");
    }
    if (state.version !== 1) {
      throw new StateError(`Unsupported i8259 state version "${String(state.version)}"`);
    }
    const m = PicChip.validate(state.master, "master");
    const s = PicChip.validate(state.slave, "slave");
    this.#master.load(m);
    this.#slave.load(s);
    // Recompute outputs: slave first (it feeds master IRQ2's level in lastIrr), then master.
    this.#slave.output = this.#slave.getIrq() >= 0;
    this.#master.output = this.#master.getIrq() >= 0;
    this.#output.set(this.#master.output);
  }
}

/** QEMU's `info pic` lines for the pair, slave first ("pic1: irr=.. imr=.. isr=.. hprio=.. irq_base=.. rr_sel=.. elcr=.. fnm=.."). */
export function formatInfoPic(state: I8259State): string {
  const h = (n: number) => n.toString(16).padStart(2, "0");
  // QEMU 7.2 lists the slave (pic1) first (object-tree order), as the reference capture shows.
  return [state.slave, state.master].map((c, i) =>
    `pic${1 - i}: irr=${h(c.irr)} imr=${h(c.imr)} isr=${h(c.isr)} hprio=${c.priorityAdd} ` +
    `irq_base=${h(c.irqBase)} rr_sel=${c.readRegSelect} elcr=${h(c.elcr)} fnm=${c.specialFullyNestedMode}\n`
  ).join("");
}
