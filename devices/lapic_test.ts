import assert from "node:assert/strict";
import { CountingLog } from "../core/types.ts";
import { ManualClock } from "../tests/fakes.ts";
import { Ioapic } from "./ioapic.ts";
import {
  APIC_EOI,
  APIC_ESR,
  APIC_ICR,
  APIC_ICR2,
  APIC_ID,
  APIC_IRR,
  APIC_ISR,
  APIC_LDR,
  APIC_LVR,
  APIC_LVT0,
  APIC_LVTT,
  APIC_PROCPRI,
  APIC_SPIV,
  APIC_TASKPRI,
  APIC_TDCR,
  APIC_TMCCT,
  APIC_TMICT,
  ApicBus,
  Lapic,
  MSR_IA32_APICBASE,
  MSR_IA32_TSC_DEADLINE,
} from "./lapic.ts";

function setup(n = 1, tscKhz = 1_000_000) {
  const clock = new ManualClock();
  const bus = new ApicBus();
  const log = new CountingLog();
  const lapics = [];
  for (let id = 0; id < n; id++) lapics.push(new Lapic({ id, clock, tscKhz, bus, log }));
  for (const l of lapics) l.mmioWrite(APIC_SPIV, 0x1ff);
  return { clock, bus, log, lapics, l: lapics[0] };
}

Deno.test("Lapic reports ID, version 0x50014 and APIC_BASE with the BSP bit", () => {
  const { lapics } = setup(2);
  assert.equal(lapics[1].mmioRead(APIC_ID), 0x01000000);
  assert.equal(lapics[0].mmioRead(APIC_LVR), 0x50014);
  assert.equal(lapics[0].readMsr(MSR_IA32_APICBASE), 0xfee00900n);
  assert.equal(lapics[1].readMsr(MSR_IA32_APICBASE), 0xfee00800n);
  assert.equal(lapics[0].baseAddress, 0xfee00000);
  // LINT0 of the BSP starts as ExtINT (QEMU apic_reset_common), others masked.
  assert.equal(lapics[0].mmioRead(APIC_LVT0), 0x700);
  assert.equal(lapics[1].mmioRead(APIC_LVT0), 0x10000);
});

Deno.test("Lapic moves the highest IRR vector to ISR and EOI clears it", () => {
  const { bus, l } = setup();
  let wakes = 0;
  l.onWake = () => wakes++;
  bus.sendMsi(0xfee00000, 0x41);
  bus.sendMsi(0xfee00000, 0x61);
  assert.equal(wakes, 2);
  assert.ok(l.hasInterrupt());
  assert.equal(l.mmioRead(APIC_IRR + 0x20), 1 << 1); // 0x41
  assert.equal(l.acknowledge(), 0x61);
  assert.equal(l.mmioRead(APIC_ISR + 0x30), 1 << 1);
  assert.equal(l.mmioRead(APIC_PROCPRI), 0x60);
  // 0x41 is below the in-service class: not deliverable until EOI.
  assert.equal(l.hasInterrupt(), false);
  l.mmioWrite(APIC_EOI, 0);
  assert.ok(l.hasInterrupt());
  assert.equal(l.acknowledge(), 0x41);
  l.mmioWrite(APIC_EOI, 0);
  assert.equal(l.hasInterrupt(), false);
  assert.equal(l.acknowledge(), -1);
});

Deno.test("Lapic masks interrupts at or below the TPR class", () => {
  const { bus, l } = setup();
  l.mmioWrite(APIC_TASKPRI, 0x50);
  bus.sendMsi(0xfee00000, 0x55);
  assert.equal(l.hasInterrupt(), false);
  assert.equal(l.acknowledge(), 0xff); // spurious vector
  bus.sendMsi(0xfee00000, 0x60);
  assert.ok(l.hasInterrupt());
  assert.equal(l.acknowledge(), 0x60);
  l.mmioWrite(APIC_EOI, 0);
  assert.equal(l.hasInterrupt(), false);
  l.mmioWrite(APIC_TASKPRI, 0);
  assert.ok(l.hasInterrupt());
});

