/**
 * KVM vCPU and VM state as plain data, for snapshots and migration: per vCPU KVM_GET/SET_REGS, SREGS,
 * XSAVE (or FPU), XCRS, a list of MSRs, MP state, the in-kernel LAPIC page and VCPU_EVENTS; on the VM
 * KVM_GET/SET_CLOCK. Records hold raw kernel structs as Uint8Array (the layout is the kernel ABI) and the
 * MSRs as index/value pairs. `loadKvmState` validates everything before the first SET ioctl.
 * @module
 */
import { StateError } from "../types.ts";
import type { Libc } from "./ffi.ts";
import { SysError } from "./ffi.ts";
import * as K from "./kvm_api.ts";
import type { KvmVcpu } from "./vcpu.ts";

/** struct kvm_fpu, kvm_xsave (legacy 4 KiB), kvm_xcrs, kvm_clock_data sizes. */
export const SIZE_FPU = 416;
export const SIZE_XSAVE = 4096;
export const SIZE_XCRS = 392;
export const SIZE_CLOCK = 48;
const ioc = (dir: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (0xae << 8) | nr) >>> 0;
export const KVM_GET_FPU = ioc(2, 0x8c, SIZE_FPU);
export const KVM_SET_FPU = ioc(1, 0x8d, SIZE_FPU);
export const KVM_GET_XSAVE = ioc(2, 0xa4, SIZE_XSAVE);
export const KVM_SET_XSAVE = ioc(1, 0xa5, SIZE_XSAVE);
export const KVM_GET_XCRS = ioc(2, 0xa6, SIZE_XCRS);
export const KVM_SET_XCRS = ioc(1, 0xa7, SIZE_XCRS);
export const KVM_GET_CLOCK = ioc(2, 0x7c, SIZE_CLOCK);
export const KVM_SET_CLOCK = ioc(1, 0x7b, SIZE_CLOCK);
export const KVM_CAP_ADJUST_CLOCK = 39;
export const KVM_CAP_XSAVE = 55;
export const KVM_CAP_XCRS = 56;

/**
 * MSRs worth carrying (QEMU's kvm_put_msrs set, trimmed to what a microvm guest uses), filtered by
 * KVM_GET_MSR_INDEX_LIST. APIC base first: KVM_SET_LAPIC reads the ID in the mode it selects.
 */
export const SAVED_MSRS: readonly number[] = [
  0x1b, // IA32_APIC_BASE
  0x10, // TSC
  0x3b, // TSC_ADJUST
  0x6e0, // TSC_DEADLINE
  0x174, // SYSENTER_CS
  0x175, // SYSENTER_ESP
  0x176, // SYSENTER_EIP
  0x277, // PAT
  0x1a0, // MISC_ENABLE
  0xc0000080, // EFER
  0xc0000081, // STAR
  0xc0000082, // LSTAR
  0xc0000083, // CSTAR
  0xc0000084, // FMASK
  0xc0000102, // KERNEL_GS_BASE
  0xc0000103, // TSC_AUX
  0x4b564d00, // kvmclock wall clock
  0x4b564d01, // kvmclock system time
  0x4b564d02, // async PF
  0x4b564d03, // steal time
  0x4b564d04, // PV EOI
  0x11, // old kvmclock wall clock
  0x12, // old kvmclock system time
];

/** One vCPU. */
export interface KvmVcpuState {
  regs: Uint8Array;
  sregs: Uint8Array;
  /** kvm_xsave when the host has KVM_CAP_XSAVE, else kvm_fpu. */
  xsave: Uint8Array | null;
  fpu: Uint8Array | null;
  xcrs: Uint8Array | null;
  msrIndex: number[];
  msrValue: bigint[];
  mpState: number;
  /** kvm_lapic_state (in-kernel LAPIC), or null under kernel-irqchip=off. */
  lapic: Uint8Array | null;
  events: Uint8Array;
}

/** The whole accelerator. */
export interface KvmState {
  kind: "kvm";
  ncpus: number;
  /** kvm_clock_data (KVM_GET_CLOCK), or null without KVM_CAP_ADJUST_CLOCK. */
  clock: Uint8Array | null;
  cpus: KvmVcpuState[];
}

/** What the accelerator hands these functions. */
export interface KvmStateHost {
  libc: Libc;
  sysFd: number;
  vmFd: number;
  vcpus: readonly KvmVcpu[];
  lapic: boolean;
  hasCap(cap: number): boolean;
}

