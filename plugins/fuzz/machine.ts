/**
 * The fuzz target: a microvm board with no CPU (qtest semantics, as QEMU's generic-fuzz runs it), a manual
 * virtual clock, an in-memory disk and buffer chardevs, with every device exception and broken
 * invariant recorded instead of printed.
 * @module
 */
import { type BlockBackend, CountingLog } from "../../core/types.ts";
import type { AccessInfo } from "../../core/region.ts";
import { VirtualClock } from "../../core/clock.ts";
import { BufferChar } from "../../core/host/chardev.ts";
import { Microvm, MICROVM_DEVICES } from "../../devices/microvm.ts";
import type { VmConfig } from "../../core/config.ts";

/** Command line of the default fuzz machine: every device microvm.ts has, small RAM (fast resets). */
export const FUZZ_ARGV: readonly string[] = [
  "-M",
  "microvm,acpi=off",
  "-accel",
  "qtest",
  "-m",
  "1m",
  "-nodefaults",
  "-no-user-config",
  "-display",
  "none",
  "-chardev",
  "null,id=ser0",
  "-serial",
  "chardev:ser0",
  "-drive",
  "id=d0,file=fuzz.img,format=raw,if=none",
  "-device",
  "virtio-blk-device,drive=d0",
  "-device",
  "virtio-serial-device",
  "-chardev",
  "null,id=con0",
  "-device",
  "virtconsole,chardev=con0",
  "-device",
  "virtio-rng-device",
];

/** FUZZ_ARGV with virtio-mmio version 2 (modern) transports. */
export const FUZZ_ARGV_MODERN: readonly string[] = [
  ...FUZZ_ARGV,
  "-global",
  "virtio-mmio.force-legacy=false",
];

/** Bytes of the in-memory disk. */
export const FUZZ_DISK_BYTES = 1 << 20;

