/**
 * Linux direct boot without firmware: what QEMU's x86_load_linux plus qboot leave in guest RAM for
 * `-M microvm -kernel K [-initrd I] -append C`, done in one call. An ELF vmlinux boots through its PVH
 * note (32-bit entry, hvm_start_info), a bzImage through the 64-bit Linux boot protocol (zero page).
 * Both get qboot's e820 view and qboot's MP table at 0x9fc00.
 *
 * @example
 * ```ts
 * import { loadLinux } from "./core/boot/mod.ts";
 * const boot = loadLinux(ram, {
 *   kernel, kernelName: "vmlinux", cmdline: "console=ttyS0",
 *   layout: { below4g: 512 << 20, above4g: 0 }, ncpus: 2,
 * });
 * accel.init(board, boot.entry);   // fw_cfg gets boot.fwCfg and "etc/e820" = boot.e820File
 * ```
 * @module
 */
import { UserError } from "../types.ts";
import type { GuestMemory } from "../types.ts";
import type { CpuEntryState } from "../accel.ts";
import { encodeE820, fwCfgE820Entries, guestE820Entries, HIMEM_START } from "./e820.ts";
import type { E820Entry, RamLayout } from "./e820.ts";
import { isElf, loadElfSegments, parseElfKernel } from "./elf.ts";
import { pvhEntryState, writeStartInfo } from "./pvh.ts";
import {
  buildZeroPage,
  BZIMAGE_LOAD_ADDR,
  bzImageInitrdMax,
  linux64EntryState,
  parseBzImage,
  qemuSetupData,
  STARTUP_64_OFFSET,
  writeZeroPage,
  ZERO_PAGE_START,
} from "./bzimage.ts";
import { writeMpTable } from "./mptable.ts";

export * from "./e820.ts";
export * from "./elf.ts";
export * from "./pvh.ts";
export * from "./bzimage.ts";
export * from "./mptable.ts";

/** Where the command line goes for both protocols (QEMU's cmdline_addr for recent bzImages; Firecracker CMDLINE_START). */
export const CMDLINE_START = 0x20000;
/** End of the room for the command line (the EBDA and MP table start here). */
export const CMDLINE_LIMIT = 0x9fc00;
/** Where QEMU puts the real-mode setup code of a recent bzImage (FW_CFG_SETUP_ADDR). */
export const QEMU_REAL_ADDR = 0x10000;
/** Bytes of the kernel header QEMU passes as FW_CFG_SETUP_DATA for an ELF kernel. */
const QEMU_HEADER_PEEK = 8192;

/** Inputs of loadLinux. */
export interface LoadLinuxOptions {
  /** The -kernel file: ELF64 vmlinux with a PVH note, or a bzImage. */
  kernel: Uint8Array;
  /** File name as the user gave it (error messages). */
  kernelName: string;
  /** The -initrd file, if any. */
  initrd?: Uint8Array | undefined;
  initrdName?: string | undefined;
  /** The -append string (the board has already added its virtio_mmio.device= entries). */
  cmdline: string;
  /** How RAM is split around the 4 GiB hole. */
  layout: RamLayout;
  /** vCPU count for the MP table. */
  ncpus: number;
  /** The IO-APIC exists (MP table describes it). Default true. */
  ioapic?: boolean | undefined;
  /** fw_cfg FW_CFG_IRQ0_OVERRIDE (IRQ0 → IO-APIC pin 2). Default true, as QEMU sets it under TCG and KVM. */
  irq0Override?: boolean | undefined;
  /** CPUID.01H:EAX and EDX of the guest CPU for the MP table's processor entries. Default 0. */
  cpuSignature?: number | undefined;
  cpuFeatures?: number | undefined;
  /** E820 entries the accelerator adds before the board (KVM: 0xfeffc000, 16 KiB, reserved). */
  accelReserved?: readonly E820Entry[] | undefined;
}

/** The fw_cfg items QEMU's x86_load_linux sets for this kernel (null where QEMU sets none). */
export interface FwCfgKernelInfo {
  kernelAddr: number;
  kernelSize: number;
  /** FW_CFG_KERNEL_ENTRY: the PVH entry (ELF kernels only). */
  kernelEntry: number | null;
  kernelData: Uint8Array | null;
  setupAddr: number | null;
  setupSize: number;
  setupData: Uint8Array;
  /** FW_CFG_CMDLINE_ADDR (bzImage only; for PVH the firmware picks it). */
  cmdlineAddr: number | null;
  /** strlen + 1. */
  cmdlineSize: number;
  /** NUL-terminated bytes. */
  cmdlineData: Uint8Array;
  initrdAddr: number | null;
  initrdSize: number;
  initrdData: Uint8Array | null;
}

