import assert from "node:assert/strict";
import { ManualClock, RecordingIrq } from "../tests/fakes.ts";
import { CountingLog } from "../core/types.ts";
import {
  Mc146818Rtc,
  REG_A_UIP,
  REG_B_24H,
  REG_B_AIE,
  REG_B_DM,
  REG_B_PIE,
  REG_B_SET,
  REG_B_UIE,
  REG_C_AF,
  REG_C_IRQF,
  REG_C_PF,
  REG_C_UF,
  RTC_CENTURY,
  RTC_DAY_OF_MONTH,
  RTC_DAY_OF_WEEK,
  RTC_HOURS,
  RTC_HOURS_ALARM,
  RTC_MINUTES,
  RTC_MINUTES_ALARM,
  RTC_MONTH,
  RTC_REG_A,
  RTC_REG_B,
  RTC_REG_C,
  RTC_REG_D,
  RTC_SECONDS,
  RTC_SECONDS_ALARM,
  RTC_YEAR,
  UIP_HOLD_LENGTH_NS,
} from "./mc146818.ts";

const SEC = 1_000_000_000;
/** Monday 2026-11-23 09:30:15 UTC. */
const BASE = Date.UTC(2026, 10, 23, 9, 30, 15);

function setup(baseTimeMs = BASE) {
  const clock = new ManualClock();
  const irq = new RecordingIrq();
  const log = new CountingLog();
  const rtc = new Mc146818Rtc({ irq, clock, log, baseTimeMs, baseYear: 2000 });
  const read = (idx: number) => {
    rtc.ops.write(0, 1, idx);
    return rtc.ops.read(1, 1);
  };
  const write = (idx: number, v: number) => {
    rtc.ops.write(0, 1, idx);
    rtc.ops.write(1, 1, v);
  };
  return { clock, irq, log, rtc, read, write };
}

Deno.test("Mc146818Rtc power-on registers and BCD time from the base", () => {
  const { read } = setup();
  assert.equal(read(RTC_REG_A), 0x26);
  assert.equal(read(RTC_REG_B), 0x02);
  assert.equal(read(RTC_REG_C), 0x00);
  assert.equal(read(RTC_REG_D), 0x80);
  assert.equal(read(RTC_SECONDS), 0x15);
  assert.equal(read(RTC_MINUTES), 0x30);
  assert.equal(read(RTC_HOURS), 0x09);
  assert.equal(read(RTC_DAY_OF_WEEK), 0x02);
  assert.equal(read(RTC_DAY_OF_MONTH), 0x23);
  assert.equal(read(RTC_MONTH), 0x11);
  assert.equal(read(RTC_YEAR), 0x26);
  assert.equal(read(RTC_CENTURY), 0x20);
  assert.equal(read(0x37), 0x20, "PS/2 century byte aliases 0x32");
});

Deno.test("Mc146818Rtc time advances with the virtual clock", () => {
  const { read, clock } = setup();
  clock.step(61 * SEC);
  assert.equal(read(RTC_SECONDS), 0x16);
  assert.equal(read(RTC_MINUTES), 0x31);
  clock.step(15 * 3600 * SEC);
  assert.equal(read(RTC_HOURS), 0x00);
  assert.equal(read(RTC_DAY_OF_MONTH), 0x24);
});

Deno.test("Mc146818Rtc binary mode and 12-hour mode with PM bit", () => {
  const { read, write, clock } = setup();
  write(RTC_REG_B, REG_B_DM | REG_B_24H);
  assert.equal(read(RTC_MINUTES), 30);
  assert.equal(read(RTC_YEAR), 26);
  write(RTC_REG_B, 0x00); // BCD, 12 h
  clock.step(12 * 3600 * SEC); // 21:30
  assert.equal(read(RTC_HOURS), 0x89);
  write(RTC_REG_B, REG_B_DM);
  assert.equal(read(RTC_HOURS), 0x80 | 9);
});

Deno.test("Mc146818Rtc SET bit freezes the registers and the written time takes effect on clear", () => {
  const { read, write, clock } = setup();
  write(RTC_REG_B, REG_B_SET | REG_B_24H);
  write(RTC_HOURS, 0x23);
  write(RTC_MINUTES, 0x59);
  write(RTC_SECONDS, 0x58);
  write(RTC_YEAR, 0x99);
  write(RTC_CENTURY, 0x19);
  clock.step(5 * SEC);
  assert.equal(read(RTC_SECONDS), 0x58, "frozen while SET");
  write(RTC_REG_B, REG_B_24H);
  clock.step(3 * SEC);
  assert.equal(read(RTC_SECONDS), 0x01);
  assert.equal(read(RTC_MINUTES), 0x00);
  assert.equal(read(RTC_HOURS), 0x00);
  assert.equal(read(RTC_YEAR), 0x99);
});

