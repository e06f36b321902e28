import assert from "node:assert/strict";
import { FakeMemory } from "../../tests/fakes.ts";
import { UserError } from "../types.ts";
import { decodeE820, guestE820Entries } from "./e820.ts";
import {
  BP_E820_ENTRIES,
  BP_E820_TABLE,
  buildZeroPage,
  bzImageInitrdMax,
  linux64EntryState,
  parseBzImage,
  qemuSetupData,
} from "./bzimage.ts";
import { guestFile, makeBzImage } from "./_fixtures_test.ts";

Deno.test("parseBzImage reads the shipped bzImage's 2.15 header", async () => {
  const bz = parseBzImage(await guestFile("bzImage"), "bzImage");
  assert.equal(bz.version, 0x020f);
  assert.equal(bz.setupSize, (0x1f + 1) * 512);
  assert.equal(bz.cmdlineSize, 2047);
  assert.equal(bz.initrdAddrMax, 0x7fffffff);
  assert.equal(bz.prefAddress, 0x1000000);
  assert.equal(bz.initSize, 0x10d5000); // setup header init_size at 0x260 of the shipped bzImage
  assert.equal(bz.xloadflags & 1, 1);
  assert.equal(bzImageInitrdMax(bz, 512 << 20), (512 << 20) - 1);
});

Deno.test("parseBzImage gives each failed header check its own error naming the file", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["short", makeBzImage().slice(0, 0x250), /too short to hold a Linux setup header/],
    [
      "boot flag",
      patch(makeBzImage(), 0x1fe, 0),
      /no boot sector signature: 0xaa00 at 0x1fe, expected 0xaa55/,
    ],
    ["HdrS", patch(makeBzImage(), 0x203, 0), /no Linux setup header: "HdrS" is missing/],
    ["old", makeBzImage({ version: 0x0204 }), /boot protocol 2\.04: 2\.06 or newer is needed/],
    ["zImage", makeBzImage({ loadflags: 0 }), /not a bzImage: loadflags LOADED_HIGH is clear/],
    ["32-bit", makeBzImage({ xloadflags: 0 }), /no 64-bit entry point: xloadflags XLF_KERNEL_64 is clear/],
    ["2.11", makeBzImage({ version: 0x020b }), /no 64-bit entry point/],
    ["no payload", makeBzImage().slice(0, 1024), /truncated: the setup code needs 1024 bytes/],
    [
      "cut payload",
      makeBzImage().slice(0, 1024 + 0x100),
      /truncated: the kernel needs 1024 bytes after the setup code, the file has 256/,
    ],
  ];
  for (const [label, image, re] of cases) {
    assert.throws(() => parseBzImage(image, "bz.img"), (e) => {
      assert.ok(e instanceof UserError, label);
      assert.match(e.message, /^Linux kernel image 'bz.img' /, label);
      assert.match(e.message, re, label);
      return true;
    });
  }
});

Deno.test("parseBzImage treats setup_sects 0 as 4", () => {
  assert.equal(parseBzImage(makeBzImage({ setupSects: 0 }), "bz").setupSize, 5 * 512);
});

Deno.test("bzImageInitrdMax honours XLF_CAN_BE_LOADED_ABOVE_4G and clips to RAM below 4 GiB", () => {
  const low = parseBzImage(makeBzImage({ initrdAddrMax: 0x37ffffff }), "bz");
  assert.equal(bzImageInitrdMax(low, 0xc0000000), 0x37ffffff);
  assert.equal(bzImageInitrdMax(low, 0x10000000), 0x0fffffff);
  const high = parseBzImage(makeBzImage({ initrdAddrMax: 0x37ffffff, xloadflags: 3 }), "bz");
  assert.equal(bzImageInitrdMax(high, 0xc0000000), 0xbfffffff);
});

