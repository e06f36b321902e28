/**
 * Boot-time GDT helpers shared by the PVH and 64-bit Linux entry paths (internal to core/boot).
 * Descriptor layout: Intel SDM Vol. 3A §3.4.5; the (flags, base, limit) form follows Firecracker's
 * arch/x86_64/gdt.rs, where `flags` is descriptor bits 40..55 with the limit nibble masked out.
 * @module
 */
import type { GuestMemory } from "../types.ts";
import { GPR_NAMES, type SegmentState } from "../accel.ts";

/** Guest-physical address of the boot GDT (Firecracker BOOT_GDT_OFFSET). */
export const BOOT_GDT_ADDR = 0x500;

/** A GDT descriptor as a bigint from `flags` (bits 40..55 minus the limit nibble), base and 20-bit limit. */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base >>> 0);
  const l = BigInt(limit >>> 0);
  const f = BigInt(flags & 0xf0ff);
  return ((b & 0xff000000n) << 32n) | ((f & 0xf0ffn) << 40n) | (((l >> 16n) & 0xfn) << 48n) |
    ((b & 0x00ffffffn) << 16n) | (l & 0xffffn);
}

/** The hidden-cache state a CPU loads from descriptor `entry` at GDT index `index`. */
export function segmentFromGdt(entry: bigint, index: number): SegmentState {
  const base = Number(((entry >> 16n) & 0xffffffn) | (((entry >> 56n) & 0xffn) << 24n)) >>> 0;
  const rawLimit = Number((entry & 0xffffn) | (((entry >> 48n) & 0xfn) << 16n));
  const attrs = Number((entry >> 40n) & 0xf0ffn);
  const g = (attrs & 0x8000) !== 0;
  return { selector: index * 8, base, limit: g ? ((rawLimit << 12) | 0xfff) >>> 0 : rawLimit, attrs };
}

/** GDTR and IDTR values written by writeGdt. */
export interface DescriptorTables {
  gdt: { base: number; limit: number };
  idt: { base: number; limit: number };
}

/**
 * Write `table` at BOOT_GDT_ADDR and one zero IDT entry right after it, 16-byte aligned (0x520 for
 * Firecracker's four-entry GDT, its BOOT_IDT_OFFSET). Returns null if RAM is too small.
 */
export function writeGdt(ram: GuestMemory, table: readonly bigint[]): DescriptorTables | null {
  let ok = true;
  table.forEach((e, i) => {
    ok = ram.writeU64(BOOT_GDT_ADDR + i * 8, e) && ok;
  });
  const idtBase = (BOOT_GDT_ADDR + table.length * 8 + 15) & ~15;
  ok = ram.writeU64(idtBase, 0n) && ok;
  if (!ok) return null;
  return { gdt: { base: BOOT_GDT_ADDR, limit: table.length * 8 - 1 }, idt: { base: idtBase, limit: 7 } };
}

/** LDTR as KVM's vCPU reset leaves it (selector 0, limit 0xffff, present LDT type 2). */
export const RESET_LDTR: Readonly<SegmentState> = { selector: 0, base: 0, limit: 0xffff, attrs: 0x0082 };

/** CpuEntryState.regs with every general register, rip and rflags present and zero. */
export function zeroRegs(): Record<string, bigint> {
  const regs: Record<string, bigint> = {};
  for (const r of [...GPR_NAMES, "rip", "rflags"]) regs[r] = 0n;
  return regs;
}
