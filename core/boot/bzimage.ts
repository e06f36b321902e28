/**
 * bzImage kernels through the x86 Linux boot protocol's 64-bit entry (Documentation/arch/x86/boot.rst):
 * setup-header checks, the protected-mode kernel at 1 MiB, the zero page (struct boot_params) with the
 * setup header copied in, and the long-mode entry state Firecracker uses (identity page tables for the
 * first 1 GiB, flat 64-bit GDT at 0x500, %rsi = zero page, %rip = load address + 0x200).
 * @module
 */
import { UserError } from "../types.ts";
import type { GuestMemory } from "../types.ts";
import type { CpuEntryState } from "../accel.ts";
import { encodeE820 } from "./e820.ts";
import type { E820Entry } from "./e820.ts";
import { gdtEntry, RESET_LDTR, segmentFromGdt, writeGdt, zeroRegs } from "./_gdt.ts";

// Setup header fields, as offsets into the image and into boot_params (boot.rst "The Real-Mode Kernel Header").
/** Number of 512-byte setup sectors (0 means 4). */
export const HDR_SETUP_SECTS = 0x1f1;
/** Protected-mode code size in 16-byte paragraphs (u32). */
export const HDR_SYSSIZE = 0x1f4;
/** Boot sector signature 0xaa55 (u16). */
export const HDR_BOOT_FLAG = 0x1fe;
/** Jump instruction; byte 0x201 gives the header end as 0x202 + its value. */
export const HDR_JUMP = 0x200;
/** Magic "HdrS" (u32). */
export const HDR_HEADER = 0x202;
/** Boot protocol version (u16), e.g. 0x020f. */
export const HDR_VERSION = 0x206;
/** Boot loader identifier (u8). */
export const HDR_TYPE_OF_LOADER = 0x210;
/** Boot protocol option flags (u8). */
export const HDR_LOADFLAGS = 0x211;
/** 32-bit initrd address (u32). */
export const HDR_RAMDISK_IMAGE = 0x218;
/** Initrd size (u32). */
export const HDR_RAMDISK_SIZE = 0x21c;
/** End of the setup stack/heap, relative to the setup start (u16). */
export const HDR_HEAP_END_PTR = 0x224;
/** 32-bit command line address (u32). */
export const HDR_CMD_LINE_PTR = 0x228;
/** Highest legal initrd address (u32). */
export const HDR_INITRD_ADDR_MAX = 0x22c;
/** Physical alignment the kernel needs (u32). */
export const HDR_KERNEL_ALIGNMENT = 0x230;
/** Extended boot protocol flags (u16, protocol 2.12+). */
export const HDR_XLOADFLAGS = 0x236;
/** Longest command line without the NUL (u32, protocol 2.06+). */
export const HDR_CMDLINE_SIZE = 0x238;
/** Preferred load address (u64, protocol 2.10+). */
export const HDR_PREF_ADDRESS = 0x258;
/** Linear memory the kernel needs during initialisation (u32, protocol 2.10+). */
export const HDR_INIT_SIZE = 0x260;
/** boot_params.e820_entries (u8). */
export const BP_E820_ENTRIES = 0x1e8;
/** boot_params.e820_table (128 packed 20-byte entries). */
export const BP_E820_TABLE = 0x2d0;
/** Entries that fit in boot_params.e820_table. */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;
/** First byte after the setup header area of boot_params (edd_mbr_sig_buffer). */
const BP_HDR_AREA_END = 0x290;

/** Value of boot_flag. */
export const BOOT_FLAG_MAGIC = 0xaa55;
/** "HdrS" as a little-endian u32. */
export const HDR_MAGIC = 0x53726448;
/** loadflags: protected-mode code loads at 0x100000 (a bzImage). */
export const LOADED_HIGH = 0x01;
/** loadflags: heap_end_ptr is valid. */
export const CAN_USE_HEAP = 0x80;
/** xloadflags: the kernel has the legacy 64-bit entry at load address + 0x200. */
export const XLF_KERNEL_64 = 0x01;
/** xloadflags: the kernel, boot_params, cmdline and initrd may live above 4 GiB. */
export const XLF_CAN_BE_LOADED_ABOVE_4G = 0x02;
/** type_of_loader "undefined/other" (boot.rst: 0xff). */
export const LOADER_TYPE_OTHER = 0xff;

