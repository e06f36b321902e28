import assert from "node:assert/strict";
import { ManualClock, RecordingIrq } from "../tests/fakes.ts";
import { CountingLog } from "../core/types.ts";
import { I8254, PIT_FREQ, SPK_OUT2, SPK_REFRESH } from "./i8254.ts";

/** ns for n PIT ticks, rounded up so the tick has surely happened. */
const ticks = (n: number) => Math.ceil((n * 1e9) / PIT_FREQ);

function setup() {
  const clock = new ManualClock();
  const irq = new RecordingIrq();
  const log = new CountingLog();
  const pit = new I8254({ irq, clock, log });
  const outb = (port: number, v: number) =>
    port === 0x61 ? pit.speakerOps.write(0, 1, v) : pit.ops.write(port - 0x40, 1, v);
  const inb = (port: number) => port === 0x61 ? pit.speakerOps.read(0, 1) : pit.ops.read(port - 0x40, 1);
  return { clock, irq, log, pit, outb, inb };
}

Deno.test("I8254 power-on: channel 0 square wave with 65536 count raises IRQ0 at 18.2 Hz", () => {
  const { clock, irq, pit } = setup();
  assert.deepEqual(pit.channelInfo(0), { gate: 1, mode: 3, initialCount: 0x10000, out: 1 });
  assert.equal(pit.channelInfo(2).gate, 0);
  assert.equal(irq.level, false);
  clock.step(1_000_000_000);
  // 1 s / (65536 / 1193182 Hz) = 18.2 periods: 18 rising edges.
  assert.equal(irq.raises, 18);
});

Deno.test("I8254 mode 2 rate generator gives one IRQ edge per period", () => {
  const { clock, irq, outb } = setup();
  outb(0x43, 0x34); // ch0, lobyte/hibyte, mode 2, binary
  outb(0x40, 1193 & 0xff);
  outb(0x40, 1193 >> 8);
  const before = irq.raises;
  clock.step(10_000_000 + ticks(2)); // 10 ms
  assert.equal(irq.raises - before, 10);
});

Deno.test("I8254 mode 0 counts down, latches and raises OUT at terminal count", () => {
  const { clock, irq, outb, inb } = setup();
  outb(0x43, 0x30); // ch0 lohi mode 0
  outb(0x40, 0xe8);
  outb(0x40, 0x03); // 1000
  assert.equal(irq.level, false);
  clock.step(ticks(100));
  outb(0x43, 0x00); // counter latch ch0
  clock.step(ticks(50)); // latched value is frozen
  const lo = inb(0x40);
  const hi = inb(0x40);
  assert.equal(lo | (hi << 8), 900);
  clock.step(ticks(849));
  assert.equal(irq.level, false);
  clock.step(ticks(2));
  assert.equal(irq.level, true);
  // Unlatched read keeps counting through 0 and wraps.
  const now = inb(0x40) | (inb(0x40) << 8);
  assert.ok(now > 0xff00, `wrapped count ${now}`);
});

Deno.test("I8254 lobyte-only and hibyte-only access modes", () => {
  const { outb, inb, pit } = setup();
  outb(0x43, 0xa0); // ch2 MSB only, mode 0
  outb(0x42, 0x12);
  assert.equal(pit.channelInfo(2).initialCount, 0x1200);
  assert.equal(inb(0x42), 0x12);
  outb(0x43, 0x50); // ch1 LSB only
  outb(0x41, 0x34);
  assert.equal(pit.channelInfo(1).initialCount, 0x34);
  assert.equal(inb(0x41), 0x34);
});

Deno.test("I8254 read-back command latches status and count", () => {
  const { clock, outb, inb } = setup();
  outb(0x43, 0xb0); // ch2 lohi mode 0
  outb(0x42, 0x00);
  outb(0x42, 0x10); // 0x1000
  clock.step(ticks(0x10));
  outb(0x43, 0xc8); // read-back: count + status, ch2
  clock.step(ticks(0x100));
  const status = inb(0x42);
  assert.equal(status, (0 << 7) | (3 << 4) | (0 << 1) | 0);
  assert.equal(inb(0x42) | (inb(0x42) << 8), 0x1000 - 0x10);
  outb(0x43, 0xe8); // status only
  assert.equal(inb(0x42) & 0x80, 0, "OUT still low in mode 0");
});

