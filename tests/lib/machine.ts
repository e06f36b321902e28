/**
 * Build a board in-process from a QEMU command line, with no CPU (qtest semantics): in-memory
 * chardevs and drives, a manual clock. For register-level and golden tests.
 * @module
 */
import { isCliAction, parseCommandLine } from "../../shell/cli/mod.ts";
import type { VmConfig } from "../../core/config.ts";
import type { BlockBackend } from "../../core/types.ts";
import { CountingLog } from "../../core/types.ts";
import { VirtualClock } from "../../core/clock.ts";
import { BufferChar } from "../../core/host/chardev.ts";
import { Microvm, MICROVM_DEVICES } from "../../devices/microvm.ts";

/** A BlockBackend over a byte array. */
export class MemBlock implements BlockBackend {
  readonly data: Uint8Array;
  flushes = 0;
  constructor(size: number, readonly id = "mem", readonly readOnly = false) {
    this.data = new Uint8Array(size);
  }
  get size(): number {
    return this.data.length;
  }
  read(offset: number, dst: Uint8Array): boolean {
    if (offset < 0 || offset + dst.length > this.data.length) return false;
    dst.set(this.data.subarray(offset, offset + dst.length));
    return true;
  }
  write(offset: number, src: Uint8Array): boolean {
    if (this.readOnly || offset < 0 || offset + src.length > this.data.length) return false;
    this.data.set(src, offset);
    return true;
  }
  flush(): boolean {
    this.flushes++;
    return true;
  }
  close(): void {}
}

/** Parse a command line (argv without the program) into a VmConfig. */
export function parseArgs(argv: string[]): VmConfig {
  const r = parseCommandLine(argv, "microvm.ts", { devices: MICROVM_DEVICES });
  if (isCliAction(r)) throw new Error("expected a VM config");
  return r;
}

/** Build a board for `argv` with no kernel loaded and no CPU. */
export function buildBoard(
  argv: string[],
  opts: { accel?: "tcg" | "kvm" | "qtest"; diskBytes?: number } = {},
): { machine: Microvm; clock: VirtualClock; chardevs: Map<string, BufferChar>; disks: MemBlock[] } {
  const cfg = parseArgs(argv);
  delete cfg.kernel;
  delete cfg.initrd;
  const clock = new VirtualClock({ mode: "manual" });
  const chardevs = new Map<string, BufferChar>();
  const disks: MemBlock[] = [];
  const machine = new Microvm(cfg, {
    log: new CountingLog(),
    clock,
    accel: opts.accel ?? "qtest",
    chardev: (id) => {
      let c = chardevs.get(id);
      if (!c) chardevs.set(id, c = new BufferChar({ id }));
      return c;
    },
    drive: (d) => {
      const b = new MemBlock(opts.diskBytes ?? 64 << 20, d.id, d.readOnly);
      disks.push(b);
      return b;
    },
    wallClockMs: Date.UTC(2026, 0, 1),
    cpuSignature: 0x663,
    cpuFeatures: 0x0781abfd,
  });
  return { machine, clock, chardevs, disks };
}

/** The seed command lines of docs/system/i386/microvm.rst (qemu-system-x86_64 removed), without the tap lines. */
export const SEED_LINE_1 = [
  "-M",
  "microvm",
  "-enable-kvm",
  "-cpu",
  "host",
  "-m",
  "512m",
  "-smp",
  "2",
  "-kernel",
  "vmlinux",
  "-append",
  "earlyprintk=ttyS0 console=ttyS0 root=/dev/vda",
  "-nodefaults",
  "-no-user-config",
  "-nographic",
  "-serial",
  "stdio",
  "-drive",
  "id=test,file=test.img,format=raw,if=none",
  "-device",
  "virtio-blk-device,drive=test",
];
export const SEED_LINE_2 = [
  "-M",
  "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=off,rtc=off",
  "-enable-kvm",
  "-cpu",
  "host",
  "-m",
  "512m",
  "-smp",
  "2",
  "-kernel",
  "vmlinux",
  "-append",
  "console=hvc0 root=/dev/vda",
  "-nodefaults",
  "-no-user-config",
  "-nographic",
  "-chardev",
  "stdio,id=virtiocon0",
  "-device",
  "virtio-serial-device",
  "-device",
  "virtconsole,chardev=virtiocon0",
  "-drive",
  "id=test,file=test.img,format=raw,if=none",
  "-device",
  "virtio-blk-device,drive=test",
];
/** The tap lines both seed command lines end with. */
export const SEED_TAP = [
  "-netdev",
  "tap,id=tap0,script=no,downscript=no",
  "-device",
  "virtio-net-device,netdev=tap0",
];

/** Replace -enable-kvm with -accel tcg (this machine's /dev/kvm cannot run Linux). */
export function withTcg(argv: string[]): string[] {
  return argv.flatMap((a) => a === "-enable-kvm" ? ["-accel", "tcg"] : [a]);
}