/** Where the protected-mode kernel is loaded (Firecracker HIMEM_START, QEMU prot_addr). */
export const BZIMAGE_LOAD_ADDR = 0x100000;
/** Offset of startup_64 from the load address (boot.rst "64-bit BOOT PROTOCOL"). */
export const STARTUP_64_OFFSET = 0x200;
/** Zero page address (Firecracker ZERO_PAGE_START; qboot uses it too). */
export const ZERO_PAGE_START = 0x7000;
/** Initial stack and frame pointer (Firecracker BOOT_STACK_POINTER). */
export const BOOT_STACK_POINTER = 0x8ff0;
/** Identity page tables: PML4 (Firecracker PML4_START; PDPTE_START and PDE_START follow). */
export const PML4_START = 0x9000;
/** Page-directory-pointer table of the identity map. */
export const PDPTE_START = 0xa000;
/** Page directory (512 × 2 MiB) of the identity map. */
export const PDE_START = 0xb000;
/** heap_end_ptr QEMU writes: cmdline_addr - real_addr - 0x200 with real_addr 0x10000, cmdline 0x20000. */
const QEMU_HEAP_END_PTR = 0xfe00;

const X86_CR0_PE = 0x1n;
const X86_CR0_ET = 0x10n;
const X86_CR0_PG = 0x8000_0000n;
const X86_CR4_PAE = 0x20n;
const EFER_LME = 0x100n;
const EFER_LMA = 0x400n;

/** The checked facts of a bzImage. */
export interface BzImage {
  /** Boot protocol version, e.g. 0x020f. */
  version: number;
  /** Bytes of boot sector + setup code: (setup_sects + 1) * 512. */
  setupSize: number;
  /** The protected-mode kernel (file bytes after the setup code). */
  payload: Uint8Array;
  loadflags: number;
  xloadflags: number;
  /** Longest command line the kernel accepts, without the NUL. */
  cmdlineSize: number;
  /** Highest address the initrd may end at (inclusive), before clipping to RAM. */
  initrdAddrMax: number;
  /** Bytes the kernel needs from its run address while decompressing (init_size), or 0 if unknown. */
  initSize: number;
  /** Preferred run address (pref_address), or the load address for older protocols. */
  prefAddress: number;
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}

/**
 * Check a bzImage's setup header. Each failed check has its own message naming the file.
 * @throws UserError when the image is not a 64-bit-capable bzImage
 */