/** A BlockBackend over a byte array (the fuzz disk). */
export class MemDisk implements BlockBackend {
  readonly data: Uint8Array;
  readonly readOnly = false;
  constructor(size: number, readonly id = "d0") {
    this.data = new Uint8Array(size);
  }
  get size(): number {
    return this.data.length;
  }
  read(offset: number, dst: Uint8Array): boolean {
    if (!(offset >= 0) || offset + dst.length > this.data.length) return false;
    dst.set(this.data.subarray(offset, offset + dst.length));
    return true;
  }
  write(offset: number, src: Uint8Array): boolean {
    if (!(offset >= 0) || offset + src.length > this.data.length) return false;
    this.data.set(src, offset);
    this.#written(offset, src.length);
    return true;
  }
  /** Written byte range since trackWrites/restoreFrom ([lo, hi); lo > hi: none), or null when not tracking. */
  #lo = 0;
  #hi = -1;
  #tracking = false;
  #written(offset: number, len: number): void {
    if (!this.#tracking) return;
    if (offset < this.#lo || this.#lo > this.#hi) this.#lo = offset;
    if (offset + len > this.#hi) this.#hi = offset + len;
  }
  /** Start recording the written range (fuzzer snapshots). */
  trackWrites(): void {
    this.#tracking = true;
    this.#lo = 1;
    this.#hi = 0;
  }
  /** Put back the bytes written since tracking started or the last restore, from `snap`. */
  restoreFrom(snap: Uint8Array): void {
    if (!this.#tracking) this.data.set(snap);
    else if (this.#lo < this.#hi) this.data.set(snap.subarray(this.#lo, this.#hi), this.#lo);
    this.#lo = 1;
    this.#hi = 0;
  }
  flush(): boolean {
    return true;
  }
  discard(offset: number, length: number): boolean {
    if (!(offset >= 0) || offset + length > this.data.length) return false;
    this.data.fill(0, offset, offset + length);
    this.#written(offset, length);
    return true;
  }
  writeZeroes(offset: number, length: number): boolean {
    return this.discard(offset, length);
  }
  close(): void {}
}

/** Kinds of findings. */
export type FindingKind = "crash" | "hang" | "invariant";

/** Something went wrong while running an input. */
export interface Finding {
  kind: FindingKind;
  /** Device id (owner) or region where it happened. */
  device: string;
  /** One line: what happened. */
  message: string;
  /** Index of the op that triggered it. */
  op: number;
}

/** A fuzz machine and what it recorded. */
export interface FuzzMachine {
  vm: Microvm;
  clock: VirtualClock;
  log: CountingLog;
  /** Findings of the current input (the engine clears it). */
  findings: Finding[];
  /** Index of the op being run (set by the executor). */
  opIndex: number;
  /** The in-memory disks (zeroed by `resetFuzzMachine`). */
  disks: MemDisk[];
}

/**
 * Put a used fuzz machine back to power-on state (system_reset, RAM and disks zeroed, IRQ counts
 * cleared). Much cheaper than a new machine (the board allocates a 16 MiB ROM reserve each time).
 */
export function resetFuzzMachine(fm: FuzzMachine): void {
  fm.vm.reset();
  fm.vm.gsi.reset();
  for (const d of fm.disks) d.data.fill(0);
  fm.findings.length = 0;
  fm.opIndex = 0;
}

function firstLine(err: unknown): string {
  if (err instanceof Error) {
    const at = (err.stack ?? "").split("\n").find((l) => l.includes("/devices/")) ?? "";
    return `${err.name}: ${err.message}${
      at ? ` (${at.trim().replace(/^at /, "").replace(/^.*\/devices\//, "devices/")})` : ""
    }`;
  }
  return String(err);
}

/** The QEMU command-line parser (the shell's), injected so that plugins/ does not import shell/. */
let argvParser: ((argv: readonly string[], devices: typeof MICROVM_DEVICES) => VmConfig) | null = null;

/** Register the command-line parser buildFuzzMachine uses (shell/fuzz_argv.ts does, on import). */
export function setFuzzArgvParser(
  p: (argv: readonly string[], devices: typeof MICROVM_DEVICES) => VmConfig,
): void {
  argvParser = p;
}

/** Build the fuzz machine for `argv` (default FUZZ_ARGV). */
export function buildFuzzMachine(argv: readonly string[] = FUZZ_ARGV): FuzzMachine {
  if (!argvParser) throw new Error("fuzz: no command-line parser registered (import shell/fuzz_argv.ts)");
  const cfg = argvParser(argv, MICROVM_DEVICES);
  const findings: Finding[] = [];
  const disks: MemDisk[] = [];
  const fm = { findings, opIndex: 0, disks } as unknown as FuzzMachine;
  const clock = new VirtualClock({
    mode: "manual",
    onTimerError: (err) => {
      findings.push({
        kind: "crash",
        device: "timer",
        message: `timer callback threw: ${firstLine(err)}`,
        op: fm.opIndex,
      });
    },
  });
  const log = new CountingLog();
  const chardevs = new Map<string, BufferChar>();
  const vm = new Microvm(cfg, {
    log,
    clock,
    accel: "qtest",
    chardev: (id) => {
      let c = chardevs.get(id);
      if (!c) chardevs.set(id, c = new BufferChar({ id }));
      return c;
    },
    drive: (d) => {
      const disk = new MemDisk(FUZZ_DISK_BYTES, d.id);
      disks.push(disk);
      return disk;
    },
    wallClockMs: Date.UTC(2026, 0, 1),
    cpuSignature: 0x663,
    cpuFeatures: 0x0781abfd,
  });
  const onErr = (err: unknown, a: AccessInfo) => {
    findings.push({
      kind: "crash",
      device: a.owner ?? a.region,
      message: `${a.dir} ${a.space} 0x${a.addr.toString(16)} size ${a.size}: ${firstLine(err)}`,
      op: fm.opIndex,
    });
  };
  vm.memory.onDeviceError = onErr;
  vm.io.onDeviceError = onErr;
  fm.vm = vm;
  fm.clock = clock;
  fm.log = log;
  guardReads(fm);
  return fm;
}

/**
 * Invariant: a read handler returns a uint32 (dispatch masks it to the access size, which would hide
 * NaN / undefined from a read of a bad index). Wraps each I/O region's read callback once; call again
 * after mapping new regions.
 */
export function guardReads(fm: FuzzMachine): void {
  const vm = fm.vm;
  const findings = fm.findings;
  for (const space of [vm.memory, vm.io]) {
    for (const fr of space.flatView()) {
      const ops = fr.region.ops as
        | { read: (o: number, s: 1 | 2 | 4) => number; __fuzzWrapped?: boolean }
        | null;
      if (!ops || ops.__fuzzWrapped) continue;
      const orig = ops.read;
      const name = fr.region.owner ?? fr.region.name;
      ops.read = (o, s) => {
        const v = orig(o, s);
        // The contract allows any uint32 (dispatch masks to the access size, as QEMU's core does).
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
          findings.push({
            kind: "invariant",
            device: name,
            message: `read of ${fr.region.name}+0x${o.toString(16)} size ${s} returned ${v}, not a uint32`,
            op: fm.opIndex,
          });
        }
        return v;
      };
      ops.__fuzzWrapped = true;
    }
  }
}