/** Where things ended up, for the board, fw_cfg, `info` commands and tests. */
export interface LinuxBootInfo {
  /** BSP state at the kernel entry. APs wait for INIT/SIPI. */
  entry: CpuEntryState;
  protocol: "pvh" | "linux64";
  /** Address of hvm_start_info (PVH) or the zero page (linux64). */
  bootParamsAddr: number;
  /** Where the command line was written in RAM. */
  cmdlineAddr: number;
  /** Where the initrd was written, or null. */
  initrd: { addr: number; size: number } | null;
  /** [low, high) of the kernel as loaded. */
  kernel: { addr: number; end: number };
  /** The memory map handed to the kernel (qboot's view). */
  e820: E820Entry[];
  /** Contents of the "etc/e820" fw_cfg file. */
  e820File: Uint8Array;
  /** The MP table bytes written at 0x9fc00. */
  mptable: Uint8Array;
  fwCfg: FwCfgKernelInfo;
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}

/** Encode the command line NUL-terminated. */
function cmdlineBytes(cmdline: string): Uint8Array {
  const text = new TextEncoder().encode(cmdline);
  const out = new Uint8Array(text.length + 1);
  out.set(text);
  return out;
}

/**
 * Place the initrd as QEMU does: end at or below `initrdMax` (inclusive), start aligned down to 4 KiB,
 * and refuse it when it would not fit above the kernel.
 */
function placeInitrd(
  ram: GuestMemory,
  opts: LoadLinuxOptions,
  initrdMax: number,
  kernelEnd: number,
): { addr: number; size: number } | null {
  const data = opts.initrd;
  if (!data) return null;
  const name = opts.initrdName ?? "initrd";
  const size = data.length;
  if (size >= initrdMax || ((initrdMax - size) & ~0xfff) < kernelEnd) {
    const room = Math.max(0, initrdMax - kernelEnd);
    throw new UserError(
      `Initrd '${name}' is too large for guest RAM: ${size} bytes, at most ${room} fit between the kernel and ${
        hex(initrdMax + 1)
      }`,
    );
  }
  const addr = (initrdMax - size) & ~0xfff;
  if (!ram.write(addr, data)) {
    throw new UserError(`Initrd '${name}' does not fit in guest RAM at ${hex(addr)}`);
  }
  return { addr, size };
}

/**
 * Load a Linux kernel (and initrd, command line, e820 map, MP table, boot GDT/page tables) into guest RAM
 * and return the BSP entry state plus what fw_cfg should show.
 * @throws UserError for a kernel that is neither a PVH-capable ELF nor a 64-bit bzImage, a truncated or
 *   corrupt file, an initrd or kernel that does not fit, or a command line longer than the kernel allows
 */
