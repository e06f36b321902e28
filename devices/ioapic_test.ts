import assert from "node:assert/strict";
import { CountingLog } from "../core/types.ts";
import { Ioapic, IOAPIC_LVT_REMOTE_IRR, ioapicEntryToMsi } from "./ioapic.ts";

function setup() {
  const msgs: [number, number][] = [];
  const log = new CountingLog();
  const io = new Ioapic({ msi: { sendMsi: (a, d) => msgs.push([a, d]) }, log });
  const sel = (r: number) => io.ops.write(0x00, 4, r);
  const wr = (r: number, v: number) => {
    sel(r);
    io.ops.write(0x10, 4, v);
  };
  const rd = (r: number) => {
    sel(r);
    return io.ops.read(0x10, 4);
  };
  return { io, msgs, log, wr, rd };
}

Deno.test("Ioapic reports version 0x20 with 24 entries and masks all pins at reset", () => {
  const { rd } = setup();
  assert.equal(rd(0x01), 0x170020);
  assert.equal(rd(0x10), 0x10000);
  assert.equal(rd(0x11), 0);
  assert.equal(rd(0x10 + 2 * 24), 0xffffffff);
});

Deno.test("Ioapic stores the ID in bits 27:24 and ARB mirrors it", () => {
  const { wr, rd } = setup();
  wr(0x00, 0xff000000);
  assert.equal(rd(0x00), 0x0f000000);
  assert.equal(rd(0x02), 0x0f000000);
});

Deno.test("Ioapic encodes a redirection entry as QEMU's MSI message", () => {
  // vector 0x31, lowest priority (1), logical, level, dest 0x03 in bits 63:56.
  const lo = 0x31 | (1 << 8) | (1 << 11) | (1 << 15);
  const hi = 0x03000000;
  assert.deepEqual(ioapicEntryToMsi(lo, hi), [0xfee03004, 0x8131]);
});

Deno.test("Ioapic delivers an edge interrupt once per rising edge and ignores masked edges", () => {
  const { io, msgs, wr } = setup();
  wr(0x10 + 2 * 4 + 1, 0x01000000);
  wr(0x10 + 2 * 4, 0x24);
  io.pin(4).set(true);
  io.pin(4).set(true);
  assert.deepEqual(msgs, [[0xfee01000, 0x24]]);
  io.pin(4).set(false);
  wr(0x10 + 2 * 4, 0x10024);
  io.pin(4).set(true);
  assert.equal(msgs.length, 1);
});

Deno.test("Ioapic routes pin 0 to pin 2 as QEMU's ioapic_set_irq does", () => {
  const { io, msgs, wr } = setup();
  wr(0x10 + 2 * 2, 0x30);
  io.pin(0).set(true);
  assert.deepEqual(msgs, [[0xfee00000, 0x30]]);
});

Deno.test("Ioapic holds a level interrupt in remote IRR until EOI and re-delivers while asserted", () => {
  const { io, msgs, wr, rd } = setup();
  wr(0x10 + 2 * 10, 0x8041);
  io.pin(10).set(true);
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0][1], 0x8041);
  assert.ok(rd(0x10 + 2 * 10) & IOAPIC_LVT_REMOTE_IRR);
  io.pin(10).set(true);
  assert.equal(msgs.length, 1);
  io.eoi(0x41);
  assert.equal(msgs.length, 2);
  io.pin(10).set(false);
  io.eoi(0x41);
  assert.equal(msgs.length, 2);
  assert.equal(rd(0x10 + 2 * 10) & IOAPIC_LVT_REMOTE_IRR, 0);
  io.eoi(0x42);
  // The EOI register at 0x40 does the same as a broadcast.
  io.pin(10).set(true);
  assert.equal(msgs.length, 3);
  io.ops.write(0x40, 4, 0x41);
  assert.equal(rd(0x10 + 2 * 10) & IOAPIC_LVT_REMOTE_IRR, IOAPIC_LVT_REMOTE_IRR);
  assert.equal(msgs.length, 4);
});

Deno.test("Ioapic keeps remote IRR read-only and delivers a held level line on unmask", () => {
  const { io, msgs, wr, rd } = setup();
  wr(0x10 + 2 * 5, 0x18050);
  io.pin(5).set(true);
  assert.equal(msgs.length, 0);
  wr(0x10 + 2 * 5, 0x8050 | IOAPIC_LVT_REMOTE_IRR);
  assert.equal(msgs.length, 1);
  wr(0x10 + 2 * 5, 0x8050);
  assert.ok(rd(0x10 + 2 * 5) & IOAPIC_LVT_REMOTE_IRR);
});

Deno.test("Ioapic saveState round-trips", () => {
  const a = setup();
  a.wr(0x10 + 2 * 3, 0x8033);
  a.io.pin(3).set(true);
  const b = setup();
  b.io.loadState(a.io.saveState());
  assert.deepEqual(b.io.saveState(), a.io.saveState());
});

Deno.test("Ioapic survives seeded random register access", () => {
  const { io } = setup();
  let seed = 0x1234567;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < 20000; i++) {
    const r = rnd();
    const size = ([1, 2, 4] as const)[r % 3];
    const off = [0, 0x10, 0x40, rnd() & 0xfff][(r >>> 4) & 3];
    if (r & 0x100) io.ops.write(off, size, rnd());
    else io.ops.read(off, size);
    if ((r & 0xf000) === 0) io.pin(rnd() % 24).set((rnd() & 1) === 1);
    if ((r & 0xf0000) === 0) io.eoi(rnd() & 0xff);
  }
});
