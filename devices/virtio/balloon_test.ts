import assert from "node:assert/strict";
import { FakeMemory, ManualClock, RecordingIrq } from "../../tests/fakes.ts";
import { TestDriver } from "./_driver_test_util.ts";
import { VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VirtioMmio } from "./mmio.ts";
import { BALLOON_PAGE, VirtioBalloon, type VirtioBalloonOptions } from "./balloon.ts";

const RAM = 0x400000;

function rig(opts: Partial<VirtioBalloonOptions> = {}) {
  const mem = new FakeMemory(RAM);
  const irq = new RecordingIrq();
  const clock = new ManualClock();
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq, mem, forceLegacy: true });
  const b = new VirtioBalloon({ id: "balloon0", ram: mem, clock, ...opts });
  t.plug(b);
  const d = new TestDriver(t, mem);
  const queues = opts.freePageReporting ? [0, 1, 2, 3] : [0, 1, 2];
  d.init({ queues, size: 16 });
  return { mem, irq, t, d, b, clock };
}

function pfns(mem: FakeMemory, at: number, list: number[]): number {
  list.forEach((p, i) => mem.writeU32(at + 4 * i, p));
  return list.length * 4;
}

Deno.test("VirtioBalloon: target in config, inflate zeroes pages, deflate returns them, actual reported", () => {
  const { d, t, b, mem } = rig();
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_ID, 4), 5);
  b.setTarget(RAM - 3 * BALLOON_PAGE);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG, 4), 3, "num_pages");
  // Guest data in the pages it gives away.
  for (const p of [0x200, 0x201, 0x202]) mem.write(p * BALLOON_PAGE + 100, new Uint8Array([1, 2, 3]));
  const len = pfns(mem, 0x90000, [0x200, 0x201, 0x202]);
  d.addChain(0, [{ addr: 0x90000, len }]);
  d.kick(0);
  assert.equal(d.usedIdx(0), 1);
  assert.equal(b.inflatedPages, 3);
  assert.deepEqual([...mem.read(0x201 * BALLOON_PAGE + 100, 3)!], [0, 0, 0]);
  t.write(VIRTIO_MMIO_CONFIG + 4, 4, 3);
  assert.equal(b.actualBytes, RAM - 3 * BALLOON_PAGE);
  // Grow back.
  b.setTarget(RAM);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG, 4), 0);
  const len2 = pfns(mem, 0x91000, [0x200, 0x201, 0x202]);
  d.addChain(1, [{ addr: 0x91000, len: len2 }]);
  d.kick(1);
  assert.equal(b.inflatedPages, 0);
  t.write(VIRTIO_MMIO_CONFIG + 4, 4, 0);
  assert.equal(b.actualBytes, RAM);
});

Deno.test("VirtioBalloon: a pfn outside RAM is logged and skipped, never a crash", () => {
  const { d, b, mem } = rig();
  const len = pfns(mem, 0x90000, [0xffffffff, 0x300]);
  d.addChain(0, [{ addr: 0x90000, len: len + 2 }]);
  d.kick(0);
  assert.equal(b.inflatedPages, 1);
});

Deno.test("VirtioBalloon: stats are parsed and the buffer is returned every polling interval", () => {
  const { d, b, mem, clock } = rig();
  b.setPollInterval(2);
  const put = (at: number, tag: number, val: number) => {
    mem.writeU16(at, tag);
    mem.writeU64(at + 2, val);
  };
  put(0xa0000, 4, 1000 * 4096); // free memory
  put(0xa000a, 5, 4000 * 4096); // total memory
  d.addChain(2, [{ addr: 0xa0000, len: 20 }]);
  d.kick(2);
  const s = b.guestStats();
  assert.equal(s.stats["stat-free-memory"], 1000 * 4096);
  assert.equal(s.stats["stat-total-memory"], 4000 * 4096);
  assert.equal(s.stats["stat-swap-in"], -1);
  assert.equal(d.usedIdx(2), 0, "held until the poll");
  clock.step(2e9);
  assert.equal(d.usedIdx(2), 1, "returned for a refill");
});

Deno.test("VirtioBalloon: free-page-reporting releases the reported ranges", () => {
  const { d, b, mem } = rig({ freePageReporting: true });
  mem.write(0x300000, new Uint8Array([9, 9, 9]));
  d.addChain(3, [{ addr: 0x300000, len: 2 * BALLOON_PAGE, write: true }]);
  d.kick(3);
  assert.equal(d.usedIdx(3), 1);
  assert.equal(b.reports, 1);
  assert.deepEqual([...mem.read(0x300000, 3)!], [0, 0, 0]);
});

Deno.test("VirtioBalloon takes a stats buffer kicked before DRIVER_OK once the driver is ready (Linux probe order)", () => {
  const mem = new FakeMemory(RAM);
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq: new RecordingIrq(), mem, forceLegacy: true });
  const b = new VirtioBalloon({ id: "balloon0", ram: mem, clock: new ManualClock() });
  t.plug(b);
  const d = new TestDriver(t, mem);
  // Rings and a stats buffer before DRIVER_OK, as virtballoon_probe does.
  for (const st of [0, 1, 3]) d.w(0x70, st); // reset, ACKNOWLEDGE, DRIVER (no DRIVER_OK yet)
  for (const q of [0, 1, 2]) d.setupQueue(q, 16);
  mem.writeU16(0xa0000, 5);
  mem.writeU64(0xa0002, 12345);
  d.addChain(2, [{ addr: 0xa0000, len: 10 }]);
  d.kick(2);
  assert.equal(b.guestStats().stats["stat-total-memory"], -1);
  d.w(0x70, 0x7); // Status: ACKNOWLEDGE | DRIVER | DRIVER_OK
  assert.equal(b.guestStats().stats["stat-total-memory"], 12345);
});
