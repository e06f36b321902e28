import assert from "node:assert/strict";
import { FakeMemory } from "../../tests/fakes.ts";
import { UserError } from "../types.ts";
import { buildMpTable, MPTABLE_MAX_CPUS, MPTABLE_START, writeMpTable } from "./mptable.ts";

// Provenance: /work/shared/reference/qemu-7.2-microvm/captures/tcg-legacy-bzImage-initrd.hmp.txt,
// `xp /16xw 0x9fc00` under QEMU 7.2 + qboot, `-M microvm,acpi=off -accel tcg -cpu max -smp 2`.
const QEMU_72_SMP2_WORDS = [
  0x5f504d5f,
  0x0009fc10,
  0x008b0401,
  0x00000000,
  0x504d4350,
  0xf60400ec,
  0x4f4f4251,
  0x20202054,
  0x30303030,
  0x30303030,
  0x30303030,
  0x00000000,
  0x00000000,
  0xfee00000,
  0x00000000,
  0x03140000,
];
// CPUID.01H of QEMU 7.2's TCG "max" CPU: family 0xf model 0x6b stepping 1 (the captured console's
// "smpboot: CPU0: AMD QEMU TCG CPU ... (family: 0xf, model: 0x6b, stepping: 0x1)"), and TCG_FEATURES
// for EDX including CPUID_HT (Debian's 7.2 stable backport). The capture's table checksum 0xf6 covers them.
const TCG_MAX_SIGNATURE = 0x00060fb1;
const TCG_MAX_EDX = 0x1fcbfbfd;

function sum8(b: Uint8Array): number {
  return b.reduce((a, v) => (a + v) & 0xff, 0);
}

Deno.test("buildMpTable matches QEMU 7.2 + qboot bytes for -smp 2 under TCG", () => {
  const t = buildMpTable({ ncpus: 2, cpuSignature: TCG_MAX_SIGNATURE, cpuFeatures: TCG_MAX_EDX });
  const golden = new Uint8Array(new Uint32Array(QEMU_72_SMP2_WORDS).buffer);
  assert.deepEqual(t.subarray(0, 64), golden);
  assert.equal(t.length, 16 + 236);
});

Deno.test("buildMpTable checksums sum to zero and the pointer names the table", () => {
  for (const ncpus of [1, 2, 8, MPTABLE_MAX_CPUS]) {
    const t = buildMpTable({ ncpus, cpuSignature: 0x12345678, cpuFeatures: 0x9abcdef0 });
    assert.equal(sum8(t.subarray(0, 16)), 0, `floating pointer, ${ncpus} CPUs`);
    const dv = new DataView(t.buffer);
    assert.equal(dv.getUint32(4, true), MPTABLE_START + 16);
    const len = dv.getUint16(16 + 4, true);
    assert.equal(16 + len, t.length);
    assert.equal(sum8(t.subarray(16, 16 + len)), 0, `configuration table, ${ncpus} CPUs`);
  }
});

interface Entry {
  type: number;
  bytes: Uint8Array;
}

function entries(t: Uint8Array): Entry[] {
  const out: Entry[] = [];
  let o = 16 + 44;
  while (o < t.length) {
    const size = t[o] === 0 ? 20 : 8;
    out.push({ type: t[o], bytes: t.subarray(o, o + size) });
    o += size;
  }
  return out;
}

Deno.test("buildMpTable lists CPUs, ISA bus, IO-APIC n+1 and 15 ISA IRQs with IRQ0 on pin 2", () => {
  const es = entries(buildMpTable({ ncpus: 3, cpuSignature: 0x60fb1, cpuFeatures: 0x1fcbfbfd }));
  const cpus = es.filter((e) => e.type === 0);
  assert.deepEqual(cpus.map((e) => [e.bytes[1], e.bytes[2], e.bytes[3]]), [[0, 0x14, 3], [1, 0x14, 1], [
    2,
    0x14,
    1,
  ]]);
  assert.deepEqual(new DataView(cpus[0].bytes.slice().buffer).getUint32(4, true), 0x60fb1);
  const bus = es.find((e) => e.type === 1)!;
  assert.equal(new TextDecoder().decode(bus.bytes.subarray(2)), "ISA   ");
  const ioapic = es.find((e) => e.type === 2)!;
  assert.deepEqual([...ioapic.bytes], [2, 4, 0x14, 1, 0x00, 0x00, 0xc0, 0xfe]);
  const ints = es.filter((e) => e.type === 3);
  assert.equal(ints.length, 15);
  assert.deepEqual([...ints[0].bytes], [3, 0, 0, 0, 0, 0, 4, 2]);
  assert.ok(!ints.some((e) => e.bytes[5] === 2), "no entry for the cascade IRQ 2");
  assert.deepEqual(ints.map((e) => e.bytes[5]), [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  const lints = es.filter((e) => e.type === 4);
  assert.deepEqual(lints.map((e) => [...e.bytes]), [[4, 3, 0, 0, 0, 0, 0, 0], [4, 1, 0, 0, 0, 0, 0xff, 1]]);
});

Deno.test("buildMpTable without irq0 override maps all 16 ISA IRQs 1:1", () => {
  const ints = entries(buildMpTable({ ncpus: 1, cpuSignature: 0, cpuFeatures: 0, irq0Override: false }))
    .filter((e) => e.type === 3);
  assert.equal(ints.length, 16);
  ints.forEach((e, i) => assert.deepEqual([e.bytes[5], e.bytes[7]], [i, i]));
});

Deno.test("buildMpTable without an IO-APIC keeps CPUs, bus and LINT entries only", () => {
  const es = entries(buildMpTable({ ncpus: 2, cpuSignature: 0, cpuFeatures: 0, ioapic: false }));
  assert.deepEqual(es.map((e) => e.type), [0, 0, 1, 4, 4]);
});

Deno.test("buildMpTable refuses CPU counts the EBDA cannot hold", () => {
  assert.throws(() => buildMpTable({ ncpus: 0, cpuSignature: 0, cpuFeatures: 0 }), UserError);
  assert.throws(
    () => buildMpTable({ ncpus: MPTABLE_MAX_CPUS + 1, cpuSignature: 0, cpuFeatures: 0 }),
    UserError,
  );
  assert.ok(buildMpTable({ ncpus: MPTABLE_MAX_CPUS, cpuSignature: 0, cpuFeatures: 0 }).length <= 0x400);
});

Deno.test("writeMpTable writes at 0x9fc00 and refuses RAM that ends before it", () => {
  const ram = new FakeMemory(0xa0000);
  const t = writeMpTable(ram, { ncpus: 2, cpuSignature: 0, cpuFeatures: 0 });
  assert.deepEqual(ram.read(MPTABLE_START, t.length), t);
  assert.throws(
    () => writeMpTable(new FakeMemory(0x9fc00), { ncpus: 2, cpuSignature: 0, cpuFeatures: 0 }),
    UserError,
  );
});