Deno.test("Mc146818Rtc writes to time registers while running shift the base", () => {
  const { read, write, clock, rtc } = setup();
  write(RTC_YEAR, 0x30);
  assert.equal(read(RTC_YEAR), 0x30);
  clock.step(SEC);
  assert.equal(new Date(rtc.guestTimeMs()).getUTCFullYear(), 2030);
});

Deno.test("Mc146818Rtc sets UIP in the last 244 us before each update", () => {
  const { read, clock } = setup();
  clock.step(SEC - UIP_HOLD_LENGTH_NS - 1);
  assert.equal(read(RTC_REG_A) & REG_A_UIP, 0);
  clock.step(2);
  assert.equal(read(RTC_REG_A) & REG_A_UIP, REG_A_UIP);
  clock.step(UIP_HOLD_LENGTH_NS);
  assert.equal(read(RTC_REG_A) & REG_A_UIP, 0);
});

Deno.test("Mc146818Rtc update-ended interrupt and register C read-to-clear", () => {
  const { read, write, clock, irq } = setup();
  write(RTC_REG_B, REG_B_24H | REG_B_UIE);
  assert.equal(irq.level, false);
  clock.step(SEC);
  assert.equal(irq.level, true);
  assert.equal(read(RTC_REG_C), REG_C_IRQF | REG_C_UF);
  assert.equal(irq.level, false);
  assert.equal(read(RTC_REG_C), 0);
  clock.step(SEC);
  assert.equal(irq.level, true);
});

Deno.test("Mc146818Rtc alarm fires at the programmed time, with don't-care hours", () => {
  const { read, write, clock, irq } = setup();
  write(RTC_SECONDS_ALARM, 0x20);
  write(RTC_MINUTES_ALARM, 0x30);
  write(RTC_HOURS_ALARM, 0xc0); // any hour
  write(RTC_REG_B, REG_B_24H | REG_B_AIE);
  clock.step(4 * SEC);
  assert.equal(irq.level, false);
  clock.step(SEC + 1); // 09:30:20
  assert.equal(irq.level, true);
  assert.equal(read(RTC_REG_C) & (REG_C_IRQF | REG_C_AF), REG_C_IRQF | REG_C_AF);
  assert.equal(read(RTC_SECONDS), 0x20);
  clock.step(3599 * SEC);
  assert.equal(irq.level, false, "next match is an hour later");
  clock.step(SEC);
  assert.equal(irq.level, true);
});

Deno.test("Mc146818Rtc alarm with all fields don't-care fires every second", () => {
  const { write, read, clock, irq } = setup();
  write(RTC_SECONDS_ALARM, 0xff);
  write(RTC_MINUTES_ALARM, 0xff);
  write(RTC_HOURS_ALARM, 0xff);
  write(RTC_REG_B, REG_B_24H | REG_B_AIE);
  for (let i = 0; i < 3; i++) {
    clock.step(SEC);
    assert.equal(irq.level, true);
    assert.equal(read(RTC_REG_C) & REG_C_AF, REG_C_AF);
  }
});

Deno.test("Mc146818Rtc periodic interrupt at the rate select period", () => {
  const { read, write, clock, irq } = setup();
  write(RTC_REG_A, 0x2f); // 2 Hz
  write(RTC_REG_B, REG_B_24H | REG_B_PIE);
  // Deadlines are periodic_clock_to_ns(next) + 1, as in QEMU.
  for (let i = 1; i <= 4; i++) {
    clock.set((i * SEC) / 2);
    assert.equal(irq.level, false, `tick ${i} early`);
    clock.set((i * SEC) / 2 + 1);
    assert.equal(irq.level, true, `tick ${i}`);
    assert.equal(read(RTC_REG_C) & (REG_C_IRQF | REG_C_PF), REG_C_IRQF | REG_C_PF);
  }
  write(RTC_REG_B, REG_B_24H);
  clock.step(SEC);
  assert.equal(read(RTC_REG_C), REG_C_UF, "no PF once PIE is off (QEMU behaviour)");
});

