/**
 * The accelerator interface: what the board hands a CPU engine (software CPU, KVM, qtest) and what
 * the engine hands back. Devices never see any of this (STYLE.md §2.5).
 * @module
 */
import type { Clock, GuestMemory, IrqLine, MsiSink } from "./types.ts";

/** Port I/O as the CPU issues it: dispatch through the "I/O" address space (hooks included). */
export interface IoBus {
  read(port: number, size: 1 | 2 | 4): number;
  write(port: number, size: 1 | 2 | 4, value: number): void;
}

/** MMIO (non-RAM physical accesses) as the CPU issues it; 8-byte accesses are split by the CPU into two 4-byte ones. */
export interface MmioBus {
  read(addr: number, size: 1 | 2 | 4): number;
  write(addr: number, size: 1 | 2 | 4, value: number): void;
}

/**
 * The CPU's fast path to RAM and ROM: one backing byte array and a page map.
 * Rebuilt only when the memory topology changes (`generation` increments; flush TLBs then).
 */
export interface PhysMap {
  /** Backing store of all RAM and ROM pages (zero-copy guest RAM). */
  readonly u8: Uint8Array;
  /** Byte offset in `u8` of the 4 KiB guest-physical page `gpn` (= gpa / 4096), or -1 for MMIO/unassigned. */
  pageBase(gpn: number): number;
  /** True if page `gpn` is ROM (writes are dropped). */
  isReadOnly(gpn: number): boolean;
  /** Increments whenever the mapping changes. */
  readonly generation: number;
}

/** The 16 general registers in x86 encoding order: the keys of CpuEntryState.regs and CpuRegisters.gpr besides rip and rflags. */
export const GPR_NAMES: readonly string[] = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
];

/** A segment register as loaded: selector plus hidden descriptor cache. `attrs` = VMX access-rights layout: type|S|DPL|P in bits 0..7, AVL|L|D/B|G in bits 12..15 (descriptor bits 40..55). */
export interface SegmentState {
  selector: number;
  base: number;
  limit: number;
  attrs: number;
}

/** A full architectural entry state written by a boot loader (PVH 32-bit or Linux 64-bit boot protocol). */
export interface CpuEntryState {
  /** 64-bit registers as bigint (cold path). Keys: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags. */
  regs: Record<string, bigint>;
  cs: SegmentState;
  ds: SegmentState;
  es: SegmentState;
  ss: SegmentState;
  fs: SegmentState;
  gs: SegmentState;
  tr: SegmentState;
  ldtr: SegmentState;
  gdt: { base: number; limit: number };
  idt: { base: number; limit: number };
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  efer: bigint;
}

/**
 * Per-vCPU interrupt controller as the software CPU sees it (devices/lapic.ts implements it).
 * Under KVM the in-kernel LAPIC plays this role and this object is not used.
 */
export interface LocalApicPort {
  readonly apicId: number;
  /** True when an interrupt (fixed/ExtINT) can be delivered given TPR/PPR; the CPU still checks IF. */
  hasInterrupt(): boolean;
  /** Accept the highest-priority pending interrupt (IRR→ISR, or PIC INTA for ExtINT); returns the vector, or -1 (spurious handled inside). */
  acknowledge(): number;
  /** NMI pending (consumed by this call). */
  takeNmi(): boolean;
  /** INIT / SIPI requests for this CPU (consumed by the call): -1 none, -2 INIT, else SIPI vector 0..255. */
  takeStartup(): number;
  /** xAPIC MMIO at 0xfee00000 (offset within the 4 KiB page). */
  mmioRead(offset: number): number;
  mmioWrite(offset: number, value: number): void;
  /** x2APIC MSRs 0x800-0x8ff, IA32_APIC_BASE (0x1b), IA32_TSC_DEADLINE (0x6e0). Values as bigint (cold). undefined → #GP. */
  readMsr(msr: number): bigint | undefined;
  /** Returns false → #GP. */
  writeMsr(msr: number, value: bigint): boolean;
  /** The APIC page is enabled (APIC_BASE bit 11) and the base address in use. */
  readonly baseAddress: number;
  reset(): void;
}