Deno.test("buildZeroPage copies the setup header and sets loader fields, cmdline, ramdisk and e820", () => {
  const image = makeBzImage();
  const e820 = guestE820Entries({ below4g: 64 << 20, above4g: 0 });
  const zp = buildZeroPage(image, { cmdlineAddr: 0x20000, e820, initrd: { addr: 0x3ff0000, size: 0x1234 } });
  const dv = new DataView(zp.buffer);
  assert.equal(zp.length, 4096);
  assert.equal(dv.getUint16(0x1fe, true), 0xaa55);
  assert.equal(dv.getUint32(0x202, true), 0x53726448);
  assert.equal(dv.getUint16(0x206, true), 0x020f);
  assert.equal(dv.getUint16(0x1f2, true), 1, "root_flags copied");
  assert.equal(zp[0x210], 0xff, "type_of_loader");
  assert.equal(zp[0x211], 0x81, "LOADED_HIGH | CAN_USE_HEAP");
  assert.equal(dv.getUint16(0x224, true), 0xfe00, "heap_end_ptr");
  assert.equal(dv.getUint32(0x228, true), 0x20000, "cmd_line_ptr");
  assert.equal(dv.getUint32(0x218, true), 0x3ff0000, "ramdisk_image");
  assert.equal(dv.getUint32(0x21c, true), 0x1234, "ramdisk_size");
  assert.equal(dv.getUint32(0x238, true), 2047, "cmdline_size copied");
  assert.equal(zp[0x1ef], 0, "sentinel stays 0");
  assert.ok(zp.subarray(0x26c, 0x290).every((b) => b === 0), "nothing past the header end");
  assert.equal(zp[BP_E820_ENTRIES], e820.length);
  assert.deepEqual(decodeE820(zp.subarray(BP_E820_TABLE, BP_E820_TABLE + 20 * e820.length)), e820);
});

Deno.test("qemuSetupData patches the header the way QEMU's x86_load_linux does", () => {
  const image = makeBzImage();
  const bz = parseBzImage(image, "bz");
  const s = qemuSetupData(image, bz, { cmdlineAddr: 0x20000, e820: [], initrd: { addr: 0x1000, size: 2 } });
  const dv = new DataView(s.buffer);
  assert.equal(s.length, 1024);
  assert.equal(s[0x210], 0xb0);
  assert.equal(dv.getUint32(0x228, true), 0x20000);
  assert.equal(dv.getUint32(0x218, true), 0x1000);
  assert.equal(image[0x210], 0, "the caller's image is untouched");
});

Deno.test("linux64EntryState sets long mode with Firecracker's GDT, IDT and identity page tables", () => {
  const ram = new FakeMemory(0x10000);
  const s = linux64EntryState(ram, 0x100200);
  assert.equal(s.regs.rip, 0x100200n);
  assert.equal(s.regs.rsi, 0x7000n);
  assert.equal(s.regs.rsp, 0x8ff0n);
  assert.equal(s.regs.rbp, 0x8ff0n);
  assert.equal(s.regs.rflags, 0x2n);
  assert.equal(s.regs.rax, 0n);
  assert.deepEqual(s.cs, { selector: 0x08, base: 0, limit: 0xffffffff, attrs: 0xa09b });
  for (const seg of [s.ds, s.es, s.fs, s.gs, s.ss]) {
    assert.deepEqual(seg, { selector: 0x10, base: 0, limit: 0xffffffff, attrs: 0xc093 });
  }
  assert.deepEqual(s.tr, { selector: 0x18, base: 0, limit: 0xffffffff, attrs: 0x808b });
  assert.equal(s.cr0, 0x80000011n);
  assert.equal(s.cr3, 0x9000n);
  assert.equal(s.cr4, 0x20n);
  assert.equal(s.efer, 0x500n);
  assert.deepEqual(s.gdt, { base: 0x500, limit: 31 });
  assert.deepEqual(s.idt, { base: 0x520, limit: 7 });
  // Firecracker regs.rs validate_segments_and_sregs / validate_page_tables values.
  assert.equal(ram.readU64(0x500), 0);
  assert.equal(ram.readU64(0x508), 0xaf9b000000ffff);
  assert.equal(ram.readU64(0x510), 0xcf93000000ffff);
  assert.equal(ram.readU64(0x518), 0x8f8b000000ffff);
  assert.equal(ram.readU64(0x520), 0);
  assert.equal(ram.readU64(0x9000), 0xa003);
  assert.equal(ram.readU64(0xa000), 0xb003);
  for (let i = 0; i < 512; i++) assert.equal(ram.readU64(0xb000 + i * 8), i * 0x200000 + 0x83);
});

Deno.test("linux64EntryState refuses RAM that ends before the page tables", () => {
  assert.throws(() => linux64EntryState(new FakeMemory(0xa000), 0x100200), UserError);
});

function patch(b: Uint8Array, at: number, v: number): Uint8Array {
  const c = b.slice();
  c[at] = v;
  return c;
}
