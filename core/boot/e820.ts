/**
 * The BIOS e820 memory map in its two forms: QEMU's `etc/e820` fw_cfg file (what the board knows) and
 * the map the guest sees once qboot has added its low-memory holes (what Linux prints as `BIOS-e820`).
 * @module
 */

/** E820 type: usable RAM. */
export const E820_RAM = 1;
/** E820 type: reserved. */
export const E820_RESERVED = 2;
/** E820 type: ACPI reclaimable. */
export const E820_ACPI = 3;
/** E820 type: ACPI NVS. */
export const E820_NVS = 4;
/** E820 type: unusable. */
export const E820_UNUSABLE = 5;

/** Bytes of one packed e820 entry (u64 addr, u64 size, u32 type), as in QEMU's etc/e820 and boot_params. */
export const E820_ENTRY_SIZE = 20;

/** Start of the 1 KiB EBDA that qboot reserves (639 KiB); the MP table lives there. */
export const EBDA_START = 0x9fc00;
/** Start of high memory (1 MiB). */
export const HIMEM_START = 0x100000;
/** 4 GiB: where RAM above the PCI hole starts. */
export const FOUR_GIB = 0x1_0000_0000;

/** One memory-map entry. Addresses and sizes are exact JS numbers (below 2^53). */
export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/** How the board split guest RAM around the 4 GiB hole. */
export interface RamLayout {
  /** Bytes of RAM mapped at [0, below4g). */
  below4g: number;
  /** Bytes of RAM mapped at [4 GiB, 4 GiB + above4g). */
  above4g: number;
}

/**
 * The entries of QEMU's `etc/e820` fw_cfg file: `accelReserved` first (KVM's identity-map/TSS page at
 * 0xfeffc000 is added by kvm_arch_init, before the board runs), then RAM below 4 GiB, then RAM above it
 * (hw/i386/microvm.c microvm_memory_init).
 */
export function fwCfgE820Entries(layout: RamLayout, accelReserved: readonly E820Entry[] = []): E820Entry[] {
  const out: E820Entry[] = accelReserved.map((e) => ({ ...e }));
  out.push({ addr: 0, size: layout.below4g, type: E820_RAM });
  if (layout.above4g > 0) out.push({ addr: FOUR_GIB, size: layout.above4g, type: E820_RAM });
  return out;
}

/**
 * The map the guest sees after qboot's extract_e820 (qboot main.c): its four fixed low entries (639 KiB
 * RAM, 1 KiB EBDA, 0xd0000 128 KiB NVS, 0xf0000 64 KiB reserved) followed by the fw_cfg entries, with the
 * RAM entry that starts at 0 moved to start at 1 MiB. Used for PVH memmap and the zero page alike.
 */
export function guestE820Entries(layout: RamLayout, accelReserved: readonly E820Entry[] = []): E820Entry[] {
  const out: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: 0x400, type: E820_RESERVED },
    { addr: 0xd0000, size: 0x20000, type: E820_NVS },
    { addr: 0xf0000, size: 0x10000, type: E820_RESERVED },
  ];
  let moved = false;
  for (const e of fwCfgE820Entries(layout, accelReserved)) {
    if (!moved && e.addr === 0) {
      // qboot keeps the whole below-4G size as "lowmem" and shifts the entry to 1 MiB.
      moved = true;
      out.push({ addr: HIMEM_START, size: e.size - HIMEM_START, type: e.type });
    } else {
      out.push(e);
    }
  }
  return out;
}

/** Pack entries as 20-byte little-endian records (QEMU's struct e820_entry, also boot_params.e820_table). */
export function encodeE820(entries: readonly E820Entry[]): Uint8Array {
  const out = new Uint8Array(entries.length * E820_ENTRY_SIZE);
  const dv = new DataView(out.buffer);
  entries.forEach((e, i) => {
    const o = i * E820_ENTRY_SIZE;
    dv.setBigUint64(o, BigInt(e.addr), true);
    dv.setBigUint64(o + 8, BigInt(e.size), true);
    dv.setUint32(o + 16, e.type >>> 0, true);
  });
  return out;
}

/** Parse 20-byte records back into entries (tests, `info` commands). Trailing partial bytes are ignored. */
export function decodeE820(bytes: Uint8Array): E820Entry[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: E820Entry[] = [];
  for (let o = 0; o + E820_ENTRY_SIZE <= bytes.length; o += E820_ENTRY_SIZE) {
    out.push({
      addr: Number(dv.getBigUint64(o, true)),
      size: Number(dv.getBigUint64(o + 8, true)),
      type: dv.getUint32(o + 16, true),
    });
  }
  return out;
}
