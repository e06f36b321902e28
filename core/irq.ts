/**
 * Interrupt wiring: the GSI router the board connects to IOAPIC and PIC pins, a fan-out line, a pulse
 * helper, and `info irq` statistics (rising edges per line, as QEMU's ioapic/i8259 irq_count).
 * @module
 */
import { type IrqLine, UserError } from "./types.ts";

/** An IrqLine that drives several sinks with the same level. */
export class IrqFanout implements IrqLine {
  readonly #sinks: IrqLine[];
  constructor(sinks: readonly IrqLine[] = []) {
    this.#sinks = [...sinks];
  }
  /** Add a sink (it is not told the current level). */
  add(sink: IrqLine): void {
    this.#sinks.push(sink);
  }
  set(level: boolean): void {
    for (const s of this.#sinks) s.set(level);
  }
}

/** Raise then lower a line (an edge for edge-triggered inputs). */
export function pulse(line: IrqLine): void {
  line.set(true);
  line.set(false);
}

class GsiLine implements IrqLine {
  level = false;
  raises = 0;
  readonly sinks: IrqLine[] = [];
  set(level: boolean): void {
    if (level && !this.level) this.raises++;
    this.level = level;
    for (const s of this.sinks) s.set(level);
  }
}

/**
 * Global system interrupts (QEMU x86 gsi_handler): each GSI fans out to the sinks the board connected
 * (IOAPIC pin and/or PIC pin); counts rising edges per GSI for `info irq`.
 * @example
 * ```ts
 * import { GsiRouter } from "./irq.ts";
 * const gsi = new GsiRouter(24);
 * const seen: boolean[] = [];
 * gsi.connect(4, { set: (l) => seen.push(l) });
 * gsi.line(4).set(true);
 * console.assert(seen[0] === true && gsi.raises(4) === 1);
 * ```
 */
export class GsiRouter {
  readonly #lines: GsiLine[] = [];
  constructor(count: number) {
    if (!Number.isInteger(count) || count <= 0) throw new UserError(`Invalid GSI count "${count}"`);
    for (let i = 0; i < count; i++) this.#lines.push(new GsiLine());
  }
  /** Number of GSIs. */
  get count(): number {
    return this.#lines.length;
  }
  #get(gsi: number): GsiLine {
    const l = this.#lines[gsi];
    if (!Number.isInteger(gsi) || l === undefined) throw new UserError(`Invalid GSI "${gsi}"`);
    return l;
  }
  /** Connect a sink to `gsi` (board wiring time). */
  connect(gsi: number, sink: IrqLine): void {
    this.#get(gsi).sinks.push(sink);
  }
  /** The IrqLine a device drives for `gsi`. */
  line(gsi: number): IrqLine {
    return this.#get(gsi);
  }
  /** Current level of `gsi`. */
  level(gsi: number): boolean {
    return this.#get(gsi).level;
  }
  /** Rising edges seen on `gsi`. */
  raises(gsi: number): number {
    return this.#get(gsi).raises;
  }
  /** Rising edges per GSI. */
  counts(): number[] {
    return this.#lines.map((l) => l.raises);
  }
  /** Forget statistics and levels (system_reset; sinks are reset by their owners). */
  reset(): void {
    for (const l of this.#lines) {
      l.level = false;
      l.raises = 0;
    }
  }
}

/** QEMU `info irq` block: "IRQ statistics for NAME:" then "%2d: %llu" for each non-zero count. */
export function formatIrqStats(name: string, counts: ArrayLike<number>): string {
  let s = `IRQ statistics for ${name}:\n`;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] > 0) s += `${String(i).padStart(2, " ")}: ${counts[i]}\n`;
  }
  return s;
}
