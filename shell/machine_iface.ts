/**
 * The running machine as the monitors see it (HMP, QMP, qtest). The runner (shell/vm.ts) implements
 * `MachineIface`; shell/hmp.ts, shell/qmp.ts and shell/qtest.ts consume only this interface, so they can be
 * tested against a fake machine and never reach into devices.
 *
 * Conventions:
 * - Methods that take user input throw `UserError` (core/types.ts) with QEMU's message; the monitor prints it.
 * - Addresses are guest-physical `number`s (< 2^53). Virtual addresses (`x`, `info mem`) are bigint and are
 *   translated in shell/ (shell/hmp_mem.ts walks the page tables over `memRead`).
 * - Optional members may be left out: the monitor then answers as QEMU does when a feature is unavailable.
 * @module
 */
import type { CpuRegisters } from "../core/accel.ts";
import type { DeviceRegistry } from "../core/config.ts";
import type { MigrationController } from "./migration/migrate.ts";

/** QEMU RunState names (qapi/run-state.json) that this machine can be in. */
export type RunState =
  | "prelaunch"
  | "running"
  | "paused"
  | "shutdown"
  | "internal-error"
  | "debug"
  | "inmigrate"
  | "postmigrate"
  | "finish-migrate";

/** Events the machine emits (QMP event names). */
export type MachineEventName = "STOP" | "RESUME" | "RESET" | "SHUTDOWN" | "MIGRATION";

/**
 * A machine event. `data` is QMP's event data as QEMU sends it:
 * SHUTDOWN/RESET: `{ guest: boolean, reason: "host-qmp-quit" | "host-qmp-system-reset" | "guest-shutdown" |
 * "guest-reset" | "host-signal" | "host-ui" ... }`; STOP/RESUME: none.
 */
export interface MachineEvent {
  event: MachineEventName;
  data?: Record<string, unknown>;
}

/** Extra per-CPU state for `info registers` beyond CpuRegisters; every field defaults to the reset value. */
export interface CpuExtraState {
  /** DR0..DR3, DR6, DR7 (default 0, 0, 0, 0, 0xffff0ff0, 0x400). */
  dr?: { dr0: bigint; dr1: bigint; dr2: bigint; dr3: bigint; dr6: bigint; dr7: bigint };
  /** x87: control, status, top-of-stack, tag byte (1 bit per register as QEMU prints FTW), 8 registers (mantissa, sign+exponent). */
  fpu?: { fcw: number; fsw: number; top: number; ftw: number; st: Array<{ mant: bigint; exp: number }> };
  mxcsr?: number;
  /** XMM/YMM registers as 64-bit lanes, low lane first: [q0, q1] for XMM, [q0, q1, q2, q3] with AVX. */
  vec?: bigint[][];
  /** XCR0 enables AVX state: print YMMnn instead of XMMnn. */
  ymm?: boolean;
  /** Interrupt shadow (II=), A20 gate (A20=, default 1), SMM (SMM=, default 0). */
  interruptShadow?: boolean;
  a20?: boolean;
  smm?: boolean;
}

/** One vCPU as `info cpus`, `query-cpus-fast` and `info registers` see it. */
export interface CpuView {
  index: number;
  /** Host thread id QEMU prints (a stable fake such as process id + index is fine). */
  threadId: number;
  /** QOM path, e.g. "/machine/unattached/device[0]". */
  qomPath: string;
  /** Registers (while paused or a consistent recent copy). */
  registers(): CpuRegisters;
  /** Optional extra state; missing fields print reset values. */
  extra?(): CpuExtraState;
}

/** A QOM property as qom-list/qom-get/qom-set and `info qtree` show it. */
export interface QomProp {
  name: string;
  /** QOM type string: "bool", "uint32", "string", "child<...>", "link<...>". */
  type: string;
  description?: string;
  /** Current value (JSON-compatible); undefined when not readable. */
  value?: unknown;
  /** Set handler; absent means read-only (qom-set answers "Property 'X.Y' is not writable"... as QEMU). */
  set?(value: unknown): void;
}

/** One QOM object: path like "/machine/peripheral-anon/device[0]". */
export interface QomObject {
  path: string;
  /** QOM type name: "microvm-machine", "virtio-blk-device", "container". */
  type: string;
  props: QomProp[];
}

/** The balloon as QMP `balloon`/`query-balloon` and HMP `balloon`/`info balloon` drive it. */
export interface BalloonControl {
  /** Ask the guest to shrink or grow to `bytes` of RAM. */
  setTarget(bytes: number): void;
  /** Guest RAM in bytes as the driver last reported it. */
  readonly actualBytes: number;
}