Deno.test("I8254 counts in BCD", () => {
  const { clock, outb, inb } = setup();
  outb(0x43, 0xb1); // ch2 lohi mode 0 BCD
  outb(0x42, 0x00);
  outb(0x42, 0x10); // 1000 decimal
  clock.step(ticks(10));
  outb(0x43, 0x80);
  assert.equal(inb(0x42) | (inb(0x42) << 8), 0x0990);
});

Deno.test("I8254 maps modes 6 and 7 to 2 and 3", () => {
  const { outb, pit } = setup();
  outb(0x43, 0x7e); // ch1 lohi mode 7
  assert.equal(pit.channelInfo(1).mode, 3);
  outb(0x43, 0x7c); // mode 6
  assert.equal(pit.channelInfo(1).mode, 2);
});

Deno.test("I8254 port 0x61 gates channel 2 and reports OUT2 and the refresh toggle", () => {
  const { clock, outb, inb, pit } = setup();
  outb(0x61, 0x01); // gate 2 on, speaker off
  assert.equal(pit.channelInfo(2).gate, 1);
  outb(0x43, 0xb0); // ch2 lohi mode 0 (Linux PIT calibration)
  outb(0x42, 0x10);
  outb(0x42, 0x00);
  const a = inb(0x61);
  assert.equal(a & SPK_OUT2, 0);
  assert.equal(a & 0x03, 0x01);
  clock.step(ticks(0x10));
  const b = inb(0x61);
  assert.equal(b & SPK_OUT2, SPK_OUT2);
  assert.notEqual(a & SPK_REFRESH, b & SPK_REFRESH);
  outb(0x61, 0x03);
  assert.equal(inb(0x61) & 0x02, 0x02);
});

Deno.test("I8254 rising gate edge restarts mode 1", () => {
  const { clock, outb, pit } = setup();
  outb(0x43, 0xb2); // ch2 lohi mode 1
  outb(0x42, 100);
  outb(0x42, 0);
  clock.step(ticks(200));
  assert.equal(pit.channelInfo(2).out, 0);
  outb(0x61, 0x01); // gate rises: one-shot starts, OUT low... QEMU models OUT high while counting
  assert.equal(pit.channelInfo(2).out, 1);
  clock.step(ticks(100));
  assert.equal(pit.channelInfo(2).out, 0);
});

Deno.test("I8254 command port reads as 0", () => {
  const { inb } = setup();
  assert.equal(inb(0x43), 0);
});

Deno.test("I8254 saveState/loadState round-trips and refuses bad state", () => {
  const a = setup();
  a.outb(0x43, 0x34);
  a.outb(0x40, 0x00);
  a.outb(0x40, 0x10);
  a.clock.step(ticks(5));
  const st = a.pit.saveState();
  const b = setup();
  b.clock.set(a.clock.now());
  b.pit.loadState(structuredClone(st));
  assert.deepEqual(b.pit.saveState(), st);
  const edgesA = a.irq.raises;
  const edgesB = b.irq.raises;
  a.clock.step(50_000_000);
  b.clock.step(50_000_000);
  assert.equal(b.irq.raises - edgesB, a.irq.raises - edgesA);
  const bad = structuredClone(st);
  bad.channels[1].mode = 9;
  assert.throws(() => b.pit.loadState(bad), /channels\[1\]\.mode/);
  assert.throws(() => b.pit.loadState({ ...st, channels: [] }), /3 channels/);
});

Deno.test("I8254 random writes must not throw", () => {
  let seed = 0x8254;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
  const { pit, clock } = setup();
  try {
    for (let i = 0; i < 20000; i++) {
      switch (rnd() % 5) {
        case 0:
          pit.ops.write(rnd() & 3, 1, rnd() & 0xff);
          break;
        case 1:
          pit.ops.read(rnd() & 3, 1);
          break;
        case 2:
          pit.speakerOps.write(0, 1, rnd() & 0xff);
          break;
        case 3:
          pit.speakerOps.read(0, 1);
          break;
        default:
          clock.step(rnd() % 2_000_000);
      }
    }
    pit.loadState(pit.saveState());
  } catch (e) {
    throw new Error(`seed 0x8254: ${e}`);
  }
});