export function loadLinux(ram: GuestMemory, opts: LoadLinuxOptions): LinuxBootInfo {
  const { layout } = opts;
  if (layout.below4g < 2 * HIMEM_START) {
    throw new UserError(
      `Cannot boot Linux with ${layout.below4g} bytes of RAM below 4 GiB: at least 2 MiB is needed`,
    );
  }
  if (layout.below4g > ram.size) {
    throw new UserError(
      `Cannot boot Linux: the RAM layout names ${layout.below4g} bytes below 4 GiB, RAM has ${ram.size}`,
    );
  }
  const kernelImage = opts.kernel;
  const e820 = guestE820Entries(layout, opts.accelReserved);
  const e820File = encodeE820(fwCfgE820Entries(layout, opts.accelReserved));
  const cmdline = cmdlineBytes(opts.cmdline);
  if (CMDLINE_START + cmdline.length > CMDLINE_LIMIT) {
    throw new UserError(`Kernel command line is too long: ${cmdline.length - 1} bytes`);
  }
  const mptable = writeMpTable(ram, {
    ncpus: opts.ncpus,
    ioapic: opts.ioapic ?? true,
    irq0Override: opts.irq0Override ?? true,
    cpuSignature: opts.cpuSignature ?? 0,
    cpuFeatures: opts.cpuFeatures ?? 0,
  });
  const initrdData = opts.initrd ?? null;

  if (isElf(kernelImage)) {
    const elf = parseElfKernel(kernelImage, opts.kernelName);
    if (elf.pvhEntry === null) {
      throw new UserError(
        `Linux kernel image '${opts.kernelName}' has no PVH entry point (ELF note XEN_ELFNOTE_PHYS32_ENTRY)`,
      );
    }
    loadElfSegments(ram, kernelImage, elf, {
      name: opts.kernelName,
      minAddr: HIMEM_START,
      limit: layout.below4g,
    });
    ram.write(CMDLINE_START, cmdline);
    const initrd = placeInitrd(ram, opts, layout.below4g - 1, elf.high);
    const startInfo = writeStartInfo(ram, {
      cmdlineAddr: CMDLINE_START,
      memmap: e820,
      initrd: initrd ?? undefined,
    });
    return {
      entry: pvhEntryState(ram, elf.pvhEntry, startInfo),
      protocol: "pvh",
      bootParamsAddr: startInfo,
      cmdlineAddr: CMDLINE_START,
      initrd,
      kernel: { addr: elf.low, end: elf.high },
      e820,
      e820File,
      mptable,
      fwCfg: {
        kernelAddr: elf.low,
        kernelSize: elf.high - elf.low,
        kernelEntry: elf.pvhEntry,
        kernelData: null,
        setupAddr: null,
        setupSize: QEMU_HEADER_PEEK,
        setupData: padTo(kernelImage.subarray(0, QEMU_HEADER_PEEK), QEMU_HEADER_PEEK),
        cmdlineAddr: null,
        cmdlineSize: cmdline.length,
        cmdlineData: cmdline,
        initrdAddr: initrd?.addr ?? null,
        initrdSize: initrd?.size ?? 0,
        initrdData,
      },
    };
  }

  if (!looksLikeBzImage(kernelImage)) {
    throw new UserError(`Linux kernel image '${opts.kernelName}' is not a valid ELF or bzImage file`);
  }
  const bz = parseBzImage(kernelImage, opts.kernelName);
  if (cmdline.length - 1 > bz.cmdlineSize) {
    throw new UserError(
      `Kernel command line is too long for '${opts.kernelName}': ${
        cmdline.length - 1
      } bytes, the kernel accepts ${bz.cmdlineSize}`,
    );
  }
  // The decompressor runs at pref_address (relocatable kernels never go below it) and needs init_size.
  const runAddr = Math.max(BZIMAGE_LOAD_ADDR, bz.prefAddress);
  const kernelEnd = Math.max(BZIMAGE_LOAD_ADDR + bz.payload.length, runAddr + bz.initSize);
  if (kernelEnd > layout.below4g) {
    throw new UserError(
      `Linux kernel image '${opts.kernelName}' does not fit in guest RAM: it needs ${
        hex(kernelEnd)
      } bytes below 4 GiB`,
    );
  }
  ram.write(BZIMAGE_LOAD_ADDR, bz.payload);
  ram.write(CMDLINE_START, cmdline);
  const initrd = placeInitrd(ram, opts, bzImageInitrdMax(bz, layout.below4g), kernelEnd);
  const zp = { cmdlineAddr: CMDLINE_START, e820, initrd: initrd ?? undefined };
  writeZeroPage(ram, buildZeroPage(kernelImage, zp));
  return {
    entry: linux64EntryState(ram, BZIMAGE_LOAD_ADDR + STARTUP_64_OFFSET),
    protocol: "linux64",
    bootParamsAddr: ZERO_PAGE_START,
    cmdlineAddr: CMDLINE_START,
    initrd,
    kernel: { addr: BZIMAGE_LOAD_ADDR, end: kernelEnd },
    e820,
    e820File,
    mptable,
    fwCfg: {
      kernelAddr: BZIMAGE_LOAD_ADDR,
      kernelSize: bz.payload.length,
      kernelEntry: null,
      kernelData: bz.payload,
      setupAddr: QEMU_REAL_ADDR,
      setupSize: bz.setupSize,
      setupData: qemuSetupData(kernelImage, bz, zp),
      cmdlineAddr: CMDLINE_START,
      cmdlineSize: cmdline.length,
      cmdlineData: cmdline,
      initrdAddr: initrd?.addr ?? null,
      initrdSize: initrd?.size ?? 0,
      initrdData,
    },
  };
}

/** A boot-sector signature or a "HdrS" magic means the file meant to be a bzImage: keep the detailed error. */
function looksLikeBzImage(image: Uint8Array): boolean {
  const hdrS = image.length >= 0x206 && image[0x202] === 0x48 && image[0x203] === 0x64 &&
    image[0x204] === 0x72 &&
    image[0x205] === 0x53;
  return hdrS || (image[0x1fe] === 0x55 && image[0x1ff] === 0xaa);
}

function padTo(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(bytes.subarray(0, size));
  return out;
}
