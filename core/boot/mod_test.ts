import assert from "node:assert/strict";
import { FakeMemory } from "../../tests/fakes.ts";
import { UserError } from "../types.ts";
import { CMDLINE_START, decodeE820, guestE820Entries, loadLinux, MPTABLE_START } from "./mod.ts";
import { guestFile, makeBzImage, makeElf, pvhNote } from "./_fixtures_test.ts";

const MIB = 1 << 20;
// QEMU 7.2 TCG "max" CPUID.01H EAX/EDX (see mptable_test.ts).
const TCG_CPU = { cpuSignature: 0x00060fb1, cpuFeatures: 0x1fcbfbfd };
const CMDLINE = "earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t";

function cString(ram: FakeMemory, at: number): string {
  const end = ram.bytes.indexOf(0, at);
  return new TextDecoder().decode(ram.bytes.subarray(at, end));
}

Deno.test("loadLinux boots the shipped vmlinux through PVH with the initrd where QEMU puts it", async () => {
  const kernel = await guestFile("vmlinux.gz");
  const initrd = await guestFile("initramfs.cpio.gz");
  const ram = new FakeMemory(512 * MIB);
  const boot = loadLinux(ram, {
    kernel,
    kernelName: "vmlinux",
    initrd,
    initrdName: "initramfs.cpio.gz",
    cmdline: CMDLINE,
    layout: { below4g: 512 * MIB, above4g: 0 },
    ncpus: 2,
    ...TCG_CPU,
  });
  assert.equal(boot.protocol, "pvh");
  assert.equal(boot.entry.regs.rip, 0x1000600n);
  assert.equal(boot.entry.regs.rbx, 0x6000n);
  assert.equal(boot.entry.cr0, 0x11n);
  assert.deepEqual(boot.kernel, { addr: 0x1000000, end: 0x1e18000 });
  // First PT_LOAD: file offset 0x200000 → 0x1000000.
  assert.deepEqual(ram.bytes.subarray(0x1000000, 0x1000100), kernel.subarray(0x200000, 0x200100));
  // (initrd_max 0x1fffffff - size) & ~0xfff, QEMU 7.2's rule: with the old 1032301-byte initramfs the captures
  // show "RAMDISK: [mem 0x1feff000-..."; the current 1049524-byte one lands at 0x1feff000.
  assert.deepEqual(boot.initrd, { addr: 0x1feff000, size: initrd.length });
  assert.deepEqual(ram.bytes.subarray(0x1feff000, 0x1feff000 + initrd.length), initrd);

  const si = Number(boot.entry.regs.rbx);
  assert.equal(ram.readU32(si), 0x336ec578);
  assert.equal(cString(ram, ram.readU64(si + 24)), CMDLINE);
  assert.equal(ram.readU32(si + 12), 1);
  const mod = ram.readU64(si + 16);
  assert.deepEqual([ram.readU64(mod), ram.readU64(mod + 8)], [0x1feff000, initrd.length]);
  const memmap = ram.readU64(si + 40);
  const n = ram.readU32(si + 48);
  const entries = Array.from({ length: n }, (_, i) => ({
    addr: ram.readU64(memmap + i * 24),
    size: ram.readU64(memmap + i * 24 + 8),
    type: ram.readU32(memmap + i * 24 + 16),
  }));
  assert.deepEqual(entries, guestE820Entries({ below4g: 512 * MIB, above4g: 0 }));

  // qboot's MP table, byte for byte against the capture's first 64 bytes.
  assert.equal(ram.readU32(MPTABLE_START), 0x5f504d5f);
  assert.equal(ram.readU32(MPTABLE_START + 0x14), 0xf60400ec);
  assert.deepEqual(ram.bytes.subarray(MPTABLE_START, MPTABLE_START + boot.mptable.length), boot.mptable);

  assert.deepEqual(decodeE820(boot.e820File), [{ addr: 0, size: 512 * MIB, type: 1 }]);
  assert.equal(boot.fwCfg.kernelAddr, 0x1000000);
  assert.equal(boot.fwCfg.kernelSize, 0xe18000);
  assert.equal(boot.fwCfg.kernelEntry, 0x1000600);
  assert.equal(boot.fwCfg.setupSize, 8192);
  assert.deepEqual(boot.fwCfg.setupData, kernel.subarray(0, 8192));
  assert.equal(boot.fwCfg.cmdlineSize, CMDLINE.length + 1);
  assert.equal(boot.fwCfg.cmdlineAddr, null);
  assert.deepEqual([boot.fwCfg.initrdAddr, boot.fwCfg.initrdSize], [0x1feff000, initrd.length]);
});

