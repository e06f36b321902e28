/**
 * The I/O APIC (82093AA-style, version 0x20, 24 pins) as QEMU 7.2's hw/intc/ioapic.c models it:
 * IOREGSEL/IOWIN indirect registers, the version-0x20 EOI register at 0x40, 64-bit redirection entries with
 * edge/level trigger, mask and remote IRR. Every delivery is encoded as an MSI message exactly as QEMU's
 * ioapic_entry_parse/ioapic_service do, so KVM's split irqchip and our software LAPICs share one path.
 * @module
 */
import type { Device, DeviceState, GuestLog, IrqLine, MsiSink, RegionOps } from "../core/types.ts";
import { StateError } from "../core/types.ts";

/** MMIO offsets inside the 4 KiB window. */
export const IOAPIC_IOREGSEL = 0x00;
export const IOAPIC_IOWIN = 0x10;
/** Directed EOI register (version 0x20 only). */
export const IOAPIC_EOI = 0x40;

/** Indirect register indices. */
export const IOAPIC_REG_ID = 0x00;
export const IOAPIC_REG_VER = 0x01;
export const IOAPIC_REG_ARB = 0x02;
export const IOAPIC_REG_REDTBL_BASE = 0x10;

export const IOAPIC_NUM_PINS = 24;
export const IOAPIC_VERSION = 0x20;

/** Redirection entry bits (low dword). */
export const IOAPIC_LVT_VECTOR_MASK = 0xff;
export const IOAPIC_LVT_DELIV_MODE_SHIFT = 8;
export const IOAPIC_LVT_DEST_MODE = 1 << 11;
export const IOAPIC_LVT_DELIV_STATUS = 1 << 12;
export const IOAPIC_LVT_POLARITY = 1 << 13;
export const IOAPIC_LVT_REMOTE_IRR = 1 << 14;
export const IOAPIC_LVT_TRIGGER_LEVEL = 1 << 15;
export const IOAPIC_LVT_MASKED = 1 << 16;
/** Delivery mode ExtINT. */
export const IOAPIC_DM_EXTINT = 7;

/** MSI encoding (QEMU include/hw/i386/apic-msidef.h). */
export const MSI_ADDR_BASE = 0xfee00000;
export const MSI_ADDR_DEST_IDX_SHIFT = 4;
export const MSI_ADDR_DEST_MODE_SHIFT = 2;
export const MSI_DATA_DELIVERY_MODE_SHIFT = 8;
export const MSI_DATA_TRIGGER_SHIFT = 15;

const RO_BITS_LO = IOAPIC_LVT_REMOTE_IRR | IOAPIC_LVT_DELIV_STATUS;

/** Saved IOAPIC state (version 1); `redtbl` holds [lo, hi] dword pairs per pin. */
export interface IoapicState extends DeviceState {
  version: 1;
  id: number;
  ioregsel: number;
  irr: number;
  lines: number;
  redtbl: number[][];
}

/** Constructor options of {@link Ioapic}. */
export interface IoapicOptions {
  id?: string;
  /** Where redirected interrupts go (ApicBus, or KVM's MSI ioctl). */
  msi: MsiSink;
  log: GuestLog;
}

/**
 * The IOAPIC ("ioapic"): map `ops` at 0xfec00000 (size 0x1000), drive `pin(n)` from the GSI router, and
 * call `eoi(vector)` on every level-triggered LAPIC EOI (ApicBus.setEoiListener).
 *
 * @example
 * ```ts ignore
 * const ioapic = new Ioapic({ msi: apicBus, log });
 * const gsi4 = ioapic.pin(4);  // IrqLine
 * apicBus.setEoiListener((v) => ioapic.eoi(v));
 * ```
 */
export class Ioapic implements Device {
  /** QEMU type name. */
  static readonly typeName = "ioapic";
  readonly typeName = Ioapic.typeName;
  readonly id: string;
  /** MMIO handlers for the 4 KiB window (QEMU accepts any size; IOWIN and EOI act on 4-byte accesses). */
  readonly ops: RegionOps;

  readonly #msi: MsiSink;
  readonly #log: GuestLog;
  readonly #pins: IrqLine[] = [];
  #apicId = 0;
  #ioregsel = 0;
  /** Pending requests, one bit per pin (QEMU's s->irr). */
  #irr = 0;
  /** Current input levels, one bit per pin (for edge detection). */
  #lines = 0;
  readonly #lo = new Uint32Array(IOAPIC_NUM_PINS);
  readonly #hi = new Uint32Array(IOAPIC_NUM_PINS);

