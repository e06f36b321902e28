/**
 * Small test doubles shared by unit tests: a GuestMemory over a plain byte array, a manually
 * stepped Clock, and IRQ lines that record their levels. Test-only; production code uses core/.
 * @module
 */
import type { Clock, GuestMemory, IrqLine, Timer } from "../core/types.ts";

/** GuestMemory over one Uint8Array starting at guest-physical 0. */
export class FakeMemory implements GuestMemory {
  readonly bytes: Uint8Array;
  readonly #dv: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.#dv = new DataView(this.bytes.buffer);
  }
  get size(): number {
    return this.bytes.length;
  }
  isRam(gpa: number, len: number): boolean {
    return Number.isInteger(gpa) && Number.isInteger(len) && gpa >= 0 && len >= 0 &&
      gpa + len <= this.bytes.length;
  }
  read(gpa: number, len: number): Uint8Array | null {
    return this.isRam(gpa, len) ? this.bytes.slice(gpa, gpa + len) : null;
  }
  readInto(gpa: number, dst: Uint8Array): boolean {
    if (!this.isRam(gpa, dst.length)) return false;
    dst.set(this.bytes.subarray(gpa, gpa + dst.length));
    return true;
  }
  write(gpa: number, data: Uint8Array): boolean {
    if (!this.isRam(gpa, data.length)) return false;
    this.bytes.set(data, gpa);
    return true;
  }
  view(gpa: number, len: number): Uint8Array | null {
    return this.isRam(gpa, len) ? this.bytes.subarray(gpa, gpa + len) : null;
  }
  readU8(gpa: number): number {
    return this.isRam(gpa, 1) ? this.bytes[gpa] : 0xff;
  }
  readU16(gpa: number): number {
    return this.isRam(gpa, 2) ? this.#dv.getUint16(gpa, true) : 0xffff;
  }
  readU32(gpa: number): number {
    return this.isRam(gpa, 4) ? this.#dv.getUint32(gpa, true) : 0xffffffff;
  }
  readU64(gpa: number): number {
    return this.isRam(gpa, 8) ? Number(this.#dv.getBigUint64(gpa, true)) : -1;
  }
  writeU8(gpa: number, v: number): boolean {
    if (!this.isRam(gpa, 1)) return false;
    this.bytes[gpa] = v;
    return true;
  }
  writeU16(gpa: number, v: number): boolean {
    if (!this.isRam(gpa, 2)) return false;
    this.#dv.setUint16(gpa, v, true);
    return true;
  }
  writeU32(gpa: number, v: number): boolean {
    if (!this.isRam(gpa, 4)) return false;
    this.#dv.setUint32(gpa, v >>> 0, true);
    return true;
  }
  writeU64(gpa: number, v: number | bigint): boolean {
    if (!this.isRam(gpa, 8)) return false;
    this.#dv.setBigUint64(gpa, BigInt.asUintN(64, BigInt(v)), true);
    return true;
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
