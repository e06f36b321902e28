import assert from "node:assert/strict";
import { ABOVE_4G_BASE, GuestPhysMap, GuestRam, MICROVM_LOWMEM } from "./memory.ts";
import { UserError } from "./types.ts";

Deno.test("GuestRam maps all RAM below 4G when it fits", () => {
  const ram = new GuestRam({ size: 512 * 1024 * 1024 });
  assert.equal(ram.below4g, 512 * 1024 * 1024);
  assert.equal(ram.above4g, 0);
  assert.ok(ram.buffer instanceof SharedArrayBuffer);
  assert.ok(ram.writeU32(0x9fc00, 0x12345678));
  assert.equal(ram.readU32(0x9fc00), 0x12345678);
  assert.equal(ram.readU16(0x9fc02), 0x1234);
  assert.equal(ram.readU8(0x9fc00), 0x78);
});

Deno.test("GuestRam splits RAM at 3 GiB and maps the rest at 4 GiB", () => {
  const size = 4 * 1024 * 1024 * 1024 + 0x1000;
  const ram = new GuestRam({ size, romReserve: 0 });
  assert.equal(ram.below4g, MICROVM_LOWMEM);
  assert.equal(ram.above4g, size - MICROVM_LOWMEM);
  assert.equal(ram.isRam(MICROVM_LOWMEM, 1), false); // the 32-bit hole
  assert.equal(ram.readU8(MICROVM_LOWMEM), 0xff);
  const top = ABOVE_4G_BASE + ram.above4g - 8;
  assert.ok(ram.writeU64(top, 0x0123456789abcdefn));
  assert.equal(ram.u8[ram.size - 8], 0xef);
  assert.equal(ram.readU32(top + 4), 0x01234567);
  assert.equal(ram.isRam(top, 9), false);
  assert.equal(ram.readU64(top + 1), -1);
  assert.deepEqual(ram.ramMappings(), [
    { gpa: 0, size: MICROVM_LOWMEM, offset: 0, readOnly: false },
    { gpa: ABOVE_4G_BASE, size: ram.above4g, offset: MICROVM_LOWMEM, readOnly: false },
  ]);
  const pm = new GuestPhysMap(ram);
  assert.equal(pm.pageBase(ABOVE_4G_BASE / 0x1000 + 1), MICROVM_LOWMEM + 0x1000);
  assert.equal(pm.pageBase(MICROVM_LOWMEM / 0x1000), -1);
});

Deno.test("GuestRam refuses out-of-range and overflowing accesses without throwing", () => {
  const ram = new GuestRam({ size: 0x10000 });
  assert.equal(ram.read(0xfff0, 0x11), null);
  assert.equal(ram.view(0, 0x10001), null);
  assert.equal(ram.write(-1, new Uint8Array(1)), false);
  assert.equal(ram.write(0x8000, new Uint8Array(0x8001)), false);
  assert.equal(ram.isRam(2 ** 64 - 1, 2), false);
  assert.equal(ram.isRam(1, Number.MAX_SAFE_INTEGER), false);
  assert.equal(ram.isRam(0.5, 1), false);
  assert.equal(ram.isRam(NaN, 1), false);
  assert.equal(ram.isRam(0x10000, 0), true);
  assert.equal(ram.readInto(0xffff, new Uint8Array(2)), false);
  assert.equal(ram.readU32(0xfffd), 0xffffffff);
  assert.equal(ram.writeU16(0xffff, 1), false);
  // ROM space after RAM is never reachable through GuestMemory
  ram.allocRom("pc.bios", 0x10000);
  assert.equal(ram.isRam(0x10000, 1), false);
});

Deno.test("GuestRam allocates ROM blobs in the same backing store and clear() keeps them", () => {
  const ram = new GuestRam({ size: 0x10000 });
  const bios = ram.allocRom("pc.bios", 0x10000);
  assert.equal(bios.offset, 0x10000);
  assert.equal(bios.bytes.buffer, ram.buffer);
  bios.bytes[0] = 0xea;
  ram.writeU8(0, 1);
  ram.clear();
  assert.equal(ram.readU8(0), 0);
  assert.equal(ram.u8[bios.offset], 0xea);
  assert.equal(ram.rom("pc.bios"), bios);
  assert.throws(() => ram.allocRom("pc.bios", 1), UserError);
  assert.throws(() => ram.allocRom("huge", 0x2000000), UserError);
  assert.throws(() => new GuestRam({ size: 0 }), UserError);
});

Deno.test("GuestPhysMap applies later mappings over earlier ones and marks ROM read-only", () => {
  const ram = new GuestRam({ size: 0x200000 });
  const bios = ram.allocRom("pc.bios", 0x10000);
  const pm = new GuestPhysMap(ram, [
    { gpa: 0, size: 0x200000, offset: 0, readOnly: false },
    { gpa: 0xf0000, size: 0x10000, offset: bios.offset, readOnly: true },
  ]);
  assert.equal(pm.pageBase(0xef), 0xef000);
  assert.equal(pm.pageBase(0xf5), bios.offset + 0x5000);
  assert.equal(pm.isReadOnly(0xf5), true);
  assert.equal(pm.isReadOnly(0x100), false);
  assert.equal(pm.pageBase(0x200), -1);
  assert.equal(pm.pageBase(-1), -1);
  assert.equal(pm.u8, ram.u8);
});
