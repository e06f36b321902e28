/**
 * KVM's paravirtual clock MSRs for the software CPU, as Linux's arch/x86/kernel/kvmclock.c and
 * include/asm/pvclock-abi.h expect them and KVM's arch/x86/kvm/x86.c fills them: MSR_KVM_SYSTEM_TIME(_NEW)
 * makes the vCPU's `pvclock_vcpu_time_info` appear at a guest address (enable bit 0), MSR_KVM_WALL_CLOCK(_NEW)
 * writes `pvclock_wall_clock` (boot time) once. Our TSC is exactly linear in virtual time
 * (TSC = now_ns × tscKhz / 1e6, the LAPIC's formula), so one write stays valid: PVCLOCK_TSC_STABLE_BIT is set.
 * @module
 */
import type { MsrHandler } from "../core/accel.ts";
import { type Clock, type DeviceState, type GuestLog, type GuestMemory, StateError } from "../core/types.ts";

export const MSR_KVM_WALL_CLOCK = 0x11;
export const MSR_KVM_SYSTEM_TIME = 0x12;
export const MSR_KVM_WALL_CLOCK_NEW = 0x4b564d00;
export const MSR_KVM_SYSTEM_TIME_NEW = 0x4b564d01;

/** pvclock_vcpu_time_info.flags. */
export const PVCLOCK_TSC_STABLE_BIT = 0x01;

/** sizeof(struct pvclock_vcpu_time_info) and its field offsets. */
export const PVCLOCK_VCPU_TIME_INFO_SIZE = 32;
const PVTI_VERSION = 0;
const PVTI_TSC_TIMESTAMP = 8;
const PVTI_SYSTEM_TIME = 16;
const PVTI_TSC_TO_SYSTEM_MUL = 24;
const PVTI_TSC_SHIFT = 28;
const PVTI_FLAGS = 29;
/** sizeof(struct pvclock_wall_clock): version, sec, nsec. */
export const PVCLOCK_WALL_CLOCK_SIZE = 12;

/** Constructor options of {@link KvmClock}. */
export interface KvmClockOptions {
  mem: GuestMemory;
  clock: Clock;
  /** Guest TSC frequency in kHz (AccelBoard.tscKhz). */
  tscKhz: number;
  /** Wall-clock time in ms since the epoch at virtual time 0 (the board's base, shared with the RTC). */
  wallClockMs: number;
  log: GuestLog;
}

/**
 * kvmclock MSRs (an MsrHandler for the software CPU). Per-CPU system-time areas; one wall-clock value.
 *
 * @example
 * ```ts ignore
 * const kvmclock = new KvmClock({ mem: ram, clock, tscKhz: 1_000_000, wallClockMs: Date.now(), log });
 * board.msrHandlers = [kvmclock];   // the CPU consults handles()/read()/write() before its own MSRs
 * ```
 */
export class KvmClock implements MsrHandler {
  readonly id = "kvmclock";
  readonly typeName = "kvmclock";
  readonly #mem: GuestMemory;
  readonly #clock: Clock;
  readonly #tscKhz: number;
  readonly #wallClockMs: number;
  readonly #log: GuestLog;
  readonly #mul: number;
  readonly #shift: number;
  /** Per-CPU MSR value and version counter. */
  readonly #systemTime = new Map<number, { msr: bigint; version: number }>();
  #wallMsr = 0n;
  #wallVersion = 0;

  constructor(opts: KvmClockOptions) {
    this.#mem = opts.mem;
    this.#clock = opts.clock;
    this.#tscKhz = opts.tscKhz;
    this.#wallClockMs = opts.wallClockMs;
    this.#log = opts.log;
    const { mul, shift } = pvclockScale(1_000_000_000, opts.tscKhz * 1000);
    this.#mul = mul;
    this.#shift = shift;
  }

  /** tsc_to_system_mul and tsc_shift for this TSC frequency (KVM's kvm_get_time_scale). */
  get scale(): { mul: number; shift: number } {
    return { mul: this.#mul, shift: this.#shift };
  }

  handles(msr: number): boolean {
    return msr === MSR_KVM_SYSTEM_TIME_NEW || msr === MSR_KVM_WALL_CLOCK_NEW || msr === MSR_KVM_SYSTEM_TIME ||
      msr === MSR_KVM_WALL_CLOCK;
  }

  read(cpu: number, msr: number): bigint | undefined {
    switch (msr) {
      case MSR_KVM_SYSTEM_TIME_NEW:
      case MSR_KVM_SYSTEM_TIME:
        return this.#systemTime.get(cpu)?.msr ?? 0n;
      case MSR_KVM_WALL_CLOCK_NEW:
      case MSR_KVM_WALL_CLOCK:
        return this.#wallMsr;
      default:
        return undefined;
    }
  }

  write(cpu: number, msr: number, value: bigint): boolean {
    value = BigInt.asUintN(64, value);
    switch (msr) {
      case MSR_KVM_SYSTEM_TIME_NEW:
      case MSR_KVM_SYSTEM_TIME: {
        const st = this.#systemTime.get(cpu) ?? { msr: 0n, version: 0 };
        st.msr = value;
        this.#systemTime.set(cpu, st);
        if (value & 1n) this.#writeTimeInfo(cpu, st);
        return true;
      }
      case MSR_KVM_WALL_CLOCK_NEW:
      case MSR_KVM_WALL_CLOCK:
        this.#wallMsr = value;
        this.#writeWallClock(value);
        return true;
      default:
        return false;
    }
  }

  /** Rewrite every enabled time-info area (after a snapshot restore or a clock jump). */
  refresh(): void {
    for (const [cpu, st] of this.#systemTime) if (st.msr & 1n) this.#writeTimeInfo(cpu, st);
  }

  /** Forget all MSR values (system_reset). */
  reset(): void {
    this.#systemTime.clear();
    this.#wallMsr = 0n;
    this.#wallVersion = 0;
  }

  /** Snapshot: per-CPU MSR values and version counters, the wall-clock MSR (QEMU's kvmclock vmstate). */
  saveState(): DeviceState {
    return {
      version: 1,
      systemTime: [...this.#systemTime].map(([cpu, st]) => ({
        cpu,
        msr: st.msr.toString(),
        version: st.version,
      })),
      wallMsr: this.#wallMsr.toString(),
      wallVersion: this.#wallVersion,
    };
  }