Deno.test("loadLinux boots the shipped bzImage through the 64-bit protocol as QEMU places it", async () => {
  const kernel = await guestFile("bzImage");
  const initrd = await guestFile("initramfs.cpio.gz");
  const ram = new FakeMemory(512 * MIB);
  const boot = loadLinux(ram, {
    kernel,
    kernelName: "bzImage",
    initrd,
    cmdline: CMDLINE,
    layout: { below4g: 512 * MIB, above4g: 0 },
    ncpus: 2,
    ...TCG_CPU,
  });
  assert.equal(boot.protocol, "linux64");
  assert.equal(boot.entry.regs.rip, 0x100200n);
  assert.equal(boot.entry.regs.rsi, 0x7000n);
  assert.equal(boot.entry.efer, 0x500n);
  const setup = (kernel[0x1f1] + 1) * 512;
  assert.deepEqual(ram.bytes.subarray(0x100000, 0x100000 + 4096), kernel.subarray(setup, setup + 4096));
  assert.deepEqual(boot.initrd, { addr: 0x1feff000, size: initrd.length });
  const zp = 0x7000;
  assert.equal(ram.readU16(zp + 0x1fe), 0xaa55);
  assert.equal(ram.readU32(zp + 0x218), 0x1feff000);
  assert.equal(ram.readU32(zp + 0x21c), initrd.length);
  assert.equal(ram.readU32(zp + 0x228), CMDLINE_START);
  assert.equal(cString(ram, CMDLINE_START), CMDLINE);
  assert.equal(ram.readU8(zp + 0x210), 0xff);
  assert.equal(ram.readU16(zp + 0x1f2), 1, "root_flags: read-only root by default, as the README notes");
  assert.equal(ram.readU8(zp + 0x1e8), 5);
  assert.deepEqual(decodeE820(ram.bytes.subarray(zp + 0x2d0, zp + 0x2d0 + 100)), boot.e820);
  assert.equal(ram.readU64(0x9000), 0xa003);
  assert.equal(boot.fwCfg.setupAddr, 0x10000);
  assert.equal(boot.fwCfg.setupSize, setup);
  assert.equal(boot.fwCfg.kernelSize, kernel.length - setup);
  assert.equal(boot.fwCfg.setupData[0x210], 0xb0);
  assert.equal(boot.kernel.end, 0x1000000 + 0x10d5000); // pref_address + init_size
});

Deno.test("loadLinux places the PVH initrd below 4 GiB and lists RAM above it", () => {
  const kernel = makeElf([{ paddr: 0x100000, data: new Uint8Array(0x100) }], pvhNote(0x100000));
  const ram = new FakeMemory(8 * MIB);
  const boot = loadLinux(ram, {
    kernel,
    kernelName: "tiny",
    initrd: new Uint8Array(0x1800).fill(7),
    cmdline: "",
    layout: { below4g: 8 * MIB, above4g: 0x40000000 },
    ncpus: 1,
    accelReserved: [{ addr: 0xfeffc000, size: 0x4000, type: 2 }],
  });
  assert.deepEqual(boot.initrd, { addr: (8 * MIB - 1 - 0x1800) & ~0xfff, size: 0x1800 });
  assert.deepEqual(decodeE820(boot.e820File), [
    { addr: 0xfeffc000, size: 0x4000, type: 2 },
    { addr: 0, size: 8 * MIB, type: 1 },
    { addr: 0x1_0000_0000, size: 0x40000000, type: 1 },
  ]);
  assert.equal(boot.e820.length, 7);
  assert.equal(ram.readU8(CMDLINE_START), 0, "empty command line is a lone NUL");
});