/** One line of `info chardev` / `query-chardev`. */
export interface ChardevView {
  label: string;
  /** QEMU's filename: "stdio", "unix:/tmp/m.sock,server=on", "disconnected:unix:...". */
  filename: string;
  /** query-chardev frontend-open: a frontend (device or monitor) has the chardev open. */
  frontendOpen: boolean;
}

/** One block device (`info block` / `query-block`). */
export interface BlockView {
  /** Drive id ("test"). */
  device: string;
  /** Node name as QEMU shows "#block116"; any stable string. */
  nodeName: string;
  file: string;
  format: "raw" | "qcow2";
  readOnly: boolean;
  /** QOM path of the attached device, e.g. "/machine/peripheral-anon/device[0]" (omitted if unattached). */
  attachedTo?: string;
  /** cache=: writeback, direct, no-flush as VmConfig DriveConfig.cache. */
  cache: { writeback: boolean; direct: boolean; noFlush: boolean };
  /** Image size in bytes. */
  size: number;
  /** qcow2 backing file, if any. */
  backingFile?: string;
}

/** Handle returned by the IRQ intercept calls; call `release()` when the qtest client goes away. */
export interface IrqIntercept {
  release(): void;
}

/** The virtual clock as qtest drives it (`-accel qtest` uses manual mode). */
export interface MonitorClock {
  readonly mode: "host" | "manual";
  /** Virtual time in ns. */
  now(): number;
  /** Advance by ns firing timers (manual mode); throws UserError in host mode. */
  step(ns: number): void;
  /** Advance to ns (never backwards) firing timers (manual mode). */
  set(ns: number): void;
  /** Earliest armed timer deadline (Infinity when none): qtest `clock_step` with no argument steps to it. */
  nextDeadline(): number;
}

/** One -netdev user stack as the monitor drives it (core/host/slirp.ts SlirpBackend). */
export interface UsernetView {
  readonly id: string;
  /** @throws UserError with QEMU's message */
  hostfwdAdd(rule: string): void;
  /** QEMU's reply line without the newline. */
  hostfwdRemove(spec: string): string;
  /** libslirp's connection table. */
  connectionInfo(): string;
}

/**
 * The running machine as a monitor sees it. Implemented by the runner (shell/vm.ts).
 *
 * @example
 * ```ts
 * import { startMonitor } from "./monitor_server.ts";
 * // runner: VmRunner implements MachineIface; chr: a HostChar from core/host/chardev.ts
 * // startMonitor("hmp", runner, chr);
 * ```
 */
export interface MachineIface {
  // --- identity ---------------------------------------------------------------------------------------
  /** -name value, or undefined. */
  readonly name: string | undefined;
  /** -uuid (canonical text); undefined means QEMU's all-zero UUID. */
  readonly uuid?: string | undefined;
  /**
   * QEMU's "package" string (QMP query-version `package`); `info version` prints "7.2.0" immediately followed
   * by it, so it should start with a space: " (microvm.ts 0.1.0)". (A value that already starts with "7.2.0"
   * is printed as is.)
   */
  readonly versionPackage: string;
  /** "tcg" | "kvm" | "qtest". */
  readonly accel: "tcg" | "kvm" | "qtest";
  /** Guest RAM size in bytes. */
  readonly ramSize: number;

  // --- lifecycle --------------------------------------------------------------------------------------
  readonly runState: RunState;
  /** Pause vCPUs (no-op if not running); emits STOP. */
  stop(): void;
  /** Resume (from prelaunch/paused); emits RESUME. Throws UserError in "shutdown"/"internal-error" as QEMU: "Resetting the Virtual Machine is required". */
  cont(): void;
  /** system_reset; emits RESET {guest:false, reason:"host-qmp-system-reset"}. */
  systemReset(): void;
  /** quit: exit the process after the monitor answered; emits SHUTDOWN {guest:false, reason:"host-qmp-quit"}. */
  quit(): void;
  /** Subscribe to events; returns an unsubscribe function. */
  on(cb: (ev: MachineEvent) => void): () => void;

  // --- CPUs -------------------------------------------------------------------------------------------
  cpus(): CpuView[];