/** Model-specific registers implemented outside the CPU (kvmclock). Consulted before the CPU's own MSRs. */
export interface MsrHandler {
  handles(msr: number): boolean;
  /** undefined → #GP. */
  read(cpu: number, msr: number): bigint | undefined;
  /** false → #GP. */
  write(cpu: number, msr: number, value: bigint): boolean;
}

/** Why `run` returned. */
export type RunExit =
  | { kind: "shutdown"; reason: "triple-fault" | "guest-reset" | "guest-shutdown" }
  | { kind: "paused" }
  | { kind: "quit" }
  | { kind: "internal-error"; message: string }
  | DebugExit;

/** A data watchpoint on linear addresses [addr, addr + len). */
export interface DebugWatch {
  /** Linear (guest-virtual) address; canonical 64-bit addresses as signed numbers, like the CPU's rip. */
  addr: number;
  len: number;
  type: "write" | "read" | "access";
}

/**
 * What a debugger (the gdbstub) asks of an accelerator. Breakpoints are kept by the accelerator (guest memory is
 * never patched) and match the linear address of the next instruction, before it runs.
 */
export interface DebugSettings {
  /** Linear addresses of instruction breakpoints (signed numbers, like the CPU's rip). */
  breakpoints: readonly number[];
  watchpoints: readonly DebugWatch[];
  /**
   * vCPU to single-step, or -1: `run()` executes one instruction on that vCPU only (the others stay stopped;
   * interrupts and timers are masked unless the vCPU is halted) and returns a "debug" exit with reason "step".
   */
  singleStep: number;
}

/** `run()` stopped for the debugger: before a breakpoint, after a watched access or after a single step. */
export interface DebugExit {
  kind: "debug";
  cpu: number;
  reason: "breakpoint" | "watchpoint" | "step";
  /** The watchpoint that fired (reason "watchpoint"). */
  watch?: DebugWatch;
}

/** The register file a debugger reads and writes (shell/gdbstub lays it out as gdb's i386-64bit). */
export interface DebugRegisters {
  /** 16 general registers in GPR_NAMES order. */
  gpr: bigint[];
  rip: bigint;
  rflags: bigint;
  /** Selectors of es, cs, ss, ds, fs, gs. */
  sel: number[];
  fsBase: bigint;
  gsBase: bigint;
  kernelGsBase: bigint;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  fcw: number;
  fsw: number;
  /** Abridged tag byte (FXSAVE layout: bit i set = physical register i valid). */
  ftw: number;
  /** ST(0)..ST(7), 10 bytes each (80-bit extended, little-endian), stack order. */
  st: Uint8Array;
  /** XMM0..XMM15, 16 bytes each, little-endian. */
  xmm: Uint8Array;
  mxcsr: number;
  halted: boolean;
}

/**
 * A guest write the accelerator may complete without a CPU exit (KVM ioeventfd; QEMU's virtio host
 * notifier): exactly `size` bytes of `value` written at MMIO address `addr`. Other values or sizes at the
 * same address still exit. `ring()` runs later, on the device thread, and does what that write does.
 */
export interface Doorbell {
  readonly addr: number;
  readonly size: 1 | 2 | 4;
  readonly value: number;
  ring(): void;
}

/** The doorbells a board offers (fixed at init) and whether they may bypass dispatch right now. */
export interface DoorbellSource {
  list(): readonly Doorbell[];
  /**
   * False while the writes must exit and go through dispatch (a plugin hook is installed: STYLE.md §2.4).
   * Read between run slices, before the guest runs again.
   */
  readonly enabled: boolean;
}

/** Lines into an in-kernel interrupt controller (KVM kernel-irqchip=on), one per GSI. */
export interface KernelIrqLines {
  /** A level line into GSI `gsi` (KVM_IRQ_LINE). */
  line(gsi: number): IrqLine;
  /** An edge line into GSI `gsi` (KVM irqfd): every set(true) is one interrupt, set(false) does nothing. */
  pulse(gsi: number): IrqLine;
}