export function parseBzImage(image: Uint8Array, name: string): BzImage {
  const what = `Linux kernel image '${name}'`;
  if (image.length < 0x264) throw new UserError(`${what} is too short to hold a Linux setup header`);
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const bootFlag = dv.getUint16(HDR_BOOT_FLAG, true);
  if (bootFlag !== BOOT_FLAG_MAGIC) {
    throw new UserError(`${what} has no boot sector signature: ${hex(bootFlag)} at 0x1fe, expected 0xaa55`);
  }
  if (dv.getUint32(HDR_HEADER, true) !== HDR_MAGIC) {
    throw new UserError(`${what} has no Linux setup header: "HdrS" is missing at 0x202`);
  }
  const version = dv.getUint16(HDR_VERSION, true);
  if (version < 0x0206) {
    const v = `${version >> 8}.${(version & 0xff).toString(16).padStart(2, "0")}`;
    throw new UserError(`${what} uses boot protocol ${v}: 2.06 or newer is needed`);
  }
  const loadflags = image[HDR_LOADFLAGS];
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new UserError(`${what} is not a bzImage: loadflags LOADED_HIGH is clear`);
  }
  const xloadflags = version >= 0x020c ? dv.getUint16(HDR_XLOADFLAGS, true) : 0;
  if ((xloadflags & XLF_KERNEL_64) === 0) {
    throw new UserError(`${what} has no 64-bit entry point: xloadflags XLF_KERNEL_64 is clear`);
  }
  let sects = image[HDR_SETUP_SECTS];
  if (sects === 0) sects = 4;
  const setupSize = (sects + 1) * 512;
  if (setupSize >= image.length) {
    throw new UserError(
      `${what} is truncated: the setup code needs ${setupSize} bytes, the file has ${image.length}`,
    );
  }
  const payload = image.subarray(setupSize);
  const syssize = dv.getUint32(HDR_SYSSIZE, true) * 16;
  if (payload.length < syssize) {
    throw new UserError(
      `${what} is truncated: the kernel needs ${syssize} bytes after the setup code, the file has ${payload.length}`,
    );
  }
  return {
    version,
    setupSize,
    payload,
    loadflags,
    xloadflags,
    cmdlineSize: dv.getUint32(HDR_CMDLINE_SIZE, true),
    initrdAddrMax: dv.getUint32(HDR_INITRD_ADDR_MAX, true),
    initSize: version >= 0x020a ? dv.getUint32(HDR_INIT_SIZE, true) : 0,
    prefAddress: version >= 0x020a ? Number(dv.getBigUint64(HDR_PREF_ADDRESS, true)) : BZIMAGE_LOAD_ADDR,
  };
}

/**
 * Highest initrd byte address as QEMU computes it (x86_load_linux): 4 GiB - 1 when the kernel says
 * XLF_CAN_BE_LOADED_ABOVE_4G, else initrd_addr_max; then clipped to the top of RAM below 4 GiB.
 */
export function bzImageInitrdMax(bz: BzImage, below4g: number): number {
  let max = (bz.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G) !== 0 ? 0xffffffff : bz.initrdAddrMax;
  if (max >= below4g) max = below4g - 1;
  return max;
}

/** What goes into the zero page besides the copied setup header. */
export interface ZeroPageOptions {
  cmdlineAddr: number;
  /** The memory map the kernel sees (boot_params.e820_table, at most 128 entries used). */
  e820: readonly E820Entry[];
  initrd?: { addr: number; size: number } | undefined;
}

/**
 * Build struct boot_params: zeroed, the image's setup header (0x1f1 up to 0x202 + byte 0x201) copied in,
 * then type_of_loader, CAN_USE_HEAP, heap_end_ptr, cmd_line_ptr, ramdisk and the e820 table set.
 */
export function buildZeroPage(image: Uint8Array, opts: ZeroPageOptions): Uint8Array {
  const zp = new Uint8Array(0x1000);
  const dv = new DataView(zp.buffer);
  const hdrEnd = Math.min(HDR_HEADER + image[0x201], BP_HDR_AREA_END, image.length);
  zp.set(image.subarray(HDR_SETUP_SECTS, hdrEnd), HDR_SETUP_SECTS);
  zp[HDR_TYPE_OF_LOADER] = LOADER_TYPE_OTHER;
  zp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
  dv.setUint16(HDR_HEAP_END_PTR, QEMU_HEAP_END_PTR, true);
  dv.setUint32(HDR_CMD_LINE_PTR, opts.cmdlineAddr >>> 0, true);
  dv.setUint32(HDR_RAMDISK_IMAGE, opts.initrd ? opts.initrd.addr >>> 0 : 0, true);
  dv.setUint32(HDR_RAMDISK_SIZE, opts.initrd ? opts.initrd.size >>> 0 : 0, true);
  const entries = opts.e820.slice(0, E820_MAX_ENTRIES_ZEROPAGE);
  zp[BP_E820_ENTRIES] = entries.length;
  zp.set(encodeE820(entries), BP_E820_TABLE);
  return zp;
}

