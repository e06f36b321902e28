import assert from "node:assert/strict";
import { FakeMemory } from "../../tests/fakes.ts";
import { UserError } from "../types.ts";
import { isElf, loadElfSegments, parseElfKernel } from "./elf.ts";
import { concat, guestFile, makeElf, note, pvhNote } from "./_fixtures_test.ts";

Deno.test("parseElfKernel finds the PVH note after other notes", () => {
  const notes = concat(
    note("GNU", 3, new Uint8Array(20)),
    note("Linux", 1, new Uint8Array(1)),
    pvhNote(0x100600),
  );
  const k = parseElfKernel(makeElf([{ paddr: 0x100000, data: new Uint8Array(16) }], notes), "k");
  assert.equal(k.pvhEntry, 0x100600);
  assert.deepEqual([k.low, k.high], [0x100000, 0x100010]);
});

Deno.test("parseElfKernel accepts a 4-byte PVH descriptor and reports a missing note as null", () => {
  const d = new Uint8Array([0x00, 0x06, 0x10, 0x00]);
  const seg = [{ paddr: 0x100000, data: new Uint8Array(4) }];
  assert.equal(parseElfKernel(makeElf(seg, note("Xen", 18, d)), "k").pvhEntry, 0x100600);
  assert.equal(parseElfKernel(makeElf(seg, note("Xen", 17, d)), "k").pvhEntry, null);
  assert.equal(parseElfKernel(makeElf(seg), "k").pvhEntry, null);
});

Deno.test("loadElfSegments copies file bytes to p_paddr and zeroes the bss tail", () => {
  const ram = new FakeMemory(0x300000);
  ram.bytes.fill(0xcc, 0x200000, 0x200100);
  const img = makeElf([
    { paddr: 0x100000, data: new Uint8Array([1, 2, 3, 4]) },
    { paddr: 0x200000, data: new Uint8Array([5, 6]), memsz: 0x100 },
  ], pvhNote(0x100000));
  const k = parseElfKernel(img, "k");
  loadElfSegments(ram, img, k, { name: "k", minAddr: 0x100000, limit: ram.size });
  assert.deepEqual([...ram.bytes.subarray(0x100000, 0x100004)], [1, 2, 3, 4]);
  assert.deepEqual([...ram.bytes.subarray(0x200000, 0x200003)], [5, 6, 0]);
  assert.ok(ram.bytes.subarray(0x200002, 0x200100).every((b) => b === 0));
  assert.equal(k.high, 0x200100);
});

Deno.test("loadElfSegments refuses segments below 1 MiB or beyond RAM, naming the file", () => {
  const ram = new FakeMemory(0x200000);
  const low = makeElf([{ paddr: 0x9000, data: new Uint8Array(4) }]);
  assert.throws(
    () =>
      loadElfSegments(ram, low, parseElfKernel(low, "low.elf"), {
        name: "low.elf",
        minAddr: 0x100000,
        limit: ram.size,
      }),
    (e) => e instanceof UserError && /'low.elf'.*below 0x100000/.test(e.message),
  );
  const big = makeElf([{ paddr: 0x1f0000, data: new Uint8Array(4), memsz: 0x20000 }]);
  assert.throws(
    () =>
      loadElfSegments(ram, big, parseElfKernel(big, "big.elf"), {
        name: "big.elf",
        minAddr: 0x100000,
        limit: ram.size,
      }),
    (e) => e instanceof UserError && /'big.elf' does not fit in guest RAM/.test(e.message),
  );
});

Deno.test("parseElfKernel gives each corrupt header its own error", () => {
  const good = makeElf([{ paddr: 0x100000, data: new Uint8Array(64) }], pvhNote(0x100000));
  const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ["not ELF", (b) => b.map((v, i) => (i === 1 ? 0 : v)), /is not an ELF file/],
    ["truncated header", (b) => b.slice(0, 40), /truncated: the ELF header/],
    ["32-bit", (b) => b.map((v, i) => (i === 4 ? 1 : v)), /not a 64-bit ELF/],
    ["big-endian", (b) => b.map((v, i) => (i === 5 ? 2 : v)), /not a little-endian/],
    ["relocatable", (b) => b.map((v, i) => (i === 16 ? 1 : v)), /not an executable ELF file \(e_type 1\)/],
    ["arm64", (b) => b.map((v, i) => (i === 18 ? 183 : v)), /not an x86-64 ELF file \(e_machine 183\)/],
    ["bad phentsize", (b) => b.map((v, i) => (i === 54 ? 32 : v)), /invalid program header size 32/],
    ["no phdrs", (b) => b.map((v, i) => (i === 56 ? 0 : v)), /has no program headers/],
    ["phdrs cut", (b) => b.slice(0, 100), /program headers end past the end/],
    ["segment cut", (b) => b.slice(0, b.length - 80), /segment 0 ends past the end/],
  ];
  for (const [label, mutate, re] of cases) {
    assert.throws(() => parseElfKernel(mutate(good.slice()), "bad.elf"), (e) => {
      assert.ok(e instanceof UserError, label);
      assert.match(e.message, /^Linux kernel image 'bad.elf' /, label);
      assert.match(e.message, re, label);
      return true;
    });
  }
});

Deno.test("isElf recognises the magic only", () => {
  assert.ok(isElf(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])));
  assert.ok(!isElf(new Uint8Array([0x7f, 0x45, 0x4c])));
  assert.ok(!isElf(new Uint8Array(512)));
});

Deno.test("parseElfKernel reads the shipped vmlinux as QEMU 7.2 loads it", async () => {
  const vmlinux = await guestFile("vmlinux.gz");
  const k = parseElfKernel(vmlinux, "vmlinux");
  // guest/README.md: PVH note XEN_ELFNOTE_PHYS32_ENTRY = 0x1000600; PT_LOAD paddr/memsz as `readelf -lW vmlinux`
  // prints them for the kernel rebuilt with 9P/VSOCK/BALLOON (QEMU's `info roms` lists the same segments; the
  // shared captures are of the previous build: 0x1a00000 size 0x1a8000 ... 0x1bca000 size 0x24e000).
  assert.equal(k.pvhEntry, 0x1000600);
  assert.deepEqual(k.segments.map((s) => [s.paddr, s.memsz]), [
    [0x1000000, 0x87fd4c],
    [0x1a00000, 0x1b1000],
    [0x1bb1000, 0x210a8],
    [0x1bd3000, 0x245000],
  ]);
  assert.deepEqual([k.low, k.high], [0x1000000, 0x1e18000]);
});
