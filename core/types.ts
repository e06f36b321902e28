/**
 * Contracts shared by every layer: what a device implements, what the board wires,
 * what an accelerator calls. This file names no device and imports nothing.
 *
 * Rules (see ../shared/STYLE.md §2):
 * - Devices get everything through their constructor: `IrqLine`s, a `Clock`, a `GuestMemory`,
 *   host backends (`CharBackend`, `BlockBackend`, `NetBackend`). They never touch `Deno.*`.
 * - Register handlers are synchronous and never throw for guest input.
 * @module
 */

/** Access width in bytes. The dispatcher splits 8-byte accesses for regions that implement at most 4. */
export type AccessSize = 1 | 2 | 4 | 8;

/** Allowed access sizes (QEMU's MemoryRegionOps.valid / .impl). */
export interface AccessRule {
  min: AccessSize;
  max: AccessSize;
  /** Unaligned accesses allowed (default false for `valid`, meaning dispatch treats them as invalid). */
  unaligned?: boolean;
}

/**
 * Callbacks of an I/O region (port or MMIO). `offset` is relative to the region start.
 * Values are unsigned and at most 32 bits wide (`size` 1, 2 or 4); the dispatcher splits wider accesses.
 */
export interface RegionOps {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
  /** What the guest may issue; an access outside it is treated as unassigned (reads all-ones). Default 1..4. */
  valid?: AccessRule;
  /** What these handlers accept; dispatch splits or merges to fit, as QEMU does. Default 1..4. */
  impl?: AccessRule;
}

/** One interrupt output of a device. The device sets a level; the controller decides edge or level. */
export interface IrqLine {
  set(level: boolean): void;
}

/** An IrqLine that goes nowhere (devices whose output is not wired). */
export const NO_IRQ: IrqLine = { set(_level: boolean) {} };

/** A one-shot timer on the machine's virtual clock. */
export interface Timer {
  /** Fire once at `deadlineNs` (virtual ns); re-arming replaces the previous deadline. */
  arm(deadlineNs: number): void;
  cancel(): void;
  readonly armed: boolean;
  readonly deadline: number;
}

/** The machine's one virtual clock, in nanoseconds since machine creation. */
export interface Clock {
  now(): number;
  /** Create a timer whose callback runs from the accelerator's run loop (never re-entrantly in a handler). */
  timer(cb: () => void): Timer;
}

/**
 * Guest physical memory as devices, DMA and boot loaders see it: every access is bounds-checked and
 * reaches RAM only (never MMIO). Methods return false / null on an address outside RAM instead of throwing.
 */
export interface GuestMemory {
  /** Total bytes of guest RAM. */
  readonly size: number;
  /** True when [gpa, gpa+len) lies wholly in RAM. */
  isRam(gpa: number, len: number): boolean;
  /** Copy of guest bytes, or null if not wholly in RAM. */
  read(gpa: number, len: number): Uint8Array | null;
  /** Copy into `dst`; false if not wholly in RAM. */
  readInto(gpa: number, dst: Uint8Array): boolean;
  /** Write bytes; false if not wholly in RAM. */
  write(gpa: number, data: Uint8Array): boolean;
  /** Zero-copy view of [gpa, gpa+len) if contiguous RAM, else null. Do not keep it across machine reset. */
  view(gpa: number, len: number): Uint8Array | null;
  readU8(gpa: number): number;
  readU16(gpa: number): number;
  readU32(gpa: number): number;
  /** 64-bit value as a JS number (exact below 2^53; virtio addresses and lengths fit). Returns -1 out of RAM. */
  readU64(gpa: number): number;
  writeU8(gpa: number, v: number): boolean;
  writeU16(gpa: number, v: number): boolean;
  writeU32(gpa: number, v: number): boolean;
  writeU64(gpa: number, v: number | bigint): boolean;
}

