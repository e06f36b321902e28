/**
 * Save/restore round trip of every device in the board's registry (IOAPIC, LAPICs, virtio-mmio transports
 * with blk/serial/rng, UART, RTC, PIT, PIC, fw_cfg, kvmclock): random register traffic on one machine, its
 * state streamed into a fresh machine, then the same further traffic on both must leave equal states.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import "../shell/fuzz_argv.ts";
import { StateError } from "../core/types.ts";
import { decodeValue, encodeValue } from "../core/snapshot/codec.ts";
import { buildFuzzMachine, FUZZ_ARGV, type FuzzMachine } from "../plugins/fuzz/machine.ts";
import { configMismatch, loadBoardState, machineConfigId, saveBoardState } from "../devices/microvm_state.ts";
import { MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_WALL_CLOCK_NEW } from "../devices/kvmclock.ts";

type Op =
  | { k: "io"; port: number; size: 1 | 2 | 4; value: number }
  | { k: "mmio"; addr: number; value: number }
  | { k: "lapic"; off: number; value: number }
  | { k: "msr"; msr: number; value: number }
  | { k: "step"; ns: number };

const PORTS = [
  0x20,
  0x21,
  0xa0,
  0xa1,
  0x4d0,
  0x4d1,
  0x40,
  0x41,
  0x42,
  0x43,
  0x70,
  0x71,
  0x3f8,
  0x3f9,
  0x3fa,
  0x3fb,
  0x3fc,
  0x3fd,
  0x3ff,
  0x510,
  0x511,
];
const VIRTIO_REGS = [
  0x00,
  0x10,
  0x14,
  0x20,
  0x24,
  0x28,
  0x30,
  0x34,
  0x38,
  0x3c,
  0x40,
  0x44,
  0x50,
  0x60,
  0x64,
  0x70,
  0x100,
];

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    k: fc.constant("io" as const),
    port: fc.constantFrom(...PORTS),
    size: fc.constant(1 as const),
    value: fc.nat(255),
  }),
  fc.record({
    k: fc.constant("mmio" as const),
    addr: fc.tuple(fc.nat(7), fc.constantFrom(...VIRTIO_REGS)).map(([t, r]) => 0xfeb00000 + t * 0x200 + r),
    value: fc.oneof(fc.nat(15), fc.nat(0xffff), fc.constant(0x1000)),
  }),
  fc.record({
    k: fc.constant("mmio" as const),
    addr: fc.constantFrom(0xfec00000, 0xfec00010),
    value: fc.nat(0xff),
  }),
  fc.record({
    k: fc.constant("lapic" as const),
    off: fc.constantFrom(0x80, 0xf0, 0x320, 0x350, 0x380, 0x3e0, 0x300),
    value: fc.nat(0x1ffff),
  }),
  fc.record({
    k: fc.constant("msr" as const),
    msr: fc.constantFrom(MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_WALL_CLOCK_NEW),
    value: fc.nat(0xfff0).map((v) => (v & ~0x1f) | 1),
  }),
  fc.record({ k: fc.constant("step" as const), ns: fc.nat(5_000_000) }),
);

function apply(fm: FuzzMachine, ops: Op[]): void {
  const vm = fm.vm;
  for (const o of ops) {
    if (o.k === "io") vm.io.write(o.port, o.size, o.value);
    else if (o.k === "mmio") vm.memory.write(o.addr, 4, o.value);
    else if (o.k === "lapic") vm.lapics[0].mmioWrite(o.off, o.value);
    else if (o.k === "msr") vm.kvmclock.write(0, o.msr, BigInt(o.value));
    else fm.clock.step(o.ns);
  }
  // Reads have side effects too (RTC register C, UART LSR/IIR): read every port once.
  for (const p of PORTS) vm.io.read(p, 1);
}

function snapshot(fm: FuzzMachine): string {
  return encodeValue({ now: fm.clock.now(), board: saveBoardState(fm.vm) });
}

Deno.test("the registry holds LAPICs, kvmclock and every virtio-mmio transport", () => {
  const fm = buildFuzzMachine();
  const types = new Set(fm.vm.devices.map((d) => d.typeName));
  for (
    const t of [
      "apic",
      "kvmclock",
      "virtio-mmio",
      "ioapic",
      "isa-serial",
      "mc146818rtc",
      "isa-pit",
      "isa-i8259",
      "fw_cfg_io",
    ]
  ) {
    assert.ok(types.has(t), t);
  }
  assert.equal(fm.vm.devices.filter((d) => d.typeName === "virtio-mmio").length, 8);
  assert.equal(new Set(fm.vm.devices.map((d) => d.id)).size, fm.vm.devices.length, "ids are unique");
});

Deno.test("every device round-trips through the stream codec and then behaves identically", () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.array(op, { maxLength: 30 }), (before, after) => {
      const a = buildFuzzMachine(), b = buildFuzzMachine();
      apply(a, before);
      const rec = decodeValue(snapshot(a)) as { now: number; board: unknown };
      b.vm.ram.u8.set(a.vm.ram.u8);
      b.clock.restore(rec.now);
      loadBoardState(b.vm, rec.board);
      assert.equal(snapshot(b), snapshot(a));
      apply(a, after);
      apply(b, after);
      assert.equal(snapshot(b), snapshot(a));
      assert.deepEqual(b.vm.ram.u8, a.vm.ram.u8);
    }),
    { numRuns: 25 },
  );
});

Deno.test("loadBoardState refuses unknown, missing and invalid device state and leaves the board as it was", () => {
  const fm = buildFuzzMachine();
  apply(fm, [{ k: "io", port: 0x3fb, size: 1, value: 0x83 }, { k: "step", ns: 1000 }]);
  const good = decodeValue(encodeValue(saveBoardState(fm.vm))) as {
    version: 1;
    devices: Record<string, unknown>;
  };
  const before = snapshot(fm);
  const other = buildFuzzMachine();
  const cases: [string, (d: Record<string, unknown>) => void, RegExp][] = [
    ["unknown", (d) => (d["nosuch0"] = { version: 1 }), /unknown device "nosuch0"/],
    ["missing", (d) => delete d["apic0"], /no state for device "apic0"/],
    ["invalid", (d) => ((d["rtc"] as { cmos: number[] }).cmos = [1, 2]), /cmos/],
    ["invalid late", (d) => ((d["kvmclock"] as { wallMsr: string }).wallMsr = "x"), /wallMsr/],
  ];
  for (const [what, mutate, re] of cases) {
    const s = structuredClone(good);
    mutate(s.devices);
    const otherBefore = snapshot(other);
    assert.throws(
      () => loadBoardState(other.vm, s),
      (e) => e instanceof StateError && re.test(e.message),
      what,
    );
    assert.equal(snapshot(other), otherBefore, `${what}: board changed`);
  }
  assert.equal(snapshot(fm), before);
});

Deno.test("a machine with another configuration is named in one line", () => {
  const a = buildFuzzMachine();
  const b = buildFuzzMachine([...FUZZ_ARGV.map((x) => (x === "1m" ? "2m" : x))]);
  assert.equal(configMismatch(machineConfigId(a.vm), machineConfigId(a.vm)), null);
  assert.match(
    configMismatch(machineConfigId(a.vm), machineConfigId(b.vm)) ?? "",
    /^ram is 1048576 in the stream but 2097152 here$/,
  );
});
