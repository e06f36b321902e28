/**
 * The machine's one virtual clock (STYLE.md §2.5): host monotonic time that freezes while paused, or a
 * manual clock stepped by qtest (`clock_step`, `clock_set`) and tests. Timers live in an indexed binary heap
 * and fire from the accelerator's run loop via `runDue()`. This is the only file that reads host time.
 * @module
 */
import { type Clock, type Timer, UserError } from "./types.ts";

/** Host monotonic time in ns (the default `now` source of host mode). */
export function hostMonotonicNs(): number {
  return Math.round(performance.now() * 1e6);
}

/** Clock modes: "host" follows host time, "manual" moves only on step/set/warp. */
export type ClockMode = "host" | "manual";

/** Options of `new VirtualClock`. */
export interface VirtualClockOptions {
  mode: ClockMode;
  /** Host time source in ns (host mode); default hostMonotonicNs. */
  now?: () => number;
  /** Called when a timer callback throws; without it the error propagates out of runDue/step. */
  onTimerError?: (err: unknown) => void;
}

/** Most callbacks one runDue() fires (a timer re-arming itself in the past cannot hang the run loop). */
export const RUN_DUE_BUDGET = 10000;

class HeapTimer implements Timer {
  deadline = Infinity;
  index = -1;
  seq = 0;
  constructor(readonly clock: VirtualClock, readonly cb: () => void) {}
  get armed(): boolean {
    return this.index >= 0;
  }
  arm(deadlineNs: number): void {
    this.clock._arm(this, deadlineNs);
  }
  cancel(): void {
    this.clock._cancel(this);
  }
}

/**
 * The virtual clock: ns since creation.
 * @example
 * ```ts
 * import { VirtualClock } from "./clock.ts";
 * const clock = new VirtualClock({ mode: "manual" });
 * const fired: number[] = [];
 * clock.timer(() => fired.push(clock.now())).arm(1000);
 * clock.step(5000);
 * console.assert(fired[0] === 1000 && clock.now() === 5000);
 * ```
 */
export class VirtualClock implements Clock {
  readonly mode: ClockMode;
  readonly #src: () => number;
  readonly #onErr: ((err: unknown) => void) | undefined;
  /** host: virtual = src() - offset; manual: the current time. */
  #offset = 0;
  #manualNow = 0;
  #paused = false;
  #pausedAt = 0;
  #seq = 0;
  readonly #heap: HeapTimer[] = [];
  /**
   * Called when a timer is armed ahead of every other one (the earliest deadline moved closer): a run loop
   * sleeping until the previous deadline (a halted software vCPU) wakes to honour it.
   */
  onEarlierDeadline: (() => void) | null = null;

  constructor(opts: VirtualClockOptions) {
    this.mode = opts.mode;
    this.#src = opts.now ?? hostMonotonicNs;
    this.#onErr = opts.onTimerError;
    if (this.mode === "host") this.#offset = this.#src();
  }

  now(): number {
    if (this.mode === "manual") return this.#manualNow;
    return this.#paused ? this.#pausedAt : this.#src() - this.#offset;
  }

  timer(cb: () => void): Timer {
    return new HeapTimer(this, cb);
  }

  /** True while paused (host mode time frozen). */
  get paused(): boolean {
    return this.#paused;
  }
  /** Freeze virtual time (VM stopped). */
  pause(): void {
    if (this.#paused) return;
    this.#pausedAt = this.now();
    this.#paused = true;
  }
  /** Resume from where it was frozen, without a jump. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.mode === "host") this.#offset = this.#src() - this.#pausedAt;
  }

  /**
   * Snapshot restore: virtual time continues from `ns` (the source's time at stop-and-copy), so guest time
   * neither jumps back nor forward by the downtime. Call before devices re-arm their timers.
   */
  restore(ns: number): void {
    if (!(ns >= 0) || !Number.isFinite(ns)) throw new UserError(`Cannot restore the clock to "${ns}" ns`);
    if (this.mode === "manual") this.#manualNow = ns;
    else if (this.#paused) this.#pausedAt = ns;
    else this.#offset = this.#src() - ns;
  }

  /** Earliest armed deadline, or Infinity. */
  nextDeadline(): number {
    return this.#heap.length ? this.#heap[0].deadline : Infinity;
  }

  /** Fire expired timers in deadline order (ties: arm order); returns how many fired. */
  runDue(): number {
    return this.#fireUntil(this.now(), false);
  }

  /** qtest clock_step: advance by `ns`, firing due timers at their deadlines in order. */
  step(ns: number): void {
    this.#needManual("step");
    if (!(ns >= 0)) throw new UserError(`Cannot step the clock by "${ns}" ns`);
    this.set(this.#manualNow + ns);
  }

  /** qtest clock_set: advance to `ns` (never backwards), firing due timers in order. */
  set(ns: number): void {
    this.#needManual("set");
    if (!(ns >= this.#manualNow)) throw new UserError(`Cannot set the clock back to "${ns}" ns`);
    this.#fireUntil(ns, true);
    this.#manualNow = ns;
  }

  /** qtest clock_step with no argument: jump to the next deadline and fire it; returns the new time. */
  warp(): number {
    this.#needManual("warp");
    const d = this.nextDeadline();
    if (d !== Infinity) this.set(Math.max(d, this.#manualNow));
    return this.#manualNow;
  }

  #needManual(what: string): void {
    if (this.mode !== "manual") throw new UserError(`Cannot ${what} the clock in host mode`);
  }

  #fireUntil(target: number, advance: boolean): number {
    let fired = 0;
    while (this.#heap.length && this.#heap[0].deadline <= target && fired < RUN_DUE_BUDGET) {
      const t = this.#heap[0];
      if (advance && t.deadline > this.#manualNow) this.#manualNow = t.deadline;
      this.#remove(t);
      fired++;
      if (this.#onErr) {
        try {
          t.cb();
        } catch (err) {
          this.#onErr(err);
        }
      } else {
        t.cb();
      }
    }
    return fired;
  }

  /** @internal */
  _arm(t: HeapTimer, deadline: number): void {
    const d = Number.isNaN(deadline) ? Infinity : deadline;
    if (t.index >= 0) this.#remove(t);
    if (d === Infinity) {
      t.deadline = Infinity;
      return;
    }
    t.deadline = d;
    t.seq = this.#seq++;
    t.index = this.#heap.length;
    this.#heap.push(t);
    this.#up(t.index);
    if (t.index === 0) this.onEarlierDeadline?.();
  }

  /** @internal */
  _cancel(t: HeapTimer): void {
    if (t.index >= 0) this.#remove(t);
    t.deadline = Infinity;
  }

  #less(a: HeapTimer, b: HeapTimer): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }
  #swap(i: number, j: number): void {
    const h = this.#heap;
    const a = h[i];
    h[i] = h[j];
    h[j] = a;
    h[i].index = i;
    h[j].index = j;
  }
  #up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(this.#heap[i], this.#heap[p])) break;
      this.#swap(i, p);
      i = p;
    }
  }
  #down(i: number): void {
    const h = this.#heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l], h[m])) m = l;
      if (r < h.length && this.#less(h[r], h[m])) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }
  #remove(t: HeapTimer): void {
    const h = this.#heap;
    const i = t.index;
    const last = h.length - 1;
    if (i !== last) this.#swap(i, last);
    h.pop();
    t.index = -1;
    if (i < h.length) {
      this.#up(i);
      this.#down(i);
    }
  }
}