Deno.test("Lapic broadcasts EOI of level-triggered vectors to the IOAPIC", () => {
  const { bus, l } = setup();
  const eois: number[] = [];
  bus.setEoiListener((v) => eois.push(v));
  bus.sendMsi(0xfee00000, 0x8033);
  bus.sendMsi(0xfee00000, 0x0034);
  assert.equal(l.acknowledge(), 0x34);
  l.mmioWrite(APIC_EOI, 0);
  assert.equal(l.acknowledge(), 0x33);
  l.mmioWrite(APIC_EOI, 0);
  assert.deepEqual(eois, [0x33]);
});

Deno.test("Lapic one-shot timer counts down from the clock and fires once", () => {
  const { clock, l } = setup();
  l.mmioWrite(APIC_LVTT, 0x30);
  l.mmioWrite(APIC_TDCR, 0x1); // divide by 4
  l.mmioWrite(APIC_TMICT, 1000);
  clock.step(400);
  assert.equal(l.mmioRead(APIC_TMCCT), 900);
  assert.equal(l.hasInterrupt(), false);
  clock.step(3600);
  assert.equal(l.mmioRead(APIC_TMCCT), 0);
  assert.equal(l.acknowledge(), 0x30);
  l.mmioWrite(APIC_EOI, 0);
  clock.step(100000);
  assert.equal(l.hasInterrupt(), false);
});

Deno.test("Lapic periodic timer re-arms each period and limits tiny periods to 200 us", () => {
  const { clock, l } = setup();
  l.mmioWrite(APIC_LVTT, 0x20031);
  l.mmioWrite(APIC_TDCR, 0xb); // divide by 1
  l.mmioWrite(APIC_TMICT, 250_000);
  let n = 0;
  for (let i = 0; i < 5; i++) {
    clock.step(250_000);
    if (l.hasInterrupt()) {
      assert.equal(l.acknowledge(), 0x31);
      l.mmioWrite(APIC_EOI, 0);
      n++;
    }
  }
  assert.equal(n, 5);
  clock.step(30);
  assert.equal(l.mmioRead(APIC_TMCCT), 249_970);
  // A 100 ns period fires every 200 us, not every 100 ns.
  l.mmioWrite(APIC_TMICT, 100);
  let fired = 0;
  for (let i = 0; i < 10; i++) {
    clock.step(100_000);
    if (l.hasInterrupt()) {
      l.acknowledge();
      l.mmioWrite(APIC_EOI, 0);
      fired++;
    }
  }
  assert.equal(fired, 5);
});

Deno.test("Lapic TSC-deadline timer fires at the deadline and clears the MSR", () => {
  const { clock, l } = setup(1, 2_000_000); // 2 GHz TSC: 2 ticks per ns
  l.mmioWrite(APIC_LVTT, 0x40032);
  assert.equal(l.writeMsr(MSR_IA32_TSC_DEADLINE, 5000n), true);
  assert.equal(l.readMsr(MSR_IA32_TSC_DEADLINE), 5000n);
  clock.step(2499);
  assert.equal(l.hasInterrupt(), false);
  clock.step(1);
  assert.equal(l.acknowledge(), 0x32);
  assert.equal(l.readMsr(MSR_IA32_TSC_DEADLINE), 0n);
  l.mmioWrite(APIC_EOI, 0);
  // A deadline in the past fires at once.
  l.writeMsr(MSR_IA32_TSC_DEADLINE, 1n);
  assert.equal(l.acknowledge(), 0x32);
  // Outside TSC-deadline mode the MSR ignores writes.
  l.mmioWrite(APIC_LVTT, 0x32);
  l.writeMsr(MSR_IA32_TSC_DEADLINE, 99999n);
  assert.equal(l.readMsr(MSR_IA32_TSC_DEADLINE), 0n);
});

Deno.test("Lapic sends INIT and SIPI to another LAPIC", () => {
  const { lapics } = setup(2);
  const [bsp, ap] = lapics;
  let woken = 0;
  ap.onWake = () => woken++;
  bsp.mmioWrite(APIC_ICR2, 0x01000000);
  bsp.mmioWrite(APIC_ICR, 0x4500); // INIT assert
  bsp.mmioWrite(APIC_ICR, 0x8500); // INIT de-assert (level)
  bsp.mmioWrite(APIC_ICR, 0x4608); // SIPI vector 8
  bsp.mmioWrite(APIC_ICR, 0x4608);
  assert.ok(woken >= 2);
  assert.equal(ap.takeStartup(), -2);
  assert.equal(ap.takeStartup(), 8);
  assert.equal(ap.takeStartup(), -1);
  assert.equal(bsp.takeStartup(), -1);
});