/** Everything an accelerator needs from the board. */
export interface AccelBoard {
  readonly io: IoBus;
  readonly mmio: MmioBus;
  readonly phys: PhysMap;
  readonly ram: GuestMemory;
  readonly clock: Clock;
  /** Destination of IOAPIC/MSI messages: the accelerator's interrupt fabric. Filled in by the accelerator. */
  msi: MsiSink | null;
  readonly ncpus: number;
  /** One per vCPU for the software CPU. */
  readonly lapics: readonly LocalApicPort[];
  /** `-cpu` model name and +/- feature list as given. */
  readonly cpuModel: string;
  readonly cpuFeatures: ReadonlyArray<{ name: string; on: boolean }>;
  /** Extra MSRs (kvmclock). */
  readonly msrHandlers: readonly MsrHandler[];
  /** Guest TSC frequency in kHz; TSC = clock.now() ns × tscKhz / 1e6. Advertised in CPUID 0x15/0x16/0x40000010. */
  readonly tscKhz: number;
  /** Optional: writes the accelerator may complete in the kernel (virtio-mmio QueueNotify with ioeventfd=on). */
  readonly doorbells?: DoorbellSource;
  /**
   * Optional: an accelerator with an in-kernel PIC/IOAPIC hands the board its GSI lines; the board then
   * drives those instead of its own interrupt controllers (null hands them back).
   */
  useKernelIrqchip?(lines: KernelIrqLines | null): void;
}

/** A general-register snapshot for `info registers`, the differential tester and KVM cross-checks. */
export interface CpuRegisters {
  /** rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rip rflags as bigint. */
  gpr: Record<string, bigint>;
  seg: Record<"es" | "cs" | "ss" | "ds" | "fs" | "gs" | "ldt" | "tr", SegmentState>;
  gdt: { base: number; limit: number };
  idt: { base: number; limit: number };
  cr: { cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint };
  efer: bigint;
  halted: boolean;
}

/** An execution engine: "tcg" (software CPU), "kvm", or "qtest" (no CPU). */
export interface Accelerator {
  readonly name: "tcg" | "kvm" | "qtest";
  /** Set up vCPUs with the boot loader's entry state for the BSP; APs wait for INIT/SIPI. */
  init(board: AccelBoard, entry: CpuEntryState): void;
  /** Run until shutdown, pause or quit. Yields to the event loop regularly so host I/O keeps flowing. */
  run(): Promise<RunExit>;
  /** Ask a running `run()` to return { kind: "paused" } soon (safe from any callback). */
  requestStop(): void;
  /** Registers of vCPU `index` (while paused, or a consistent recent copy). */
  registers(index: number): CpuRegisters;
  /** Put every vCPU back to the entry state (system_reset). */
  reset(entry: CpuEntryState): void;
  /** Release host resources (fds, workers). */
  destroy(): void;
  /** Breakpoints, watchpoints and single-step (gdbstub); null turns debugging off. Called while stopped. */
  setDebug?(d: DebugSettings | null): void;
  /** Why `d` cannot be armed (hardware limits: KVM's four debug registers), or null; absent: no limits. */
  checkDebug?(d: DebugSettings): string | null;
  /** Full register file of vCPU `index` for the debugger (while stopped). */
  debugRegisters?(index: number): DebugRegisters;
  /** Write back a register file read with debugRegisters (while stopped). */
  setDebugRegisters?(index: number, r: DebugRegisters): void;
  /** Snapshot: every vCPU's architectural state as plain data (while stopped). */
  saveState?(): unknown;
  /** Restore what saveState returned; throws StateError (vCPUs untouched) on a bad record. */
  loadState?(state: unknown): void;
  /**
   * Live migration: track guest writes in `bits` (one byte per backing page, set to 1 when written), or stop
   * tracking with null. Device DMA is tracked by GuestRam itself.
   */
  setDirtyLog?(bits: Uint8Array | null): void;
}
