import assert from "node:assert/strict";
import { AddressSpace, createCpuAddressSpaces, MemoryRegion, renderMtree } from "./region.ts";
import { GuestRam } from "./memory.ts";
import { type RegionOps, UserError } from "./types.ts";

const NOP_OPS: RegionOps = { read: () => 0, write: () => {} };

interface Board {
  ram: GuestRam;
  spaces: AddressSpace[];
  memory: AddressSpace;
  io: AddressSpace;
}

/** The tree devices/microvm.ts builds (QEMU 7.2 microvm, 512 MiB, 2 CPUs). */
function buildMicrovm(opts: { legacy: boolean; rtc: boolean; tcg: boolean }): Board {
  const size = 512 * 1024 * 1024;
  const ram = new GuestRam({ size });
  const system = MemoryRegion.container("system", 2 ** 64);
  const ioRoot = MemoryRegion.io("io", 0x10000, null);
  const ramRegion = MemoryRegion.ram("microvm.ram", size, ram, 0);
  system.addSubregion(0, MemoryRegion.alias("ram-below-4g", ramRegion, 0, ram.below4g));
  for (let i = 0; i < 8; i++) {
    system.addSubregion(0xfeb00000 + i * 0x200, MemoryRegion.io("virtio-mmio", 0x200, NOP_OPS));
  }
  system.addSubregion(0xfec00000, MemoryRegion.io("ioapic", 0x1000, NOP_OPS, { owner: "ioapic" }));
  system.addSubregion(
    0xfee00000,
    MemoryRegion.io(opts.tcg ? "apic-msi" : "kvm-apic-msi", 0x100000, NOP_OPS, { priority: 4096 }),
  );
  if (opts.legacy) {
    ioRoot.addSubregion(0x20, MemoryRegion.io("pic", 2, NOP_OPS));
    ioRoot.addSubregion(0xa0, MemoryRegion.io("pic", 2, NOP_OPS));
    ioRoot.addSubregion(0x4d0, MemoryRegion.io("elcr", 1, NOP_OPS));
    ioRoot.addSubregion(0x4d1, MemoryRegion.io("elcr", 1, NOP_OPS));
    ioRoot.addSubregion(0x40, MemoryRegion.io("pit", 4, NOP_OPS));
    if (opts.rtc) {
      const rtc = MemoryRegion.io("rtc", 2, NOP_OPS);
      rtc.addSubregion(0, MemoryRegion.io("rtc-index", 1, NOP_OPS));
      ioRoot.addSubregion(0x70, rtc);
    }
  }
  ioRoot.addSubregion(0x7e, MemoryRegion.io("kvmvapic", 2, NOP_OPS)); // present under KVM too
  if (opts.legacy) ioRoot.addSubregion(0x3f8, MemoryRegion.io("serial", 8, NOP_OPS));
  ioRoot.addSubregion(0x510, MemoryRegion.io("fwcfg", 2, NOP_OPS));
  ioRoot.addSubregion(0x514, MemoryRegion.io("fwcfg.dma", 8, NOP_OPS));
  const bios = MemoryRegion.rom("pc.bios", 0x10000, ram, { readonly: false });
  system.addSubregion(0xffff0000, bios);
  system.addSubregion(0xf0000, MemoryRegion.alias("isa-bios", bios, 0, 0x10000, { priority: 1 }));
  const memory = new AddressSpace("memory", system);
  const io = new AddressSpace("I/O", ioRoot);
  const spaces = [memory, io, ...createCpuAddressSpaces(system, { ncpus: 2, smm: opts.tcg })];
  return { ram, spaces, memory, io };
}

function golden(name: string): string {
  const text = Deno.readTextFileSync(new URL(`../tests/golden/mtree/${name}`, import.meta.url));
  return text.slice(text.indexOf("\n") + 1); // drop the provenance line
}

function assertText(actual: string, expected: string): void {
  if (actual === expected) return;
  const a = actual.split("\n");
  const e = expected.split("\n");
  const diff: string[] = [];
  for (let i = 0; i < Math.max(a.length, e.length); i++) {
    if (a[i] !== e[i]) diff.push(`line ${i + 1}:\n- ${e[i]}\n+ ${a[i]}`);
  }
  assert.fail(`text differs from golden:\n${diff.slice(0, 10).join("\n")}`);
}