Deno.test("Lapic delivers fixed IPIs by logical flat destination and by shorthand", () => {
  const { lapics } = setup(3);
  lapics[1].mmioWrite(APIC_LDR, 0x02000000);
  lapics[2].mmioWrite(APIC_LDR, 0x04000000);
  lapics[0].mmioWrite(APIC_ICR2, 0x06000000);
  lapics[0].mmioWrite(APIC_ICR, 0x0850);
  assert.deepEqual(lapics.map((l) => l.hasInterrupt()), [false, true, true]);
  lapics[1].acknowledge();
  lapics[2].acknowledge();
  lapics[0].mmioWrite(APIC_ICR, 0xc0061); // all excluding self
  assert.deepEqual(lapics.map((l) => l.hasInterrupt()), [false, true, true]);
  lapics[0].mmioWrite(APIC_ICR, 0x40052); // self
  assert.equal(lapics[0].acknowledge(), 0x52);
  lapics[0].mmioWrite(APIC_ICR, 0x0400); // NMI to physical dest 6: nobody
  lapics[0].mmioWrite(APIC_ICR2, 0x02000000);
  lapics[0].mmioWrite(APIC_ICR, 0x0400); // NMI to APIC 2
  assert.equal(lapics[2].takeNmi(), true);
  assert.equal(lapics[2].takeNmi(), false);
});

Deno.test("Lapic flags illegal vectors in ESR after the ESR write", () => {
  const { bus, l } = setup();
  bus.sendMsi(0xfee00000, 0x05);
  assert.equal(l.mmioRead(APIC_ESR), 0);
  l.mmioWrite(APIC_ESR, 0);
  assert.equal(l.mmioRead(APIC_ESR), 0x40);
  assert.equal(l.hasInterrupt(), false);
});

Deno.test("Lapic x2APIC mode uses MSRs: 32-bit ID, derived LDR, 64-bit ICR, self IPI", () => {
  const { lapics } = setup(2);
  const [a, b] = lapics;
  assert.equal(a.readMsr(0x802), undefined); // #GP in xAPIC mode
  for (const l of lapics) assert.equal(l.writeMsr(MSR_IA32_APICBASE, 0xfee00c00n), true);
  assert.equal(a.baseAddress, -1);
  assert.equal(a.readMsr(0x802), 0n);
  assert.equal(b.readMsr(0x802), 1n);
  assert.equal(b.readMsr(0x80d), 0x2n);
  assert.equal(a.readMsr(0x80e), undefined); // no DFR
  assert.equal(a.readMsr(0x803), 0x50014n);
  // Direct x2APIC → xAPIC is invalid.
  assert.equal(a.writeMsr(MSR_IA32_APICBASE, 0xfee00800n), false);
  assert.equal(a.writeMsr(0x80f, 0x1ffn), true);
  assert.equal(b.writeMsr(0x80f, 0x1ffn), true);
  assert.equal(a.writeMsr(0x830, (1n << 32n) | 0x70n), true);
  assert.equal(b.acknowledge(), 0x70);
  assert.equal(a.readMsr(0x830), (1n << 32n) | 0x70n);
  assert.equal(a.writeMsr(0x83f, 0x71n), true);
  assert.equal(a.acknowledge(), 0x71);
  assert.equal(a.writeMsr(0x80b, 1n), false);
  assert.equal(a.writeMsr(0x80b, 0n), true);
  assert.equal(a.readMsr(0x810 + 3), 0n);
  assert.equal(a.writeMsr(0x808, 0x20n), true);
  assert.equal(a.readMsr(0x808), 0x20n);
  assert.equal(b.writeMsr(0x80b, 0n), true);
  // Logical cluster: cluster 0, bit 1 → APIC 1.
  assert.equal(a.writeMsr(0x830, (0x2n << 32n) | 0x872n), true);
  assert.equal(b.acknowledge(), 0x72);
});