  loadState(state: DeviceState): void {
    if (state?.version !== 1) {
      throw new StateError(`Invalid kvmclock state: unsupported version "${String(state?.version)}"`);
    }
    const dec = (v: unknown, name: string): bigint => {
      if (typeof v !== "string" || !/^\d+$/.test(v) || BigInt(v) >= 1n << 64n) {
        throw new StateError(`Invalid kvmclock state: "${name}" is not a 64-bit decimal`);
      }
      return BigInt(v);
    };
    const u32 = (v: unknown, name: string): number => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new StateError(`Invalid kvmclock state: "${name}" is not a 32-bit unsigned integer`);
      }
      return v;
    };
    const list = state.systemTime;
    if (!Array.isArray(list) || list.length > 256) {
      throw new StateError('Invalid kvmclock state: "systemTime"');
    }
    const st = list.map((e) => ({
      cpu: u32(e?.cpu, "cpu"),
      msr: dec(e?.msr, "msr"),
      version: u32(e?.version, "version"),
    }));
    const wallMsr = dec(state.wallMsr, "wallMsr"), wallVersion = u32(state.wallVersion, "wallVersion");
    this.#systemTime.clear();
    for (const e of st) this.#systemTime.set(e.cpu, { msr: e.msr, version: e.version });
    this.#wallMsr = wallMsr;
    this.#wallVersion = wallVersion;
  }

  /** Guest TSC now (TSC = now_ns × tscKhz / 1e6). */
  #tscNow(now: number): bigint {
    return (BigInt(Math.floor(now)) * BigInt(this.#tscKhz)) / 1_000_000n;
  }

  #writeTimeInfo(cpu: number, st: { msr: bigint; version: number }): void {
    const gpa = st.msr & ~1n;
    const mem = this.#mem;
    if (gpa > BigInt(Number.MAX_SAFE_INTEGER) || !mem.isRam(Number(gpa), PVCLOCK_VCPU_TIME_INFO_SIZE)) {
      this.#log.guestError(this.id, `cpu ${cpu}: system time area 0x${gpa.toString(16)} is outside RAM`);
      return;
    }
    const a = Number(gpa);
    const now = this.#clock.now();
    // pvclock protocol: odd version while updating, even when consistent.
    mem.writeU32(a + PVTI_VERSION, (st.version + 1) >>> 0);
    mem.writeU32(a + 4, 0);
    mem.writeU64(a + PVTI_TSC_TIMESTAMP, this.#tscNow(now));
    mem.writeU64(a + PVTI_SYSTEM_TIME, BigInt(Math.floor(now)));
    mem.writeU32(a + PVTI_TSC_TO_SYSTEM_MUL, this.#mul);
    mem.writeU8(a + PVTI_TSC_SHIFT, this.#shift & 0xff);
    mem.writeU8(a + PVTI_FLAGS, PVCLOCK_TSC_STABLE_BIT);
    mem.writeU16(a + 30, 0);
    st.version = (st.version + 2) >>> 0;
    mem.writeU32(a + PVTI_VERSION, st.version);
  }

  #writeWallClock(value: bigint): void {
    const mem = this.#mem;
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || !mem.isRam(Number(value), PVCLOCK_WALL_CLOCK_SIZE)) {
      this.#log.guestError(this.id, `wall clock area 0x${value.toString(16)} is outside RAM`);
      return;
    }
    const a = Number(value);
    // The boot time: wall-clock time at kvmclock 0 (KVM: real time minus kvmclock).
    const ms = Math.floor(this.#wallClockMs);
    const sec = Math.floor(ms / 1000);
    const nsec = (ms - sec * 1000) * 1_000_000;
    mem.writeU32(a, (this.#wallVersion + 1) >>> 0);
    mem.writeU32(a + 4, sec >>> 0);
    mem.writeU32(a + 8, nsec >>> 0);
    this.#wallVersion = (this.#wallVersion + 2) >>> 0;
    mem.writeU32(a, this.#wallVersion);
  }
}

/**
 * Multiplier and shift converting `baseHz` ticks to `scaledHz` units as pvclock does:
 * scaled = ((ticks << shift) × mul) >> 32 (shift may be negative). Same algorithm as KVM's kvm_get_time_scale.
 */
export function pvclockScale(scaledHz: number, baseHz: number): { mul: number; shift: number } {
  let tps64 = BigInt(Math.floor(baseHz));
  let scaled64 = BigInt(Math.floor(scaledHz));
  let shift = 0;
  const HI = 0xffffffff00000000n;
  if (tps64 <= 0n || scaled64 <= 0n) return { mul: 0, shift: 0 };
  while (tps64 > scaled64 * 2n || (tps64 & HI) !== 0n) {
    tps64 >>= 1n;
    shift--;
  }
  let tps32 = tps64;
  while (tps32 <= scaled64 || (scaled64 & HI) !== 0n) {
    if ((scaled64 & HI) !== 0n || (tps32 & 0x80000000n) !== 0n) scaled64 >>= 1n;
    else tps32 <<= 1n;
    shift++;
  }
  const mul = (scaled64 << 32n) / tps32;
  return { mul: Number(mul & 0xffffffffn), shift };
}
