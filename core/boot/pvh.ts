/**
 * The x86/HVM direct boot ABI (PVH): `struct hvm_start_info` version 1 with its module list and memory
 * map (xen/include/public/arch-x86/hvm/start_info.h), and the 32-bit protected-mode entry state the ABI
 * prescribes (xen docs/misc/pvh.pandoc). Placement follows Firecracker/Cloud Hypervisor's low-memory
 * layout, since without qboot there is no firmware heap to hold them.
 * @module
 */
import { UserError } from "../types.ts";
import type { GuestMemory } from "../types.ts";
import type { CpuEntryState } from "../accel.ts";
import type { E820Entry } from "./e820.ts";
import { gdtEntry, RESET_LDTR, segmentFromGdt, writeGdt, zeroRegs } from "./_gdt.ts";

/** hvm_start_info.magic ("xEn3" with bit 7 of 'E' set). */
export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
/** Where hvm_start_info goes (Firecracker PVH_INFO_START). */
export const PVH_INFO_START = 0x6000;
/** Where the module list goes, right after hvm_start_info (Firecracker MODLIST_START). */
export const PVH_MODLIST_START = 0x6040;
/** Where the memory map goes (Firecracker MEMMAP_START). */
export const PVH_MEMMAP_START = 0x7000;
/** Size of hvm_start_info version 1. */
export const HVM_START_INFO_SIZE = 56;
/** Size of one hvm_modlist_entry. */
export const HVM_MODLIST_ENTRY_SIZE = 32;
/** Size of one hvm_memmap_table_entry. */
export const HVM_MEMMAP_ENTRY_SIZE = 24;
/** Most memmap entries that fit between PVH_MEMMAP_START and the 0x8000 page. */
export const PVH_MEMMAP_MAX = Math.floor(0x1000 / HVM_MEMMAP_ENTRY_SIZE);

/** PVH boot code selector: Linux's __BOOT_CS (GDT index 2). */
export const PVH_BOOT_CS = 0x10;
/** PVH boot data selector: Linux's __BOOT_DS (GDT index 3). */
export const PVH_BOOT_DS = 0x18;
/** PVH boot TSS selector (GDT index 4). */
export const PVH_BOOT_TSS = 0x20;

const X86_CR0_PE = 0x1n;
const X86_CR0_ET = 0x10n;

/** What goes into hvm_start_info. */
export interface StartInfoOptions {
  cmdlineAddr: number;
  memmap: readonly E820Entry[];
  /** The initrd as module 0, if any. */
  initrd?: { addr: number; size: number } | undefined;
}

/**
 * Write hvm_start_info at PVH_INFO_START, the module list at PVH_MODLIST_START and the memory map at
 * PVH_MEMMAP_START. Returns the start_info address (the entry's %ebx).
 * @throws UserError when guest RAM cannot hold them or the map is too long
 */
export function writeStartInfo(ram: GuestMemory, opts: StartInfoOptions): number {
  if (opts.memmap.length > PVH_MEMMAP_MAX) {
    throw new UserError(
      `Cannot pass ${opts.memmap.length} memory map entries to a PVH kernel: the limit is ${PVH_MEMMAP_MAX}`,
    );
  }
  const info = new Uint8Array(HVM_START_INFO_SIZE);
  const dv = new DataView(info.buffer);
  dv.setUint32(0, XEN_HVM_START_MAGIC_VALUE, true);
  dv.setUint32(4, 1, true); // version 1: memmap fields present
  dv.setUint32(8, 0, true); // flags
  let ok = true;
  if (opts.initrd) {
    dv.setUint32(12, 1, true);
    dv.setBigUint64(16, BigInt(PVH_MODLIST_START), true);
    const mod = new Uint8Array(HVM_MODLIST_ENTRY_SIZE);
    const mv = new DataView(mod.buffer);
    mv.setBigUint64(0, BigInt(opts.initrd.addr), true);
    mv.setBigUint64(8, BigInt(opts.initrd.size), true);
    ok = ram.write(PVH_MODLIST_START, mod) && ok;
  }
  dv.setBigUint64(24, BigInt(opts.cmdlineAddr), true);
  dv.setBigUint64(32, 0n, true); // rsdp_paddr: no ACPI
  dv.setBigUint64(40, BigInt(PVH_MEMMAP_START), true);
  dv.setUint32(48, opts.memmap.length, true);

  const map = new Uint8Array(opts.memmap.length * HVM_MEMMAP_ENTRY_SIZE);
  const mapv = new DataView(map.buffer);
  opts.memmap.forEach((e, i) => {
    const o = i * HVM_MEMMAP_ENTRY_SIZE;
    mapv.setBigUint64(o, BigInt(e.addr), true);
    mapv.setBigUint64(o + 8, BigInt(e.size), true);
    mapv.setUint32(o + 16, e.type >>> 0, true);
  });
  ok = ram.write(PVH_MEMMAP_START, map) && ok;
  ok = ram.write(PVH_INFO_START, info) && ok;
  if (!ok) throw new UserError("Cannot write the PVH start info: guest RAM is too small");
  return PVH_INFO_START;
}

/**
 * Write the boot GDT and return the PVH entry state: 32-bit protected mode, paging off, flat CS/DS/ES/SS
 * (base 0, limit 4 GiB), an active 32-bit TSS (limit 0x67) that KVM needs, %ebx = start_info, %eip = entry.
 * @throws UserError when guest RAM does not reach the GDT
 */
export function pvhEntryState(ram: GuestMemory, entry: number, startInfo: number): CpuEntryState {
  const table = [
    gdtEntry(0, 0, 0),
    gdtEntry(0, 0, 0),
    gdtEntry(0xc09b, 0, 0xfffff), // 0x10: 32-bit code, execute/read, 4 KiB granular
    gdtEntry(0xc093, 0, 0xfffff), // 0x18: 32-bit data, read/write
    gdtEntry(0x008b, 0, 0x67), // 0x20: busy 32-bit TSS
  ];
  const dt = writeGdt(ram, table);
  if (!dt) throw new UserError("Cannot write the boot GDT: guest RAM is too small");
  const cs = segmentFromGdt(table[2], 2);
  const ds = segmentFromGdt(table[3], 3);
  const tr = segmentFromGdt(table[4], 4);
  const regs = zeroRegs();
  regs.rbx = BigInt(startInfo >>> 0);
  regs.rip = BigInt(entry >>> 0);
  regs.rflags = 0x2n;
  return {
    regs,
    cs,
    ds,
    es: { ...ds },
    ss: { ...ds },
    fs: { ...ds },
    gs: { ...ds },
    tr,
    ldtr: { ...RESET_LDTR },
    gdt: dt.gdt,
    idt: dt.idt,
    cr0: X86_CR0_PE | X86_CR0_ET,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  };
}
