import assert from "node:assert/strict";
import { CountingLog } from "../core/types.ts";
import { FakeMemory, ManualClock } from "../tests/fakes.ts";
import {
  KvmClock,
  MSR_KVM_SYSTEM_TIME,
  MSR_KVM_SYSTEM_TIME_NEW,
  MSR_KVM_WALL_CLOCK_NEW,
  PVCLOCK_TSC_STABLE_BIT,
  pvclockScale,
} from "./kvmclock.ts";

function setup(tscKhz = 1_000_000) {
  const mem = new FakeMemory(0x10000);
  const clock = new ManualClock();
  const log = new CountingLog();
  const kc = new KvmClock({ mem, clock, tscKhz, wallClockMs: 1_700_000_000_123, log });
  return { mem, clock, log, kc, dv: new DataView(mem.bytes.buffer) };
}

/** What Linux's pvclock_clocksource_read computes from the structure at `a` for TSC value `tsc`. */
function guestNs(dv: DataView, a: number, tsc: bigint): bigint {
  const tscTs = dv.getBigUint64(a + 8, true);
  const sys = dv.getBigUint64(a + 16, true);
  const mul = BigInt(dv.getUint32(a + 24, true));
  const shift = dv.getInt8(a + 28);
  let delta = tsc - tscTs;
  delta = shift >= 0 ? delta << BigInt(shift) : delta >> BigInt(-shift);
  return sys + ((delta * mul) >> 32n);
}

Deno.test("pvclockScale matches KVM's kvm_get_time_scale for 1 GHz and 2.5 GHz", () => {
  assert.deepEqual(pvclockScale(1e9, 1e9), { mul: 0x80000000, shift: 1 });
  const s = pvclockScale(1e9, 2.5e9);
  assert.equal(s.shift, -1);
  assert.equal(s.mul, Math.floor(2 ** 32 / 1.25));
});

Deno.test("KvmClock writes pvclock_vcpu_time_info with an even version and the stable bit", () => {
  const { kc, clock, dv } = setup(2_000_000);
  clock.set(1_000_000);
  assert.ok(kc.handles(MSR_KVM_SYSTEM_TIME_NEW));
  assert.equal(kc.write(0, MSR_KVM_SYSTEM_TIME_NEW, 0x1000n | 1n), true);
  assert.equal(kc.read(0, MSR_KVM_SYSTEM_TIME_NEW), 0x1001n);
  assert.equal(dv.getUint32(0x1000, true), 2);
  assert.equal(dv.getBigUint64(0x1008, true), 2_000_000n); // TSC at 1 ms, 2 GHz
  assert.equal(dv.getBigUint64(0x1010, true), 1_000_000n);
  assert.equal(dv.getUint8(0x101d), PVCLOCK_TSC_STABLE_BIT);
  // The guest's formula gives the virtual time back: 5 ms later = TSC 10,000,000.
  assert.equal(guestNs(dv, 0x1000, 10_000_000n), 5_000_000n);
  kc.write(0, MSR_KVM_SYSTEM_TIME_NEW, 0x1001n);
  assert.equal(dv.getUint32(0x1000, true), 4);
});

Deno.test("KvmClock keeps one area per CPU and honours the enable bit", () => {
  const { kc, dv } = setup();
  kc.write(1, MSR_KVM_SYSTEM_TIME, 0x2000n);
  assert.equal(dv.getUint32(0x2000, true), 0);
  kc.write(1, MSR_KVM_SYSTEM_TIME, 0x2001n);
  assert.equal(dv.getUint32(0x2000 + 24, true), 0x80000000);
  assert.equal(kc.read(0, MSR_KVM_SYSTEM_TIME), 0n);
  assert.equal(kc.read(1, MSR_KVM_SYSTEM_TIME), 0x2001n);
});

Deno.test("KvmClock writes the boot wall-clock time", () => {
  const { kc, dv } = setup();
  kc.write(0, MSR_KVM_WALL_CLOCK_NEW, 0x3000n);
  assert.equal(dv.getUint32(0x3000, true), 2);
  assert.equal(dv.getUint32(0x3004, true), 1_700_000_000);
  assert.equal(dv.getUint32(0x3008, true), 123_000_000);
});

Deno.test("KvmClock ignores areas outside RAM and logs a guest error", () => {
  const { kc, log } = setup();
  assert.equal(kc.write(0, MSR_KVM_SYSTEM_TIME_NEW, 0xfffff001n), true);
  assert.equal(kc.write(0, MSR_KVM_WALL_CLOCK_NEW, 0xffffffffffffffffn), true);
  assert.equal(kc.write(0, MSR_KVM_SYSTEM_TIME_NEW, BigInt(0x10000 - 16) | 1n), true);
  assert.equal(log.errors, 3);
  assert.equal(kc.read(0, 0x1234), undefined);
  assert.equal(kc.write(0, 0x1234, 0n), false);
});

Deno.test("KvmClock survives seeded random MSR writes", () => {
  const { kc, clock } = setup(3_123_456);
  let seed = 99;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  const msrs = [0x11, 0x12, 0x4b564d00, 0x4b564d01];
  for (let i = 0; i < 5000; i++) {
    kc.write(rnd() & 3, msrs[rnd() & 3], (BigInt(rnd()) << 32n | BigInt(rnd())) >> BigInt(rnd() & 63));
    clock.step(rnd() & 0xfff);
  }
  kc.refresh();
});