Deno.test("Mc146818Rtc enabling an interrupt with its flag pending raises IRQ at once", () => {
  const { write, clock, irq } = setup();
  clock.step(SEC); // UF set without UIE
  assert.equal(irq.level, false);
  write(RTC_REG_B, REG_B_24H | REG_B_UIE);
  assert.equal(irq.level, true);
});

Deno.test("Mc146818Rtc divider reset stops the clock and restarts half a second later", () => {
  const { read, write, clock } = setup();
  write(RTC_REG_A, 0x66);
  clock.step(10 * SEC);
  assert.equal(read(RTC_SECONDS), 0x15);
  write(RTC_REG_A, 0x26);
  clock.step(SEC / 2 - 1);
  assert.equal(read(RTC_SECONDS), 0x15);
  clock.step(2);
  assert.equal(read(RTC_SECONDS), 0x16);
});

Deno.test("Mc146818Rtc registers C and D are read-only, index port reads 0xff and keeps the NMI bit", () => {
  const { read, write, rtc } = setup();
  write(RTC_REG_C, 0xff);
  write(RTC_REG_D, 0x00);
  assert.equal(read(RTC_REG_C), 0);
  assert.equal(read(RTC_REG_D), 0x80);
  assert.equal(rtc.ops.read(0, 1), 0xff);
  rtc.ops.write(0, 1, 0x80 | 0x10);
  assert.equal(rtc.nmiMasked, true);
  rtc.ops.write(1, 1, 0x42);
  assert.equal(rtc.getCmos(0x10), 0x42);
});

Deno.test("Mc146818Rtc stores microvm memory sizes like microvm_set_rtc", () => {
  const { rtc } = setup();
  rtc.setMemorySize({ belowGb4: 512 * 2 ** 20, aboveGb4: 0 });
  const bytes = [0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x5b, 0x5c, 0x5d].map((i) => rtc.getCmos(i));
  assert.deepEqual(bytes, [0x80, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00, 0x1f, 0, 0, 0]);
  rtc.setMemorySize({ belowGb4: 0xb0000000, aboveGb4: 2 ** 32 });
  assert.deepEqual([0x5b, 0x5c, 0x5d].map((i) => rtc.getCmos(i)), [0x00, 0x00, 0x01]);
});

Deno.test("Mc146818Rtc reset clears interrupt enables and flags but keeps time", () => {
  const { read, write, clock, irq, rtc } = setup();
  write(RTC_REG_B, REG_B_24H | REG_B_UIE | REG_B_PIE);
  clock.step(SEC);
  assert.equal(irq.level, true);
  rtc.reset();
  assert.equal(irq.level, false);
  assert.equal(read(RTC_REG_B), REG_B_24H | REG_B_UIE);
  assert.equal(read(RTC_SECONDS), 0x16);
});

Deno.test("Mc146818Rtc saveState/loadState round-trips and refuses bad state", () => {
  const a = setup();
  a.write(RTC_REG_B, REG_B_24H | REG_B_PIE | REG_B_UIE);
  a.clock.step(SEC / 3);
  const st = a.rtc.saveState();
  const b = setup(0);
  b.clock.set(a.clock.now());
  b.rtc.loadState(structuredClone(st));
  assert.deepEqual(b.rtc.saveState(), st);
  a.clock.step(5 * SEC);
  b.clock.step(5 * SEC);
  assert.equal(b.read(RTC_SECONDS), a.read(RTC_SECONDS));
  assert.equal(b.read(RTC_REG_C), a.read(RTC_REG_C));
  assert.throws(() => b.rtc.loadState({ ...st, cmos: [1, 2] }), /cmos/);
  assert.throws(() => b.rtc.loadState({ ...st, cmosIndex: 200 }), /cmosIndex/);
  assert.throws(() => b.rtc.loadState({ ...st, version: 0 }), /version/);
});

Deno.test("Mc146818Rtc random writes must not throw", () => {
  let seed = 0x146818;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
  const { rtc, clock } = setup();
  try {
    for (let i = 0; i < 20000; i++) {
      switch (rnd() % 4) {
        case 0:
          rtc.ops.write(0, 1, rnd() & 0xff);
          break;
        case 1:
          rtc.ops.write(1, 1, rnd() & 0xff);
          break;
        case 2:
          rtc.ops.read(rnd() & 1, 1);
          break;
        default:
          clock.step(rnd() % 300_000_000);
      }
    }
    rtc.loadState(rtc.saveState());
    rtc.guestTimeMs();
  } catch (e) {
    throw new Error(`seed 0x146818: ${e}`);
  }
});
