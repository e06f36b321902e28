/**
 * A minimal stand-alone board for exercising the software CPU without devices/: flat RAM, a console
 * UART stub on 0x3f8 (LSR reads 0x60), all-ones for other ports and MMIO, an optional tiny kvmclock
 * (MSR 0x4b564d01: TSC at 1 GHz equals the clock in ns), and a manually driven virtual clock.
 * Development aid and test fixture only: the real board is devices/microvm.ts.
 * @module
 */
import type { AccelBoard, IoBus, LocalApicPort, MmioBus, MsrHandler, PhysMap } from "../accel.ts";
import type { Clock, Timer } from "../types.ts";
import { ByteMemory } from "../memory.ts";

/** GuestMemory over one byte array at GPA 0. */
export class FlatRam extends ByteMemory {
  constructor(size: number) {
    super(new Uint8Array(size));
  }
}

/** PhysMap over FlatRam: every page below the RAM size is RAM, the rest MMIO. */
export class FlatPhys implements PhysMap {
  readonly u8: Uint8Array;
  readonly generation = 0;
  readonly #pages: number;
  constructor(ram: FlatRam) {
    this.u8 = ram.bytes;
    this.#pages = ram.bytes.length / 4096;
  }
  pageBase(gpn: number): number {
    return gpn >= 0 && gpn < this.#pages ? gpn * 4096 : -1;
  }
  isReadOnly(_gpn: number): boolean {
    return false;
  }
}

class StubTimer implements Timer {
  armed = false;
  deadline = Infinity;
  constructor(readonly cb: () => void) {}
  arm(d: number): void {
    this.armed = true;
    this.deadline = d;
  }
  cancel(): void {
    this.armed = false;
    this.deadline = Infinity;
  }
}

/** A clock that advances `nsPerRead` on every now() call (deterministic, instruction-count-like). */
export class CountingClock implements Clock {
  #now = 0;
  readonly #timers: StubTimer[] = [];
  constructor(readonly nsPerRead = 1000) {}
  now(): number {
    this.#now += this.nsPerRead;
    return this.#now;
  }
  advance(ns: number): void {
    this.#now += ns;
  }
  timer(cb: () => void): Timer {
    const t = new StubTimer(cb);
    this.#timers.push(t);
    return t;
  }
  nextDeadline(): number {
    let d = Infinity;
    for (const t of this.#timers) if (t.armed && t.deadline < d) d = t.deadline;
    return d;
  }
  runDue(): void {
    for (const t of this.#timers) {
      if (t.armed && t.deadline <= this.#now) {
        t.armed = false;
        t.cb();
      }
    }
  }
}

/** Options of makeHarnessBoard. */
export interface HarnessOptions {
  ramBytes: number;
  /** Receives bytes the guest writes to 0x3f8. */
  onSerial?: (byte: number) => void;
  cpuModel?: string;
  cpuFeatures?: Array<{ name: string; on: boolean }>;
  kvmclock?: boolean;
  clock?: Clock;
  lapics?: LocalApicPort[];
  ncpus?: number;
}

/** A board with RAM, a serial stub and optionally kvmclock. */
export function makeHarnessBoard(opts: HarnessOptions): { board: AccelBoard; ram: FlatRam } {
  const ram = new FlatRam(opts.ramBytes);
  const phys = new FlatPhys(ram);
  const clock = opts.clock ?? new CountingClock();
  const io: IoBus = {
    read(port: number, size: 1 | 2 | 4): number {
      if (port === 0x3fd) return 0x60;
      if (port >= 0x3f8 && port <= 0x3ff) return 0;
      return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    },
    write(port: number, _size: 1 | 2 | 4, value: number): void {
      if (port === 0x3f8) opts.onSerial?.(value & 0xff);
    },
  };
  const mmio: MmioBus = {
    read(_a: number, size: 1 | 2 | 4): number {
      return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    },
    write(): void {},
  };
  const handlers: MsrHandler[] = [];
  if (opts.kvmclock) {
    handlers.push({
      handles: (msr) => msr === 0x4b564d00 || msr === 0x4b564d01,
      read: () => 0n,
      write: (_cpu, msr, v) => {
        const gpa = Number(v & ~1n);
        if (msr === 0x4b564d00) {
          ram.write(gpa, new Uint8Array(12));
          return true;
        }
        if (!(v & 1n)) return true;
        // pvclock_vcpu_time_info: version 2, tsc_timestamp 0, system_time 0, mul 2^31, shift 1, flags STABLE.
        ram.writeU32(gpa, 2);
        ram.writeU32(gpa + 4, 0);
        ram.writeU64(gpa + 8, 0n);
        ram.writeU64(gpa + 16, 0n);
        ram.writeU32(gpa + 24, 0x80000000);
        ram.writeU8(gpa + 28, 1);
        ram.writeU8(gpa + 29, 1);
        return true;
      },
    });
  }
  const board: AccelBoard = {
    io,
    mmio,
    phys,
    ram,
    clock,
    msi: null,
    ncpus: opts.ncpus ?? 1,
    lapics: opts.lapics ?? [],
    cpuModel: opts.cpuModel ?? "qemu64",
    cpuFeatures: opts.cpuFeatures ?? [],
    msrHandlers: handlers,
    tscKhz: 1000000,
  };
  return { board, ram };
}