function bootWith(
  kernel: Uint8Array,
  extra: Partial<Parameters<typeof loadLinux>[1]> = {},
  ramSize = 8 * MIB,
) {
  return loadLinux(new FakeMemory(ramSize), {
    kernel,
    kernelName: "k.img",
    cmdline: "console=ttyS0",
    layout: { below4g: ramSize, above4g: 0 },
    ncpus: 1,
    ...extra,
  });
}

function throwsUser(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof UserError, String(e));
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("loadLinux names the file when it is neither ELF nor bzImage", () => {
  const msg = /^Linux kernel image 'k.img' is not a valid ELF or bzImage file$/;
  throwsUser(() => bootWith(new Uint8Array(0)), msg);
  throwsUser(() => bootWith(new Uint8Array(100).fill(0x41)), msg);
  throwsUser(() => bootWith(new Uint8Array(4096).fill(0x90)), msg);
});

Deno.test("loadLinux refuses an ELF kernel without a PVH note", () => {
  const kernel = makeElf([{ paddr: 0x100000, data: new Uint8Array(16) }]);
  throwsUser(() => bootWith(kernel), /'k.img' has no PVH entry point \(ELF note XEN_ELFNOTE_PHYS32_ENTRY\)/);
});

Deno.test("loadLinux refuses a command line longer than the bzImage's cmdline_size", () => {
  const kernel = makeBzImage({ cmdlineSize: 16, prefAddress: 0x100000 });
  throwsUser(
    () => bootWith(kernel, { cmdline: "x".repeat(17) }),
    /^Kernel command line is too long for 'k.img': 17 bytes, the kernel accepts 16$/,
  );
  assert.equal(bootWith(kernel, { cmdline: "x".repeat(16) }).protocol, "linux64");
});

Deno.test("loadLinux refuses an initrd that does not fit above the kernel", () => {
  const kernel = makeElf([{ paddr: 0x100000, data: new Uint8Array(16), memsz: 4 * MIB }], pvhNote(0x100000));
  throwsUser(
    () => bootWith(kernel, { initrd: new Uint8Array(4 * MIB), initrdName: "big.cpio" }),
    /^Initrd 'big.cpio' is too large for guest RAM: 4194304 bytes/,
  );
  const bz = makeBzImage({ prefAddress: 0x100000, initSize: 6 * MIB });
  throwsUser(
    () => bootWith(bz, { initrd: new Uint8Array(2 * MIB), initrdName: "i" }),
    /^Initrd 'i' is too large/,
  );
});

Deno.test("loadLinux refuses kernels that need more RAM than the guest has", () => {
  throwsUser(
    () => bootWith(makeBzImage({ prefAddress: 0x1000000, initSize: 0x1000000 })),
    /^Linux kernel image 'k.img' does not fit in guest RAM: it needs 0x2000000 bytes below 4 GiB$/,
  );
  const elf = makeElf([{ paddr: 0x1000000, data: new Uint8Array(16) }], pvhNote(0x1000000));
  throwsUser(() => bootWith(elf), /'k.img' does not fit in guest RAM: segment 0 at 0x1000000/);
});

Deno.test("loadLinux keeps bzImage header errors specific", () => {
  throwsUser(() => bootWith(makeBzImage({ xloadflags: 0 })), /'k.img' has no 64-bit entry point/);
  throwsUser(() => bootWith(makeBzImage({ version: 0x0202 })), /'k.img' uses boot protocol 2.02/);
});