function check(libc: Libc, call: string, r: number): number {
  if (r < 0) throw new SysError(call, -r, libc.strerror(-r));
  return r;
}

function getBuf(libc: Libc, fd: number, req: number, size: number, call: string): Uint8Array {
  const b = new Uint8Array(size);
  check(libc, call, libc.ioctlBuf(fd, req, b));
  return b;
}

/** KVM_GET_MSR_INDEX_LIST ∩ SAVED_MSRS, in SAVED_MSRS order. */
export function savedMsrList(libc: Libc, sysFd: number): number[] {
  const max = 1024;
  const b = new Uint8Array(4 + 4 * max);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, max, true);
  check(libc, "KVM_GET_MSR_INDEX_LIST", libc.ioctlBuf(sysFd, K.KVM_GET_MSR_INDEX_LIST, b));
  const n = Math.min(dv.getUint32(0, true), max);
  const have = new Set<number>();
  for (let i = 0; i < n; i++) have.add(dv.getUint32(4 + 4 * i, true));
  return SAVED_MSRS.filter((m) => have.has(m));
}

/**
 * Finish the last exit inside KVM (an OUT's RIP advance, an IN's or MMIO read's data) without running the
 * guest: KVM_RUN with immediate_exit set, as the KVM API asks before reading state.
 */
export function completePendingExit(libc: Libc, v: KvmVcpu): void {
  v.runU8[K.RUN.immediate_exit] = 1;
  try {
    libc.ioctl(v.fd, K.KVM_RUN, 0n);
  } finally {
    v.runU8[K.RUN.immediate_exit] = 0;
  }
}

/** Read every vCPU and the VM clock (vCPUs stopped, on this thread). */
export function saveKvmState(h: KvmStateHost): KvmState {
  const { libc } = h;
  const msrs = savedMsrList(libc, h.sysFd);
  const xsave = h.hasCap(KVM_CAP_XSAVE);
  const xcrs = h.hasCap(KVM_CAP_XCRS);
  const cpus = h.vcpus.map((v): KvmVcpuState => {
    completePendingExit(libc, v);
    const got = v.getMsrs(msrs);
    const msrIndex = msrs.filter((m) => got.has(m));
    return {
      regs: getBuf(libc, v.fd, K.KVM_GET_REGS, K.SIZE.kvm_regs, "KVM_GET_REGS"),
      sregs: getBuf(libc, v.fd, K.KVM_GET_SREGS, K.SIZE.kvm_sregs, "KVM_GET_SREGS"),
      xsave: xsave ? getBuf(libc, v.fd, KVM_GET_XSAVE, SIZE_XSAVE, "KVM_GET_XSAVE") : null,
      fpu: xsave ? null : getBuf(libc, v.fd, KVM_GET_FPU, SIZE_FPU, "KVM_GET_FPU"),
      xcrs: xcrs ? getBuf(libc, v.fd, KVM_GET_XCRS, SIZE_XCRS, "KVM_GET_XCRS") : null,
      msrIndex,
      msrValue: msrIndex.map((m) => got.get(m)!),
      mpState: v.mpState(),
      lapic: h.lapic ? v.getLapic() : null,
      events: getBuf(libc, v.fd, K.KVM_GET_VCPU_EVENTS, K.SIZE.kvm_vcpu_events, "KVM_GET_VCPU_EVENTS"),
    };
  });
  const clock = h.hasCap(KVM_CAP_ADJUST_CLOCK)
    ? getBuf(libc, h.vmFd, KVM_GET_CLOCK, SIZE_CLOCK, "KVM_GET_CLOCK")
    : null;
  return { kind: "kvm", ncpus: cpus.length, clock, cpus };
}

function bytes(v: unknown, size: number, what: string, nullable: boolean): Uint8Array | null {
  if (v === null && nullable) return null;
  if (!(v instanceof Uint8Array) || v.length !== size) {
    throw new StateError(`Invalid KVM vCPU state: ${what}`);
  }
  return v;
}