Deno.test("renderMtree matches QEMU 7.2 info mtree for tcg-legacy-blk-net", () => {
  const b = buildMicrovm({ legacy: true, rtc: true, tcg: true });
  const order = ["cpu-smm-1", "I/O", "memory", "cpu-smm-0"];
  assertText(renderMtree(b.spaces, { order }), golden("tcg-legacy-blk-net.mtree.txt"));
  assertText(
    renderMtree(b.spaces, { flat: true, order: ["memory", "I/O"] }),
    golden("tcg-legacy-blk-net.mtree-f.txt"),
  );
});

Deno.test("renderMtree matches QEMU 7.2 info mtree for tcg-nolegacy-blk-hvc", () => {
  const b = buildMicrovm({ legacy: false, rtc: false, tcg: true });
  const order = ["cpu-smm-0", "cpu-smm-1", "memory", "I/O"];
  assertText(renderMtree(b.spaces, { order }), golden("tcg-nolegacy-blk-hvc.mtree.txt"));
  assertText(
    renderMtree(b.spaces, { flat: true, order: ["I/O", "memory"] }),
    golden("tcg-nolegacy-blk-hvc.mtree-f.txt"),
  );
});

Deno.test("renderMtree matches QEMU 7.2 info mtree -f for kvm-legacy-acpioff-blk with KVM ranges", () => {
  const b = buildMicrovm({ legacy: true, rtc: false, tcg: false });
  assertText(renderMtree(b.spaces, { order: ["I/O", "memory"] }), golden("kvm-legacy-acpioff-blk.mtree.txt"));
  const flat = renderMtree(b.spaces, {
    flat: true,
    order: ["memory", "I/O"],
    accel: { name: "KVM", spaces: ["memory"] },
  });
  assertText(flat, golden("kvm-legacy-acpioff-blk.mtree-f.txt"));
});

/** An io region that records calls and answers reads from a byte array. */
function recorder(size: number, rules: Pick<RegionOps, "valid" | "impl"> = {}) {
  const bytes = new Uint8Array(size);
  const calls: string[] = [];
  const ops: RegionOps = {
    ...rules,
    read(off, sz) {
      calls.push(`r${off}:${sz}`);
      let v = 0;
      for (let k = sz - 1; k >= 0; k--) v = v * 256 + (bytes[off + k] ?? 0);
      return v;
    },
    write(off, sz, val) {
      calls.push(`w${off}:${sz}=${val.toString(16)}`);
      for (let k = 0; k < sz; k++) bytes[off + k] = Math.floor(val / 2 ** (8 * k)) & 0xff;
    },
  };
  return { bytes, calls, ops };
}

function ioSpace(...subs: [number, MemoryRegion][]): AddressSpace {
  const root = MemoryRegion.io("io", 0x10000, null);
  for (const [o, r] of subs) root.addSubregion(o, r);
  return new AddressSpace("I/O", root);
}

Deno.test("AddressSpace reads all-ones and drops writes when unassigned, counting both", () => {
  const s = ioSpace();
  assert.equal(s.read(0x80, 1), 0xff);
  assert.equal(s.read(0x80, 2), 0xffff);
  assert.equal(s.read(0x80, 4), 0xffffffff);
  s.write(0x80, 1, 0);
  assert.equal(s.stats.unassignedReads, 3);
  assert.equal(s.stats.unassignedWrites, 1);
  const zeros = new AddressSpace("m", MemoryRegion.container("system", 2 ** 64), { unassigned: "zeros" });
  assert.equal(zeros.read(0x1000, 4), 0);
});

Deno.test("AddressSpace splits an access wider than valid.max into aligned pieces", () => {
  const r = recorder(8, { valid: { min: 1, max: 1 } });
  r.bytes.set([1, 2, 3, 4]);
  const s = ioSpace([0x3f8, MemoryRegion.io("serial", 8, r.ops)]);
  assert.equal(s.read(0x3f8, 4), 0x04030201);
  assert.deepEqual(r.calls, ["r0:1", "r1:1", "r2:1", "r3:1"]);
  s.write(0x3f8, 2, 0xbbaa);
  assert.deepEqual(r.calls.slice(4), ["w0:1=aa", "w1:1=bb"]);
});