  // --- memory (all through the `memory` address space: MMIO reaches devices, hooks see the access) ----
  /**
   * Read `len` bytes of guest-physical memory; unassigned bytes read 0xff. Never throws for a bad address.
   * Like QEMU's address_space_read, MMIO is read with the widest aligned accesses the region accepts (a 16-byte
   * read of virtio-mmio is four 4-byte register reads, not sixteen 1-byte ones). Used by pmemsave, qtest
   * read/b64read and page walks; `xp`/`x` dumps use memReadN per unit.
   */
  memRead(addr: number, len: number): Uint8Array;
  /** Write bytes to guest-physical memory (RAM or MMIO; writes to unassigned space are dropped). */
  memWrite(addr: number, data: Uint8Array): void;
  /** One MMIO-or-RAM access of 1, 2 or 4 bytes (little-endian), as the CPU would issue it. */
  memReadN(addr: number, size: 1 | 2 | 4): number;
  memWriteN(addr: number, size: 1 | 2 | 4, value: number): void;
  /** Port I/O through the "I/O" address space. */
  ioRead(port: number, size: 1 | 2 | 4): number;
  ioWrite(port: number, size: 1 | 2 | 4, value: number): void;

  // --- clock & interrupts (qtest) ---------------------------------------------------------------------
  readonly clock: MonitorClock;
  /**
   * Intercept the input GPIO lines of a device (qtest irq_intercept_in): QOM path such as "ioapic" or
   * "/machine/ioapic". `cb(line, level)` is called on every change. Throws UserError for an unknown path
   * ("Could not find device ..."); the caller turns it into "FAIL".
   */
  interceptIrqIn?(path: string, cb: (line: number, level: boolean) => void): IrqIntercept;
  /** Intercept the output GPIO lines of a device (qtest irq_intercept_out). */
  interceptIrqOut?(path: string, cb: (line: number, level: boolean) => void): IrqIntercept;
  /** Drive input line `line` of GPIO list `name` ("" = unnamed) of a device (qtest set_irq_in). */
  setIrqIn?(path: string, name: string, line: number, level: boolean): void;

  // --- devices ----------------------------------------------------------------------------------------
  /** The `-device` drivers device_add knows (same registry as the command line). */
  readonly deviceTypes: DeviceRegistry;
  /** device_add: only in runState "prelaunch" (QEMU: "Bus 'virtio-mmio-bus.N' does not support hotplugging"). Returns the QOM path. */
  deviceAdd(driver: string, props: Record<string, string>, id?: string): string;
  /** device_del by id or QOM path (throws UserError: "Device 'x' not found", or hotplug refusal). */
  deviceDel(id: string): void;

  // --- introspection text (QEMU formats; the board renders them) --------------------------------------
  /** `info mtree` / `info mtree -f`. */
  infoMtree(flat: boolean): string;
  /** `info qtree`. */
  infoQtree(): string;
  /** QOM composition tree for qom-list/qom-get/qom-set and qom-list-types. */
  qomObjects(): QomObject[];
  chardevs(): ChardevView[];
  blocks(): BlockView[];
  /** `info network` text (empty string when there is no NIC). */
  infoNetwork?(): string;
  /** The -netdev ids (hostfwd_add tells an unknown id from a non-user one). */
  netdevIds?(): string[];
  /** The user-mode (-netdev user) networks, in creation order. */
  usernets?(): UsernetView[];
  /** `info pic` text (PIC pair, then IOAPIC). */
  infoPic?(): string;
  /** `info jit` text (software CPU). */
  infoJit?(): string;
  /** `info irq` text. */
  infoIrq?(): string;
  /** `info lapic [apic-id]` text for vCPU `cpu`. */
  infoLapic?(cpu: number): string;
  /** `info roms` text. */
  infoRoms?(): string;
  /** The virtio-balloon device, or null when there is none. */
  balloon?(): BalloonControl | null;

  // --- plugins ----------------------------------------------------------------------------------------
  /** The plugin manager (plugins/loader.ts) as the monitor uses it; absent when plugins are unavailable. */
  plugins?: {
    /** `info plugins` text. */
    info(): string;
    /** `plugin_load PATH [args]`: starts loading; the outcome is printed when the module has loaded. */
    load(line: string): void;
    /** `plugin_unload NAME`: text to print (empty on success). */
    unload(name: string): string;
    /** A monitor command a plugin added: its output, or null if no plugin owns `name`. */
    command(name: string, args: string[]): string | null;
  };

  // --- debugging ------------------------------------------------------------------------------------
  /** HMP `gdbserver [DEV|none]`: start (or stop) the gdb server; returns the line QEMU prints. */
  gdbserver?(device: string | undefined): string;
  // --- migration -------------------------------------------------------------------------------------
  /** migrate, migrate-incoming, query-migrate… (shell/migration/); absent without a runner. */
  migration?: MigrationController;

  // --- logging ----------------------------------------------------------------------------------------
  /** Enable exactly these -d items (`log guest_errors,unimp`; `log none` passes []); names are checked against LOG_ITEMS (shell/cli/help.ts) first. */
  setLogItems(items: string[]): void;
  /** `logfile PATH`: redirect -d output. */
  setLogFile(path: string): void;
}
