/**
 * Small test doubles shared by unit tests: a GuestMemory over a plain byte array, a manually
 * stepped Clock, and IRQ lines that record their levels. Test-only; production code uses core/.
 * @module
 */
import type { Clock, IrqLine, Timer } from "../core/types.ts";
import { ByteMemory } from "../core/memory.ts";

/** GuestMemory over one Uint8Array starting at guest-physical 0. */
export class FakeMemory extends ByteMemory {
  constructor(size: number) {
    super(new Uint8Array(size));
  }
}

class ManualTimer implements Timer {
  armed = false;
  deadline = Infinity;
  constructor(readonly clock: ManualClock, readonly cb: () => void) {}
  arm(deadlineNs: number): void {
    this.armed = true;
    this.deadline = deadlineNs;
  }
  cancel(): void {
    this.armed = false;
    this.deadline = Infinity;
  }
}

/** A Clock that only moves when the test calls `step`/`set`; due timers fire in deadline order. */
export class ManualClock implements Clock {
  #now = 0;
  readonly #timers: ManualTimer[] = [];
  now(): number {
    return this.#now;
  }
  timer(cb: () => void): Timer {
    const t = new ManualTimer(this, cb);
    this.#timers.push(t);
    return t;
  }
  /** Advance by `ns`, firing timers in order (a timer may re-arm itself). */
  step(ns: number): void {
    this.set(this.#now + ns);
  }
  set(target: number): void {
    for (;;) {
      let next: ManualTimer | null = null;
      for (const t of this.#timers) {
        if (t.armed && t.deadline <= target && (next === null || t.deadline < next.deadline)) next = t;
      }
      if (next === null) break;
      if (next.deadline > this.#now) this.#now = next.deadline;
      next.armed = false;
      next.cb();
    }
    this.#now = target;
  }
}

/** An IrqLine that records its level and every change. */
export class RecordingIrq implements IrqLine {
  level = false;
  readonly history: boolean[] = [];
  raises = 0;
  set(level: boolean): void {
    if (level && !this.level) this.raises++;
    this.level = level;
    this.history.push(level);
  }
}
