/**
 * The guest set-ups the benchmarks boot: a scratch directory holding the default guest's files under the
 * seed command lines' names, and the command lines for microvm.ts and for QEMU 7.2 (the yardstick,
 * never a dependency) side by side.
 * @module
 */
import { guestFile } from "../../core/host/guest_files.ts";
import { findOnPath } from "./proc.ts";

/** Absolute path of main.ts. */
export const MAIN_TS: string = new URL("../../main.ts", import.meta.url).pathname;

/** The QEMU binary the comparison uses. */
export const QEMU_NAME = "qemu-system-x86_64";

/** A scratch directory with vmlinux, bzImage, initramfs.cpio.gz and test.img (a copy of the rootfs). */
export async function prepareGuestDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mvt-bench-" });
  await Deno.copyFile(await guestFile("vmlinux"), `${dir}/vmlinux`);
  await Deno.copyFile(await guestFile("bzImage"), `${dir}/bzImage`);
  await Deno.copyFile(await guestFile("initramfs.cpio.gz"), `${dir}/initramfs.cpio.gz`);
  await Deno.copyFile(await guestFile("rootfs.ext4"), `${dir}/test.img`);
  return dir;
}

/** Create (or empty) a zero-filled raw image of `bytes` bytes at `path`. */
export async function scratchImage(path: string, bytes: number): Promise<void> {
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, bytes);
}

/** Path of QEMU, or null when it is not installed. */
export function qemuPath(): string | null {
  return findOnPath(QEMU_NAME);
}

/** How to start each VMM: the program and the arguments before the QEMU-syntax command line. */
export interface Vmm {
  name: "microvm.ts" | "QEMU";
  cmd: string;
  prefix: string[];
}

/** microvm.ts run by this Deno (`deno run -A main.ts`). */
export function oursVmm(): Vmm {
  return { name: "microvm.ts", cmd: Deno.execPath(), prefix: ["run", "-A", MAIN_TS] };
}

/** QEMU at `path`. */
export function qemuVmm(path: string): Vmm {
  return { name: "QEMU", cmd: path, prefix: [] };
}

/** A boot set-up: what to pass after `-M <machine>`, per VMM. */
export interface GuestLine {
  kernel: "vmlinux" | "bzImage";
  smp: number;
  /** -initrd initramfs.cpio.gz, else the rootfs as a virtio-blk drive. */
  initramfs: boolean;
  /** Extra kernel command-line words. */
  append?: string;
  /** Drive file for the rootfs variants (default test.img), or for an initramfs boot's scratch disk. */
  drive?: string;
}

/** Common options of every line. */
const COMMON = ["-accel", "tcg", "-cpu", "max", "-m", "512m", "-nodefaults", "-no-user-config", "-nographic"];

/** The machine type per VMM: QEMU 7.2 needs acpi=off for this ACPI-less kernel (guest/README.md). */
export function machineArg(vmm: Vmm, extra = ""): string {
  return vmm.name === "QEMU" ? `microvm,acpi=off${extra}` : `microvm${extra}`;
}

/** The command line (without the program) of a serial-console boot. */
export function serialLine(vmm: Vmm, g: GuestLine): string[] {
  const base = g.initramfs
    ? "earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t"
    : "earlyprintk=ttyS0 console=ttyS0 root=/dev/vda ro reboot=t";
  const args = [
    ...vmm.prefix,
    "-M",
    machineArg(vmm),
    ...COMMON,
    "-smp",
    String(g.smp),
    "-kernel",
    g.kernel,
    ...(g.initramfs ? ["-initrd", "initramfs.cpio.gz"] : []),
    "-append",
    g.append ? `${base} ${g.append}` : base,
    "-serial",
    "stdio",
  ];
  const drive = g.drive ?? (g.initramfs ? undefined : "test.img");
  if (drive) {
    args.push(
      "-drive",
      `id=test,file=${drive},format=raw,if=none`,
      "-device",
      "virtio-blk-device,drive=test",
    );
  }
  args.push("-no-reboot");
  return args;
}

/** The all-legacy-off line with the console on virtio-console hvc0 (seed line 2, TCG, `ro`). */
export function hvcLine(vmm: Vmm, smp: number): string[] {
  return [
    ...vmm.prefix,
    "-M",
    machineArg(vmm, ",x-option-roms=off,pit=off,pic=off,isa-serial=off,rtc=off"),
    ...COMMON,
    "-smp",
    String(smp),
    "-kernel",
    "vmlinux",
    "-append",
    "console=hvc0 root=/dev/vda ro reboot=t",
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
    "-no-reboot",
  ];
}

/** Parse `GUEST-BLK-READ dev=… bytes=N centisecs=M` into MB/s (10^6 bytes), or NaN. */
export function blkReadMBps(out: string): number {
  const m = /GUEST-BLK-READ dev=\S+ bytes=(\d+) centisecs=(\d+)/.exec(out);
  if (!m) return NaN;
  const cs = Number(m[2]);
  return cs > 0 ? Number(m[1]) / 1e6 / (cs / 100) : NaN;
}
