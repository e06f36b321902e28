import assert from "node:assert/strict";
import { FakeMemory } from "../../tests/fakes.ts";
import { UserError } from "../types.ts";
import { guestE820Entries } from "./e820.ts";
import {
  PVH_INFO_START,
  PVH_MEMMAP_START,
  PVH_MODLIST_START,
  pvhEntryState,
  writeStartInfo,
  XEN_HVM_START_MAGIC_VALUE,
} from "./pvh.ts";

Deno.test("writeStartInfo fills hvm_start_info v1, the module list and the memory map", () => {
  const ram = new FakeMemory(0x200000);
  const memmap = guestE820Entries({ below4g: 0x200000, above4g: 0 });
  const at = writeStartInfo(ram, { cmdlineAddr: 0x20000, memmap, initrd: { addr: 0x1ff000, size: 0x123 } });
  assert.equal(at, PVH_INFO_START);
  assert.equal(ram.readU32(at), XEN_HVM_START_MAGIC_VALUE);
  assert.equal(ram.readU32(at + 4), 1);
  assert.equal(ram.readU32(at + 8), 0);
  assert.equal(ram.readU32(at + 12), 1);
  assert.equal(ram.readU64(at + 16), PVH_MODLIST_START);
  assert.equal(ram.readU64(at + 24), 0x20000);
  assert.equal(ram.readU64(at + 32), 0);
  assert.equal(ram.readU64(at + 40), PVH_MEMMAP_START);
  assert.equal(ram.readU32(at + 48), memmap.length);
  assert.equal(ram.readU64(PVH_MODLIST_START), 0x1ff000);
  assert.equal(ram.readU64(PVH_MODLIST_START + 8), 0x123);
  assert.equal(ram.readU64(PVH_MODLIST_START + 16), 0);
  memmap.forEach((e, i) => {
    const o = PVH_MEMMAP_START + i * 24;
    assert.deepEqual([ram.readU64(o), ram.readU64(o + 8), ram.readU32(o + 16), ram.readU32(o + 20)], [
      e.addr,
      e.size,
      e.type,
      0,
    ]);
  });
});

Deno.test("writeStartInfo without an initrd has no modules", () => {
  const ram = new FakeMemory(0x200000);
  writeStartInfo(ram, { cmdlineAddr: 0x20000, memmap: [] });
  assert.equal(ram.readU32(PVH_INFO_START + 12), 0);
  assert.equal(ram.readU64(PVH_INFO_START + 16), 0);
});

Deno.test("writeStartInfo refuses RAM too small to hold it", () => {
  assert.throws(() => writeStartInfo(new FakeMemory(0x6010), { cmdlineAddr: 0, memmap: [] }), UserError);
});

Deno.test("pvhEntryState is 32-bit flat protected mode with %ebx = start_info and a busy TSS", () => {
  const ram = new FakeMemory(0x10000);
  const s = pvhEntryState(ram, 0x1000600, PVH_INFO_START);
  assert.equal(s.regs.rip, 0x1000600n);
  assert.equal(s.regs.rbx, BigInt(PVH_INFO_START));
  assert.equal(s.regs.rflags, 0x2n);
  assert.equal(s.regs.rsp, 0n);
  assert.deepEqual(s.cs, { selector: 0x10, base: 0, limit: 0xffffffff, attrs: 0xc09b });
  for (const seg of [s.ds, s.es, s.ss, s.fs, s.gs]) {
    assert.deepEqual(seg, { selector: 0x18, base: 0, limit: 0xffffffff, attrs: 0xc093 });
  }
  assert.deepEqual(s.tr, { selector: 0x20, base: 0, limit: 0x67, attrs: 0x008b });
  assert.equal(s.cr0, 0x11n);
  assert.deepEqual([s.cr3, s.cr4, s.efer], [0n, 0n, 0n]);
  // The GDT in RAM holds the same descriptors the hidden state was taken from.
  assert.deepEqual(s.gdt, { base: 0x500, limit: 39 });
  assert.equal(ram.readU64(0x500 + 0x10), Number(0x00cf9b000000ffffn));
  assert.equal(ram.readU64(0x500 + 0x18), Number(0x00cf93000000ffffn));
  assert.equal(ram.readU64(0x500 + 0x20), Number(0x00008b0000000067n));
  assert.deepEqual(s.idt, { base: 0x530, limit: 7 });
});