  constructor(opts: IoapicOptions) {
    this.id = opts.id ?? "ioapic";
    this.#msi = opts.msi;
    this.#log = opts.log;
    for (let n = 0; n < IOAPIC_NUM_PINS; n++) {
      // QEMU ioapic_set_irq: ISA IRQ0 (the PIT) is routed to pin 2, matching the MP-table IRQ0 override.
      const target = n === 0 ? 2 : n;
      this.#pins.push({ set: (level: boolean) => this.#setIrq(target, level) });
    }
    this.ops = {
      read: (offset, size) => this.#read(offset, size),
      write: (offset, size, value) => this.#write(offset, size, value),
    };
    this.reset();
  }

  /** Input line of pin n (0..23). Pin 0 drives pin 2, as QEMU's ioapic_set_irq does. */
  pin(n: number): IrqLine {
    if (!Number.isInteger(n) || n < 0 || n >= IOAPIC_NUM_PINS) {
      throw new RangeError(`ioapic: pin ${n} out of range 0..23`);
    }
    return this.#pins[n];
  }

  /** EOI broadcast from a LAPIC: clear remote IRR of level entries with this vector, re-deliver if still asserted. */
  eoi(vector: number): void {
    vector &= 0xff;
    let again = false;
    for (let n = 0; n < IOAPIC_NUM_PINS; n++) {
      const lo = this.#lo[n];
      if ((lo & IOAPIC_LVT_VECTOR_MASK) !== vector || !(lo & IOAPIC_LVT_TRIGGER_LEVEL)) continue;
      if (!(lo & IOAPIC_LVT_REMOTE_IRR)) continue;
      this.#lo[n] = lo & ~IOAPIC_LVT_REMOTE_IRR;
      if (!(lo & IOAPIC_LVT_MASKED) && (this.#irr & (1 << n))) again = true;
    }
    if (again) this.#service();
  }

  /** The 64-bit redirection entry of a pin as [lo, hi] (for `info pic`-style dumps and tests). */
  entry(n: number): [number, number] {
    return [this.#lo[n], this.#hi[n]];
  }

  reset(): void {
    this.#apicId = 0;
    this.#ioregsel = 0;
    this.#irr = 0;
    for (let n = 0; n < IOAPIC_NUM_PINS; n++) {
      this.#lo[n] = IOAPIC_LVT_MASKED;
      this.#hi[n] = 0;
    }
  }

  saveState(): IoapicState {
    const redtbl: number[][] = [];
    for (let n = 0; n < IOAPIC_NUM_PINS; n++) redtbl.push([this.#lo[n], this.#hi[n]]);
    return {
      version: 1,
      id: this.#apicId,
      ioregsel: this.#ioregsel,
      irr: this.#irr,
      lines: this.#lines,
      redtbl,
    };
  }

  loadState(state: DeviceState): void {
    const s = state as Partial<IoapicState>;
    const u32 = (v: unknown, name: string): number => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new StateError(`Invalid ioapic state: field "${name}" is not a 32-bit unsigned integer`);
      }
      return v;
    };
    if (s.version !== 1) {
      throw new StateError(`Invalid ioapic state: unsupported version "${String(s.version)}"`);
    }
    if (!Array.isArray(s.redtbl) || s.redtbl.length !== IOAPIC_NUM_PINS) {
      throw new StateError(`Invalid ioapic state: "redtbl" must have ${IOAPIC_NUM_PINS} entries`);
    }
    const id = u32(s.id, "id");
    const sel = u32(s.ioregsel, "ioregsel");
    const irr = u32(s.irr, "irr");
    const lines = u32(s.lines, "lines");
    const lo: number[] = [];
    const hi: number[] = [];
    for (const e of s.redtbl) {
      if (!Array.isArray(e) || e.length !== 2) {
        throw new StateError(`Invalid ioapic state: bad "redtbl" entry`);
      }
      lo.push(u32(e[0], "redtbl"));
      hi.push(u32(e[1], "redtbl"));
    }
    if (id > 0xf || sel > 0xff) throw new StateError(`Invalid ioapic state: "id" or "ioregsel" out of range`);
    this.#apicId = id;
    this.#ioregsel = sel;
    this.#irr = irr & 0xffffff;
    this.#lines = lines & 0xffffff;
    this.#lo.set(lo);
    this.#hi.set(hi);
  }

  #setIrq(n: number, level: boolean): void {
    const mask = 1 << n;
    const was = (this.#lines & mask) !== 0;
    if (level) this.#lines |= mask;
    else this.#lines &= ~mask;
    const lo = this.#lo[n];
    if (lo & IOAPIC_LVT_TRIGGER_LEVEL) {
      if (level) {
        this.#irr |= mask;
        if (!(lo & IOAPIC_LVT_REMOTE_IRR)) this.#service();
      } else {
        this.#irr &= ~mask;
      }
    } else if (level && !was && !(lo & IOAPIC_LVT_MASKED)) {
      // 82093AA: edges on a masked pin are ignored. A rising edge is one request.
      this.#irr |= mask;
      this.#service();
    }
  }

  /** QEMU ioapic_service: deliver every pending unmasked pin as an MSI message. */
  #service(): void {
    for (let n = 0; n < IOAPIC_NUM_PINS; n++) {
      const mask = 1 << n;
      if (!(this.#irr & mask)) continue;
      const lo = this.#lo[n];
      if (lo & IOAPIC_LVT_MASKED) continue;
      if (lo & IOAPIC_LVT_TRIGGER_LEVEL) {
        if (lo & IOAPIC_LVT_REMOTE_IRR) continue;
        this.#lo[n] = lo | IOAPIC_LVT_REMOTE_IRR;
      } else {
        this.#irr &= ~mask;
      }
      const [address, data] = ioapicEntryToMsi(lo, this.#hi[n]);
      this.#msi.sendMsi(address, data);
    }
  }

  #read(offset: number, size: number): number {
    switch (offset & 0xff) {
      case IOAPIC_IOREGSEL:
        return this.#ioregsel;
      case IOAPIC_IOWIN:
        return size === 4 ? this.#readWindow() : 0;
      default:
        return 0;
    }
  }

  #readWindow(): number {
    const sel = this.#ioregsel;
    switch (sel) {
      case IOAPIC_REG_ID:
      case IOAPIC_REG_ARB:
        return (this.#apicId << 24) >>> 0;
      case IOAPIC_REG_VER:
        return (IOAPIC_VERSION | ((IOAPIC_NUM_PINS - 1) << 16)) >>> 0;
      default: {
        const index = (sel - IOAPIC_REG_REDTBL_BASE) >> 1;
        if (index < 0 || index >= IOAPIC_NUM_PINS) return 0xffffffff;
        return sel & 1 ? this.#hi[index] : this.#lo[index];
      }
    }
  }

  #write(offset: number, size: number, value: number): void {
    value >>>= 0;
    switch (offset & 0xff) {
      case IOAPIC_IOREGSEL:
        this.#ioregsel = value & 0xff;
        return;
      case IOAPIC_IOWIN:
        if (size === 4) this.#writeWindow(value);
        return;
      case IOAPIC_EOI:
        // Explicit EOI exists only for version 0x20 (QEMU checks size 4).
        if (size === 4) this.eoi(value & 0xff);
        return;
      default:
        return;
    }
  }

  #writeWindow(value: number): void {
    const sel = this.#ioregsel;
    switch (sel) {
      case IOAPIC_REG_ID:
        this.#apicId = (value >>> 24) & 0xf;
        return;
      case IOAPIC_REG_VER:
      case IOAPIC_REG_ARB:
        return;
    }
    const index = (sel - IOAPIC_REG_REDTBL_BASE) >> 1;
    if (index < 0 || index >= IOAPIC_NUM_PINS) {
      this.#log.guestError(this.id, `write to invalid register 0x${sel.toString(16)}`);
      return;
    }
    if (sel & 1) {
      this.#hi[index] = value;
    } else {
      // Remote IRR and delivery status are read-only.
      let lo = (value & ~RO_BITS_LO) | (this.#lo[index] & RO_BITS_LO);
      // QEMU ioapic_fix_edge_remote_irr: an edge entry never keeps remote IRR.
      if (!(lo & IOAPIC_LVT_TRIGGER_LEVEL)) lo &= ~IOAPIC_LVT_REMOTE_IRR;
      this.#lo[index] = lo >>> 0;
      // A level pin that is still asserted becomes pending again once the entry allows it.
      if ((lo & IOAPIC_LVT_TRIGGER_LEVEL) && (this.#lines & (1 << index))) this.#irr |= 1 << index;
    }
    this.#service();
  }
}

/**
 * Encode a redirection entry as the MSI message QEMU's ioapic_entry_parse builds: address 0xfee00000 |
 * entry[63:48] << 4 | dest mode << 2; data vector | delivery mode << 8 | trigger << 15.
 */
export function ioapicEntryToMsi(lo: number, hi: number): [number, number] {
  const destIdx = (hi >>> 16) & 0xffff;
  const destMode = (lo >>> 11) & 1;
  const dm = (lo >>> IOAPIC_LVT_DELIV_MODE_SHIFT) & 7;
  const trig = (lo >>> 15) & 1;
  const vector = lo & IOAPIC_LVT_VECTOR_MASK;
  const address =
    (MSI_ADDR_BASE | (destIdx << MSI_ADDR_DEST_IDX_SHIFT) | (destMode << MSI_ADDR_DEST_MODE_SHIFT)) >>> 0;
  const data = vector | (dm << MSI_DATA_DELIVERY_MODE_SHIFT) | (trig << MSI_DATA_TRIGGER_SHIFT);
  return [address, data];
}