Deno.test("AddressSpace splits unaligned accesses by alignment and across region boundaries", () => {
  const r = recorder(8);
  const s = ioSpace([0x3f8, MemoryRegion.io("serial", 8, r.ops)]);
  r.bytes.set([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
  assert.equal(s.read(0x3f9, 4), 0x55443322);
  assert.deepEqual(r.calls, ["r1:1", "r2:2", "r4:1"]);
  r.calls.length = 0;
  // last two bytes from serial, next two from the unassigned gap
  assert.equal(s.read(0x3fe, 4), 0xffff8877);
  assert.deepEqual(r.calls, ["r6:2"]);
});

Deno.test("AddressSpace treats accesses outside valid as unassigned", () => {
  const r = recorder(4, { valid: { min: 4, max: 4 } });
  const s = ioSpace([0x510, MemoryRegion.io("fw", 4, r.ops)]);
  assert.equal(s.read(0x510, 2), 0xffff);
  s.write(0x510, 1, 5);
  assert.deepEqual(r.calls, []);
  assert.equal(s.stats.unassignedReads, 1);
  assert.equal(s.stats.unassignedWrites, 1);
});

Deno.test("AddressSpace adjusts to impl sizes as access_with_adjusted_size does", () => {
  const split = recorder(4, { impl: { min: 1, max: 1 } });
  const widen = recorder(4, { impl: { min: 4, max: 4 } });
  widen.bytes.set([0xaa, 0xbb, 0xcc, 0xdd]);
  const s = ioSpace([0x100, MemoryRegion.io("split", 4, split.ops)], [
    0x200,
    MemoryRegion.io("widen", 4, widen.ops),
  ]);
  s.write(0x100, 4, 0x12345678);
  assert.deepEqual(split.calls, ["w0:1=78", "w1:1=56", "w2:1=34", "w3:1=12"]);
  assert.equal(s.read(0x100, 2), 0x5678);
  assert.equal(s.read(0x200, 1), 0xaa); // 4-byte read, truncated
  assert.equal(widen.calls[0], "r0:4");
  s.write(0x200, 1, 0x7f); // widened write carries zeros above
  assert.equal(widen.calls[1], "w0:4=7f");
});

Deno.test("AddressSpace read64/write64 split into two 4-byte accesses", () => {
  const r = recorder(8);
  const s = ioSpace([0x514, MemoryRegion.io("fwcfg.dma", 8, r.ops)]);
  s.write64(0x514, 0x1122334455667788n);
  assert.deepEqual(r.calls, ["w0:4=55667788", "w4:4=11223344"]);
  assert.equal(s.read64(0x514), 0x1122334455667788n);
});

Deno.test("AddressSpace honours priority, aliases and RAM in the flat view", () => {
  const ram = new GuestRam({ size: 0x200000 });
  const system = MemoryRegion.container("system", 2 ** 64);
  const ramMr = MemoryRegion.ram("microvm.ram", ram.size, ram, 0);
  system.addSubregion(0, MemoryRegion.alias("ram-below-4g", ramMr, 0, ram.size));
  const bios = MemoryRegion.rom("pc.bios", 0x10000, ram);
  bios.ram!.u8[bios.ramOffset] = 0xea;
  system.addSubregion(0xffff0000, bios);
  system.addSubregion(0xf0000, MemoryRegion.alias("isa-bios", bios, 0, 0x10000, { priority: 1 }));
  const s = new AddressSpace("memory", system);
  const fv = s.flatView();
  assert.deepEqual(fv.map((r) => [r.start, r.size, r.region.name, r.offsetInRegion, r.readOnly]), [
    [0, 0xf0000, "microvm.ram", 0, false],
    [0xf0000, 0x10000, "pc.bios", 0, true],
    [0x100000, 0x100000, "microvm.ram", 0x100000, false],
    [0xffff0000, 0x10000, "pc.bios", 0, true],
  ]);
  assert.equal(s.read(0xf0000, 1), 0xea);
  assert.equal(s.read(0xffff0000, 1), 0xea);
  s.write(0xf0000, 1, 0); // ROM: dropped
  assert.equal(s.read(0xf0000, 1), 0xea);
  s.write(0x1000, 4, 0xcafef00d);
  assert.equal(ram.readU32(0x1000), 0xcafef00d);
  // PhysMap: isa-bios overlay reflected, ROM read-only, MMIO -1
  const pm = s.physMap();
  assert.equal(pm.pageBase(0xf0), bios.ramOffset);
  assert.equal(pm.isReadOnly(0xf0), true);
  assert.equal(pm.pageBase(0xef), 0xef000);
  assert.equal(pm.pageBase(0x200), -1);
  assert.equal(pm.pageBase(0xffff0), bios.ramOffset);
  const gen = pm.generation;
  const dev = MemoryRegion.io("dev", 0x1000, NOP_OPS, { priority: 2 });
  system.addSubregion(0x1000, dev); // overlays RAM: PhysMap follows at once
  assert.equal(pm.pageBase(1), -1);
  assert.ok(pm.generation > gen);
  dev.setEnabled(false);
  assert.equal(pm.pageBase(1), 0x1000);
});

Deno.test("MemoryRegion refuses an overlap without explicit priority", () => {
  const root = MemoryRegion.io("io", 0x10000, null);
  root.addSubregion(0x20, MemoryRegion.io("pic", 2, NOP_OPS));
  assert.throws(() => root.addSubregion(0x21, MemoryRegion.io("bad", 2, NOP_OPS)), (e: unknown) => {
    return e instanceof UserError && e.message === 'Cannot map region "bad" at 0x21: overlaps "pic" at 0x20';
  });
  root.addSubregion(0x21, MemoryRegion.io("ok", 2, NOP_OPS), 1);
  const s = new AddressSpace("I/O", root);
  assert.equal(s.flatView().find((r) => r.start === 0x21)?.region.name, "ok");
});

Deno.test("AddressSpace catches device exceptions and reports them", () => {
  const errors: string[] = [];
  const boom: RegionOps = {
    read() {
      throw new Error("boom");
    },
    write() {
      throw new Error("bang");
    },
  };
  const s = ioSpace([0x60, MemoryRegion.io("kbd", 1, boom, { owner: "i8042" })]);
  s.onDeviceError = (e, a) =>
    errors.push(`${(e as Error).message} ${a.dir} ${a.owner} 0x${a.addr.toString(16)}`);
  assert.equal(s.read(0x60, 1), 0xff);
  s.write(0x60, 1, 1);
  assert.deepEqual(errors, ["boom read i8042 0x60", "bang write i8042 0x60"]);
  assert.equal(s.stats.deviceErrors, 2);
});

Deno.test("AddressSpace hooks observe, replace reads, change and drop writes, then uninstall", () => {
  const r = recorder(8);
  const s = ioSpace([0x3f8, MemoryRegion.io("serial", 8, r.ops, { owner: "serial0" })]);
  const plainRead = s.read;
  const seen: string[] = [];
  const remove = s.addHook({
    ranges: [{ addr: 0x3f8, size: 8 }],
    onAccess(ev) {
      seen.push(`${ev.space} ${ev.dir} ${ev.region} ${ev.owner} +${ev.offset} ${ev.size} ${ev.value}`);
      if (ev.dir === "read" && ev.offset === 5) ev.value = 0x60;
      if (ev.dir === "write" && ev.offset === 0) ev.value = 0x41;
      if (ev.dir === "write" && ev.offset === 1) ev.drop = true;
    },
  });
  assert.notEqual(s.read, plainRead);
  assert.equal(s.read(0x3fd, 1), 0x60);
  s.write(0x3f8, 1, 0x7a);
  s.write(0x3f9, 1, 0x0f);
  assert.equal(r.bytes[0], 0x41);
  assert.equal(r.bytes[1], 0);
  assert.equal(s.read(0x80, 1), 0xff); // outside the hook's range
  assert.deepEqual(seen, [
    "I/O read serial serial0 +5 1 0",
    "I/O write serial serial0 +0 1 122",
    "I/O write serial serial0 +1 1 15",
  ]);
  remove();
  assert.equal(s.read, plainRead);
  const hookErr = s.addHook({
    onAccess() {
      throw new Error("hook");
    },
  });
  assert.equal(s.read(0x3f8, 1), 0xff);
  assert.equal(s.stats.deviceErrors, 1);
  hookErr();
});

Deno.test("AddressSpace recomputes the flat view only on topology change", () => {
  const root = MemoryRegion.io("io", 0x10000, null);
  const s = new AddressSpace("I/O", root);
  const a = s.flatView();
  assert.equal(s.flatView(), a);
  root.addSubregion(0x20, MemoryRegion.io("pic", 2, NOP_OPS));
  const b = s.flatView();
  assert.notEqual(b, a);
  assert.equal(b.length, 3);
});