/** The setup bytes as QEMU hands them to firmware through FW_CFG_SETUP_DATA (x86_load_linux patches). */
export function qemuSetupData(image: Uint8Array, bz: BzImage, opts: ZeroPageOptions): Uint8Array {
  const setup = image.slice(0, bz.setupSize);
  const dv = new DataView(setup.buffer);
  dv.setUint32(HDR_CMD_LINE_PTR, opts.cmdlineAddr >>> 0, true);
  setup[HDR_TYPE_OF_LOADER] = 0xb0; // high nibble B: QEMU
  setup[HDR_LOADFLAGS] |= CAN_USE_HEAP;
  dv.setUint16(HDR_HEAP_END_PTR, QEMU_HEAP_END_PTR, true);
  if (opts.initrd) {
    dv.setUint32(HDR_RAMDISK_IMAGE, opts.initrd.addr >>> 0, true);
    dv.setUint32(HDR_RAMDISK_SIZE, opts.initrd.size >>> 0, true);
  }
  return setup;
}

/** Write the zero page at ZERO_PAGE_START. @throws UserError if RAM is too small */
export function writeZeroPage(ram: GuestMemory, zeroPage: Uint8Array): void {
  if (!ram.write(ZERO_PAGE_START, zeroPage)) {
    throw new UserError("Cannot write the Linux zero page: guest RAM is too small");
  }
}

/** Identity-map the first 1 GiB with 2 MiB pages: PML4[0] → PDPTE[0] → 512 PDEs (Firecracker regs.rs). */
export function writeIdentityPageTables(ram: GuestMemory): boolean {
  let ok = ram.writeU64(PML4_START, PDPTE_START | 0x03);
  ok = ram.writeU64(PDPTE_START, PDE_START | 0x03) && ok;
  for (let i = 0; i < 512; i++) {
    // Present | writable | PS (2 MiB page).
    ok = ram.writeU64(PDE_START + i * 8, BigInt(i) * 0x200000n + 0x83n) && ok;
  }
  return ok;
}

/**
 * Write the 64-bit boot GDT and page tables and return the long-mode entry state Firecracker sets:
 * CS 64-bit code (0x08), data 0x10 in DS/ES/FS/GS/SS, TSS 0x18, CR0 PE|ET|PG, CR4 PAE, EFER LME|LMA,
 * CR3 = PML4_START, %rip = entry, %rsp = %rbp = BOOT_STACK_POINTER, %rsi = ZERO_PAGE_START.
 * @throws UserError if RAM does not reach the page tables
 */
export function linux64EntryState(ram: GuestMemory, entry: number): CpuEntryState {
  const table = [
    gdtEntry(0, 0, 0),
    gdtEntry(0xa09b, 0, 0xfffff), // 0x08: 64-bit code (L=1)
    gdtEntry(0xc093, 0, 0xfffff), // 0x10: data
    gdtEntry(0x808b, 0, 0xfffff), // 0x18: busy TSS
  ];
  const dt = writeGdt(ram, table);
  if (!dt || !writeIdentityPageTables(ram)) {
    throw new UserError("Cannot write the boot page tables: guest RAM is too small");
  }
  const data = segmentFromGdt(table[2], 2);
  const regs = zeroRegs();
  regs.rip = BigInt(entry);
  regs.rsp = BigInt(BOOT_STACK_POINTER);
  regs.rbp = BigInt(BOOT_STACK_POINTER);
  regs.rsi = BigInt(ZERO_PAGE_START);
  regs.rflags = 0x2n;
  return {
    regs,
    cs: segmentFromGdt(table[1], 1),
    ds: data,
    es: { ...data },
    fs: { ...data },
    gs: { ...data },
    ss: { ...data },
    tr: segmentFromGdt(table[3], 3),
    ldtr: { ...RESET_LDTR },
    gdt: dt.gdt,
    idt: dt.idt,
    cr0: X86_CR0_PE | X86_CR0_ET | X86_CR0_PG,
    cr3: BigInt(PML4_START),
    cr4: X86_CR4_PAE,
    efer: EFER_LME | EFER_LMA,
  };
}
