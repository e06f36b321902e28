import assert from "node:assert/strict";
import {
  decodeE820,
  E820_NVS,
  E820_RAM,
  E820_RESERVED,
  encodeE820,
  fwCfgE820Entries,
  guestE820Entries,
} from "./e820.ts";

/** Render like Linux's e820__print_table ("BIOS-e820: [mem 0x...-0x...] usable"). */
function render(entries: { addr: number; size: number; type: number }[]): string[] {
  const names: Record<number, string> = { 1: "usable", 2: "reserved", 3: "ACPI data", 4: "ACPI NVS" };
  const h = (v: number) => "0x" + v.toString(16).padStart(16, "0");
  return entries.map((e) => `[mem ${h(e.addr)}-${h(e.addr + e.size - 1)}] ${names[e.type]}`);
}

Deno.test("guestE820Entries matches the bzImage guest's BIOS-e820 lines for -m 512m under TCG", () => {
  // Provenance: captures/tcg-legacy-bzImage-initrd.console.txt lines 4-8 (QEMU 7.2 + qboot, 64-bit boot).
  assert.deepEqual(render(guestE820Entries({ below4g: 512 << 20, above4g: 0 })), [
    "[mem 0x0000000000000000-0x000000000009fbff] usable",
    "[mem 0x000000000009fc00-0x000000000009ffff] reserved",
    "[mem 0x00000000000d0000-0x00000000000effff] ACPI NVS",
    "[mem 0x00000000000f0000-0x00000000000fffff] reserved",
    "[mem 0x0000000000100000-0x000000001fffffff] usable",
  ]);
});

Deno.test("guestE820Entries keeps KVM's reserved page first and shifts the RAM entry to 1 MiB", () => {
  const kvm = [{ addr: 0xfeffc000, size: 0x4000, type: E820_RESERVED }];
  const map = guestE820Entries({ below4g: 512 << 20, above4g: 0 }, kvm);
  assert.deepEqual(map.slice(4), [
    { addr: 0xfeffc000, size: 0x4000, type: E820_RESERVED },
    { addr: 0x100000, size: (512 << 20) - 0x100000, type: E820_RAM },
  ]);
});

Deno.test("fwCfgE820Entries lists RAM below and above 4 GiB as QEMU's etc/e820 does", () => {
  const entries = fwCfgE820Entries({ below4g: 0xc0000000, above4g: 0x40000000 });
  assert.deepEqual(entries, [
    { addr: 0, size: 0xc0000000, type: E820_RAM },
    { addr: 0x1_0000_0000, size: 0x40000000, type: E820_RAM },
  ]);
  const bytes = encodeE820(entries);
  assert.equal(bytes.length, 40);
  // u64 addr, u64 size, u32 type, little-endian, packed.
  assert.deepEqual([...bytes.subarray(20, 40)], [
    0,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    0x40,
    0,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
  ]);
  assert.deepEqual(decodeE820(bytes), entries);
  const guest = guestE820Entries({ below4g: 0xc0000000, above4g: 0x40000000 });
  assert.deepEqual(guest.map((e) => e.type), [
    E820_RAM,
    E820_RESERVED,
    E820_NVS,
    E820_RESERVED,
    E820_RAM,
    E820_RAM,
  ]);
});