Deno.test("Lapic passes the PIC through LINT0 ExtINT with an INTA cycle", () => {
  const { l } = setup();
  let acks = 0;
  l.setExtIntAck(() => {
    acks++;
    return 0x20;
  });
  assert.equal(l.hasInterrupt(), false);
  l.setLint0(true);
  assert.ok(l.hasInterrupt());
  assert.equal(l.acknowledge(), 0x20);
  assert.equal(acks, 1);
  l.mmioWrite(APIC_LVT0, 0x10700);
  assert.equal(l.hasInterrupt(), false);
});

Deno.test("Lapic software disable masks LVTs and hardware disable lets the PIC through", () => {
  const { l } = setup();
  l.mmioWrite(APIC_LVTT, 0x30);
  l.mmioWrite(APIC_SPIV, 0xff);
  assert.equal(l.mmioRead(APIC_LVTT), 0x10030);
  l.mmioWrite(APIC_LVTT, 0x30);
  assert.equal(l.mmioRead(APIC_LVTT), 0x10030);
  assert.equal(l.writeMsr(MSR_IA32_APICBASE, 0xfee00100n), true);
  assert.equal(l.baseAddress, -1);
  l.setExtIntAck(() => 0x28);
  l.setLint0(true);
  assert.equal(l.acknowledge(), 0x28);
});

Deno.test("Lapic saveState round-trips", () => {
  const a = setup();
  a.l.mmioWrite(APIC_LVTT, 0x20031);
  a.l.mmioWrite(APIC_TMICT, 500);
  a.bus.sendMsi(0xfee00000, 0x8044);
  const b = setup();
  b.l.loadState(a.l.saveState());
  assert.deepEqual(b.l.saveState(), a.l.saveState());
});

Deno.test("Lapic survives seeded random MMIO, MSR and bus traffic", () => {
  const { lapics, bus, clock } = setup(2);
  let seed = 0xc0ffee;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (const l of lapics) l.setExtIntAck(() => 0x20);
  for (let i = 0; i < 30000; i++) {
    const r = rnd();
    const l = lapics[r & 1];
    switch ((r >>> 1) & 7) {
      case 0:
      case 1:
        l.mmioWrite(rnd() & 0xff0, rnd());
        break;
      case 2:
        l.mmioRead(rnd() & 0xfff);
        break;
      case 3:
        l.writeMsr(
          [0x1b, 0x6e0, 0x800 + (rnd() & 0xff)][rnd() % 3],
          BigInt(rnd()) | (BigInt(rnd() & 3) << 32n),
        );
        break;
      case 4:
        l.readMsr(0x800 + (rnd() & 0xff));
        break;
      case 5:
        bus.sendMsi(0xfee00000 | (rnd() & 0xffffc), rnd() & 0xffff);
        break;
      case 6:
        if (l.hasInterrupt()) l.acknowledge();
        l.takeNmi();
        l.takeStartup();
        break;
      default:
        clock.step(rnd() & 0xffff);
        l.setLint0((rnd() & 1) === 1);
    }
  }
});

Deno.test("Lapic and Ioapic complete a level-triggered interrupt through ApicBus and EOI broadcast", () => {
  const { bus, lapics, log } = setup(2);
  const ioapic = new Ioapic({ msi: bus, log });
  bus.setEoiListener((v) => ioapic.eoi(v));
  const sel = (r: number, v: number) => {
    ioapic.ops.write(0, 4, r);
    ioapic.ops.write(0x10, 4, v);
  };
  sel(0x10 + 2 * 9 + 1, 0x01000000); // to APIC 1
  sel(0x10 + 2 * 9, 0x8039); // level, vector 0x39
  ioapic.pin(9).set(true);
  assert.equal(lapics[0].hasInterrupt(), false);
  assert.equal(lapics[1].acknowledge(), 0x39);
  // Still asserted: the EOI broadcast clears remote IRR and the IOAPIC delivers again.
  lapics[1].mmioWrite(APIC_EOI, 0);
  assert.equal(lapics[1].acknowledge(), 0x39);
  ioapic.pin(9).set(false);
  lapics[1].mmioWrite(APIC_EOI, 0);
  assert.equal(lapics[1].hasInterrupt(), false);
  assert.equal(ioapic.entry(9)[0], 0x8039);
});