/** Check a record against this VM; returns it typed. Throws StateError, touching nothing. */
export function validateKvmState(h: KvmStateHost, state: unknown): KvmState {
  const s = state as Partial<KvmState> | null;
  if (!s || typeof s !== "object" || s.kind !== "kvm") {
    throw new StateError("Invalid vCPU state: not a KVM record");
  }
  if (s.ncpus !== h.vcpus.length || !Array.isArray(s.cpus) || s.cpus.length !== h.vcpus.length) {
    throw new StateError(`Invalid vCPU state: expected ${h.vcpus.length} vCPUs`);
  }
  bytes(s.clock, SIZE_CLOCK, "clock", true);
  const xsave = h.hasCap(KVM_CAP_XSAVE);
  for (const c of s.cpus as Partial<KvmVcpuState>[]) {
    if (!c || typeof c !== "object") throw new StateError("Invalid KVM vCPU state: not an object");
    bytes(c.regs, K.SIZE.kvm_regs, "regs", false);
    bytes(c.sregs, K.SIZE.kvm_sregs, "sregs", false);
    bytes(c.xsave, SIZE_XSAVE, "xsave", true);
    bytes(c.fpu, SIZE_FPU, "fpu", true);
    if ((c.xsave === null) === (c.fpu === null)) throw new StateError("Invalid KVM vCPU state: xsave/fpu");
    if (c.xsave !== null && !xsave) throw new StateError("Invalid KVM vCPU state: host has no XSAVE");
    bytes(c.xcrs, SIZE_XCRS, "xcrs", true);
    bytes(c.lapic, K.SIZE.kvm_lapic_state, "lapic", true);
    if ((c.lapic !== null) !== h.lapic) {
      throw new StateError("Invalid KVM vCPU state: kernel-irqchip differs");
    }
    bytes(c.events, K.SIZE.kvm_vcpu_events, "events", false);
    if (!Number.isInteger(c.mpState) || c.mpState! < 0 || c.mpState! > 8) {
      throw new StateError("Invalid KVM vCPU state: mp_state");
    }
    if (
      !Array.isArray(c.msrIndex) || !Array.isArray(c.msrValue) || c.msrIndex.length !== c.msrValue.length ||
      c.msrIndex.length > 256 ||
      !c.msrIndex.every((m) => Number.isInteger(m) && m >= 0 && m <= 0xffffffff) ||
      !c.msrValue.every((x) => typeof x === "bigint" && x >= 0n && x < 1n << 64n)
    ) {
      throw new StateError("Invalid KVM vCPU state: MSRs");
    }
  }
  return s as KvmState;
}

/** Apply a record from saveKvmState (in QEMU's order: regs, xsave, xcrs, sregs, MSRs, mp_state, LAPIC, events). */
export function loadKvmState(h: KvmStateHost, state: unknown): void {
  const s = validateKvmState(h, state);
  const { libc } = h;
  s.cpus.forEach((c, i) => {
    const v = h.vcpus[i];
    const set = (req: number, b: Uint8Array, call: string) =>
      check(libc, call, libc.ioctlBuf(v.fd, req, b.slice()));
    // A fresh vCPU may still owe an exit completion from its own run: settle it before overwriting.
    completePendingExit(libc, v);
    set(K.KVM_SET_REGS, c.regs, "KVM_SET_REGS");
    if (c.xsave !== null) set(KVM_SET_XSAVE, c.xsave, "KVM_SET_XSAVE");
    else set(KVM_SET_FPU, c.fpu!, "KVM_SET_FPU");
    if (c.xcrs !== null && h.hasCap(KVM_CAP_XCRS)) set(KVM_SET_XCRS, c.xcrs, "KVM_SET_XCRS");
    set(K.KVM_SET_SREGS, c.sregs, "KVM_SET_SREGS");
    const rejected = v.setMsrsLenient(c.msrIndex.map((index, j) => ({ index, value: c.msrValue[j] })));
    if (rejected.length > 0) {
      throw new StateError(
        `KVM refused MSR${rejected.length > 1 ? "s" : ""} ${
          rejected.map((m) => "0x" + m.toString(16)).join(", ")
        }`,
      );
    }
    if (h.lapic) v.setMpState(c.mpState);
    if (c.lapic !== null) v.setLapic(c.lapic);
    set(K.KVM_SET_VCPU_EVENTS, c.events, "KVM_SET_VCPU_EVENTS");
  });
  if (s.clock !== null && h.hasCap(KVM_CAP_ADJUST_CLOCK)) {
    const b = s.clock.slice();
    new DataView(b.buffer).setUint32(8, 0, true); // flags: set the clock as saved, no realtime adjustment
    check(libc, "KVM_SET_CLOCK", libc.ioctlBuf(h.vmFd, KVM_SET_CLOCK, b));
  }
}
