/**
 * The APIC bus joining the software vCPUs' local APICs: IPIs, MSIs (IOAPIC output, the apic-msi window),
 * lowest-priority arbitration and the level-EOI broadcast to the IOAPIC.
 * @module
 */
import type { MsiSink } from "../core/types.ts";
import type { Lapic } from "./lapic.ts";
import { APIC_DM_FIXED, APIC_DM_LOWEST } from "./lapic_regs.ts";

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
