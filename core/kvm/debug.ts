/**
 * Guest debugging under KVM (the gdbstub's `setDebug`): KVM_SET_GUEST_DEBUG with the four x86 debug
 * registers for breakpoints (exec) and write/access watchpoints, single-step with interrupts blocked
 * (KVM_GUESTDBG_BLOCKIRQ), and the KVM_EXIT_DEBUG decoding. Applied to vCPU 0 only: the APs run in
 * Workers whose exits are forwarded without a debug channel.
 * @module
 */
import type { DebugExit, DebugSettings, DebugWatch } from "../accel.ts";
import { KVM_GUEST_DEBUG_SIZE, KVM_SET_GUEST_DEBUG } from "./kvm_api.ts";
import type { Libc } from "./ffi.ts";

const GUESTDBG_ENABLE = 0x1,
  GUESTDBG_SINGLESTEP = 0x2,
  GUESTDBG_USE_HW_BP = 0x20000,
  GUESTDBG_BLOCKIRQ = 0x100000;
/** kvm_run.debug.arch offsets: exception u32, pad, pc u64, dr6 u64, dr7 u64. */
const RUN_DEBUG_DR6 = 48;

/** What x86 debug registers can do: 4 slots; watchpoints of 1, 2, 4 or 8 aligned bytes, no read-only. */
export function kvmDebugFits(d: DebugSettings): string | null {
  if (d.breakpoints.length + d.watchpoints.length > 4) {
    return "at most 4 breakpoints and watchpoints under KVM";
  }
  for (const w of d.watchpoints) {
    if (w.type === "read") return "read watchpoints are not supported under KVM";
    if (![1, 2, 4, 8].includes(w.len) || w.addr % w.len !== 0) {
      return "watchpoint length must be 1, 2, 4 or 8 (aligned)";
    }
  }
  return null;
}

/** The armed debug state of vCPU 0. */
export class KvmDebug {
  readonly settings: DebugSettings;
  readonly #slots: Array<{ bp: true } | { bp: false; watch: DebugWatch }> = [];

  constructor(d: DebugSettings) {
    this.settings = d;
    for (const _ of d.breakpoints) this.#slots.push({ bp: true });
    for (const w of d.watchpoints) this.#slots.push({ bp: false, watch: w });
  }

  /** Issue KVM_SET_GUEST_DEBUG on vCPU `fd` (vCPU 0; `step` when single-stepping it). Throws on failure. */
  apply(libc: Libc, fd: number, step: boolean): void {
    const b = new Uint8Array(KVM_GUEST_DEBUG_SIZE);
    const dv = new DataView(b.buffer);
    const d = this.settings;
    let control = GUESTDBG_ENABLE;
    if (step) control |= GUESTDBG_SINGLESTEP | GUESTDBG_BLOCKIRQ;
    let dr7 = 0x600n; // GE and the always-one bit, as QEMU sets them
    const addrs = [...d.breakpoints, ...d.watchpoints.map((w) => w.addr)].slice(0, 4);
    addrs.forEach((a, n) => {
      const w = n < d.breakpoints.length ? null : d.watchpoints[n - d.breakpoints.length];
      const type = w === null ? 0n : w.type === "write" ? 1n : 3n;
      const len = w === null ? 0n : [0n, 0n, 1n, 0n, 3n, 0n, 0n, 0n, 2n][w.len];
      dv.setBigUint64(8 + 8 * n, BigInt.asUintN(64, BigInt(a)), true);
      dr7 |= (2n << BigInt(n * 2)) | (type << BigInt(16 + n * 4)) | (len << BigInt(18 + n * 4));
    });
    if (addrs.length) control |= GUESTDBG_USE_HW_BP;
    dv.setUint32(0, control, true);
    dv.setBigUint64(8 + 8 * 7, dr7, true);
    if (libc.ioctlBuf(fd, KVM_SET_GUEST_DEBUG, b) < 0) {
      throw new Error(`KVM_SET_GUEST_DEBUG failed: ${libc.strerror(libc.errno())}`);
    }
  }

  /** Decode KVM_EXIT_DEBUG of vCPU `cpu` from its kvm_run page. */
  exit(run: DataView, cpu: number): DebugExit {
    const dr6 = run.getBigUint64(RUN_DEBUG_DR6, true);
    for (let n = 0; n < this.#slots.length; n++) {
      if (!(dr6 & (1n << BigInt(n)))) continue;
      const s = this.#slots[n];
      if (s.bp) return { kind: "debug", cpu, reason: "breakpoint" };
      return { kind: "debug", cpu, reason: "watchpoint", watch: { ...s.watch } };
    }
    return { kind: "debug", cpu, reason: "step" };
  }

  /** Turn guest debugging off on `fd`. */
  static clear(libc: Libc, fd: number): void {
    libc.ioctlBuf(fd, KVM_SET_GUEST_DEBUG, new Uint8Array(KVM_GUEST_DEBUG_SIZE));
  }
}