/** Receiver of MSI-style interrupt messages (IOAPIC output, virtio MSI). The accelerator implements it. */
export interface MsiSink {
  /** address: 0xfeeXXXXX MSI address (dest id in bits 19:12, dest mode bit 2); data: vector 7:0, delivery mode 10:8, level 14, trigger 15. */
  sendMsi(address: number, data: number): void;
}

/** Host side of a character device (serial, virtio-console). */
export interface CharBackend {
  /** Guest → host bytes. */
  write(data: Uint8Array): void;
  /** Host → guest: the backend calls `onInput` with bytes; the device calls `accept()` when it has room again. */
  setReceiver(r: CharReceiver | null): void;
  /** True when a host peer is connected (sockets); always true for stdio/file/null. */
  readonly connected: boolean;
  /**
   * The device has room for input again (QEMU qemu_chr_fe_accept_input): the backend should retry delivery
   * soon, never re-entrantly from inside this call. Optional; backends also retry on their own.
   */
  accept?(): void;
}

/** What a device gives its CharBackend to receive input. */
export interface CharReceiver {
  /** How many bytes the device can take now (UART FIFO room). */
  canReceive(): number;
  /** Deliver bytes (at most canReceive()). */
  receive(data: Uint8Array): void;
}

/** A raw disk image. Synchronous calls keep handlers simple; implementations may be async internally. */
export interface BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  /** Read `dst.length` bytes at `offset`; returns false on host I/O error. */
  read(offset: number, dst: Uint8Array): boolean;
  write(offset: number, src: Uint8Array): boolean;
  /** fsync: durable before returning true. */
  flush(): boolean;
  /** Punch/zero a range if supported; false if unsupported or failed. */
  discard?(offset: number, length: number): boolean;
  writeZeroes?(offset: number, length: number): boolean;
  /** Serial / id string for VIRTIO_BLK_T_GET_ID. */
  readonly id: string;
  close(): void;
}

/** A network backend (tap, socket): frames without the virtio-net header unless `vnetHdr` is true. */
export interface NetBackend {
  readonly vnetHdr: boolean;
  send(frame: Uint8Array): boolean;
  /** The device registers to receive frames; `canReceive` lets the backend hold frames while rings are full. */
  setReceiver(r: NetReceiver | null): void;
  close(): void;
}

export interface NetReceiver {
  canReceive(): boolean;
  receive(frame: Uint8Array): void;
}

/** Versioned plain-data device state (named fields only). */
export interface DeviceState {
  version: number;
  [field: string]: unknown;
}

/** A typed device property (drives -device X,help, -global, device_add and info qtree). */
export interface PropDef {
  name: string;
  type:
    | "bool"
    | "uint8"
    | "uint16"
    | "uint32"
    | "uint64"
    | "int32"
    | "str"
    | "size"
    | "OnOffAuto"
    | "chr"
    | "drive"
    | "netdev"
    | "macaddr";
  default?: string | number | boolean;
  help?: string;
}

/** The device contract (STYLE.md §2.2). */
export interface Device {
  /** Unique id: "serial0", "rtc", "virtio-mmio@feb00e00" … used by qtree, snapshots, hooks. */
  readonly id: string;
  /** QEMU type name, e.g. "isa-serial", "mc146818rtc". */
  readonly typeName: string;
  reset(): void;
  saveState(): DeviceState;
  loadState(state: DeviceState): void;
}

/** Thrown for bad user input (command line, monitor, QMP, files): printed as one line, never a stack trace. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

/** Thrown by loadState on invalid state. */
export class StateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StateError";
  }
}

/**
 * Guest-error log: counted always, printed only when enabled (`-d guest_errors`, `-d unimp`).
 * Devices receive one of these; the default drops messages but counts them.
 */
export interface GuestLog {
  guestError(id: string, msg: string): void;
  unimp(id: string, msg: string): void;
}

/** A GuestLog that only counts. */
export class CountingLog implements GuestLog {
  errors = 0;
  unimps = 0;
  guestError(_id: string, _msg: string): void {
    this.errors++;
  }
  unimp(_id: string, _msg: string): void {
    this.unimps++;
  }
}
