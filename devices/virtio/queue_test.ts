import assert from "node:assert/strict";
import { CountingLog, type DeviceState } from "../../core/types.ts";
import { FakeMemory, RecordingIrq } from "../../tests/fakes.ts";
import { TestDriver } from "./_driver_test_util.ts";
import {
  featureBit,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_NOTIFY_ON_EMPTY,
  VIRTIO_RING_F_EVENT_IDX,
  type VirtioContext,
  type VirtioDevice,
} from "./device.ts";
import { VirtioMmio } from "./mmio.ts";
import {
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
} from "./queue.ts";

/** A device that completes every chain, writing 0xab into its in buffers. */
class SinkDevice implements VirtioDevice {
  readonly id = "sink";
  readonly typeName = "test-sink";
  readonly deviceId = 99;
  readonly queueSizes = [16, 16];
  readonly configSize = 0;
  popped: { out: number; in: number }[] = [];
  #ctx: VirtioContext | null = null;
  hostFeatures(_modern: boolean): bigint {
    return featureBit(28) | featureBit(29) | featureBit(VIRTIO_F_NOTIFY_ON_EMPTY);
  }
  readConfig(): number {
    return 0;
  }
  writeConfig(): void {}
  attach(ctx: VirtioContext): void {
    this.#ctx = ctx;
  }
  queueNotify(index: number): void {
    const ctx = this.#ctx!;
    const q = ctx.queues[index];
    for (let e = q.pop(); e !== null; e = q.pop()) {
      this.popped.push({ out: e.outBytes, in: e.inBytes });
      e.writeIn(ctx.mem, 0, new Uint8Array(e.inBytes).fill(0xab));
      q.push(e, e.inBytes);
    }
    ctx.notify(q);
  }
  reset(): void {
    this.popped = [];
  }
  saveState(): DeviceState {
    return { version: 1 };
  }
  loadState(): void {}
  propertyValues(): Record<string, string | number | boolean> {
    return {};
  }
}

function setup(legacy: boolean, features?: (f: bigint) => bigint) {
  const mem = new FakeMemory(0x100000);
  const irq = new RecordingIrq();
  const log = new CountingLog();
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq, mem, log, forceLegacy: legacy });
  const dev = new SinkDevice();
  t.plug(dev);
  const d = new TestDriver(t, mem);
  d.init({ queues: [0, 1], size: 16, ...(features ? { features } : {}) });
  return { mem, irq, log, t, dev, d };
}

for (const legacy of [true, false]) {
  const layout = legacy ? "legacy" : "modern";

  Deno.test(`Virtqueue (${layout}) completes a chain into the used ring and raises the interrupt`, () => {
    const { irq, d, dev, t } = setup(legacy);
    assert.equal(t.status & 4, 4);
    const head = d.addChain(0, [{ addr: 0x80000, len: 16 }, { addr: 0x81000, len: 32, write: true }]);
    d.kick(0);
    assert.deepEqual(dev.popped, [{ out: 16, in: 32 }]);
    assert.equal(d.usedIdx(0), 1);
    assert.deepEqual(d.used(0, 0), { id: head, len: 32 });
    assert.equal(d.mem.readU8(0x81000 + 31), 0xab);
    assert.equal(d.isr() & 1, 1);
    assert.equal(irq.level, true);
    d.ack(1);
    assert.equal(irq.level, false);
  });

  Deno.test(`Virtqueue (${layout}) follows an indirect descriptor table`, () => {
    const { d, dev } = setup(legacy);
    const table = 0x90000;
    d.mem.writeU64(table, 0x80000);
    d.mem.writeU32(table + 8, 8);
    d.mem.writeU16(table + 12, VRING_DESC_F_NEXT);
    d.mem.writeU16(table + 14, 1);
    d.mem.writeU64(table + 16, 0x81000);
    d.mem.writeU32(table + 24, 100);
    d.mem.writeU16(table + 28, VRING_DESC_F_WRITE);
    d.addChain(0, [{ addr: table, len: 32, flags: VRING_DESC_F_INDIRECT }]);
    d.kick(0);
    assert.deepEqual(dev.popped, [{ out: 8, in: 100 }]);
    assert.equal(d.used(0, 0).len, 100);
  });

  Deno.test(`Virtqueue (${layout}) honours EVENT_IDX: avail_event written, used_event gates interrupts`, () => {
    const { d, irq } = setup(legacy, (f) => f & ~featureBit(VIRTIO_F_NOTIFY_ON_EMPTY));
    const r = d.rings(0);
    // used_event = 1: interrupt only once the device passes used index 1.
    d.mem.writeU16(r.avail + 4 + 2 * 16, 1);
    d.addChain(0, [{ addr: 0x81000, len: 8, write: true }]);
    d.kick(0);
    assert.equal(d.mem.readU16(r.used + 4 + 8 * 16), 1, "avail_event");
    // First notification always fires (signalled_used not yet valid).
    assert.equal(irq.level, true);
    d.ack();
    d.addChain(0, [{ addr: 0x81000, len: 8, write: true }]);
    d.kick(0);
    assert.equal(irq.level, true, "used idx 0->2 crosses used_event 1");
    d.ack();
    d.mem.writeU16(r.avail + 4 + 2 * 16, 10);
    d.addChain(0, [{ addr: 0x81000, len: 8, write: true }]);
    d.kick(0);
    assert.equal(irq.level, false, "used_event 10 not reached");
  });

  Deno.test(`Virtqueue (${layout}) honours VRING_AVAIL_F_NO_INTERRUPT without EVENT_IDX`, () => {
    const { d, irq } = setup(
      legacy,
      (f) => f & ~featureBit(VIRTIO_F_NOTIFY_ON_EMPTY) & ~featureBit(VIRTIO_RING_F_EVENT_IDX),
    );
    d.mem.writeU16(d.rings(0).avail, VRING_AVAIL_F_NO_INTERRUPT);
    d.addChain(0, [{ addr: 0x81000, len: 8, write: true }]);
    d.kick(0);
    assert.equal(d.usedIdx(0), 1);
    assert.equal(irq.level, false);
  });

  const hostile: [string, (d: TestDriver) => void][] = [
    ["address outside RAM", (d) => d.addChain(0, [{ addr: 0x200000, len: 16 }])],
    ["overflowing length", (d) => d.addChain(0, [{ addr: 0xffff0, len: 0xffffffff, write: true }])],
    ["64-bit address", (d) => d.addChain(0, [{ addr: 2 ** 63, len: 16 }])],
    ["zero length", (d) => d.addChain(0, [{ addr: 0x80000, len: 0 }])],
    ["descriptor loop", (d) => {
      d.writeDesc(0, 0, 0x80000, 8, VRING_DESC_F_NEXT, 1);
      d.writeDesc(0, 1, 0x80000, 8, VRING_DESC_F_NEXT, 0);
      d.publish(0, 0);
    }],
    ["next index out of range", (d) => {
      d.writeDesc(0, 0, 0x80000, 8, VRING_DESC_F_NEXT, 16);
      d.publish(0, 0);
    }],
    ["head index out of range", (d) => d.publish(0, 0xffff)],
    ["avail index jump", (d) => d.mem.writeU16(d.rings(0).avail + 2, 100)],
    [
      "write before read descriptor",
      (d) => d.addChain(0, [{ addr: 0x80000, len: 8, write: true }, { addr: 0x81000, len: 8 }]),
    ],
    [
      "indirect table of bad size",
      (d) => d.addChain(0, [{ addr: 0x90000, len: 20, flags: VRING_DESC_F_INDIRECT }]),
    ],
    [
      "indirect table outside RAM",
      (d) => d.addChain(0, [{ addr: 0xffff0, len: 64, flags: VRING_DESC_F_INDIRECT }]),
    ],
    ["nested indirect", (d) => {
      d.mem.writeU64(0x90000, 0x90000);
      d.mem.writeU32(0x90008, 16);
      d.mem.writeU16(0x9000c, VRING_DESC_F_INDIRECT);
      d.addChain(0, [{ addr: 0x90000, len: 16, flags: VRING_DESC_F_INDIRECT }]);
    }],
    ["indirect loop", (d) => {
      d.mem.writeU64(0x90000, 0x80000);
      d.mem.writeU32(0x90008, 8);
      d.mem.writeU16(0x9000c, VRING_DESC_F_NEXT);
      d.mem.writeU16(0x9000e, 0);
      d.addChain(0, [{ addr: 0x90000, len: 16, flags: VRING_DESC_F_INDIRECT }]);
    }],
  ];
  for (const [name, poison] of hostile) {
    Deno.test(`Virtqueue (${layout}) marks the device NEEDS_RESET on ${name}`, () => {
      const { d, t, irq, log, dev } = setup(legacy);
      poison(d);
      d.kick(0);
      assert.equal(t.broken, true);
      assert.equal(t.status & VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
      assert.ok(log.errors > 0);
      assert.equal(dev.popped.length, 0);
      if (!legacy) {
        assert.equal(d.isr() & 2, 2, "config-change interrupt for v2");
        assert.equal(irq.level, true);
      }
      // Further kicks do nothing; a reset brings the device back.
      d.kick(0);
      d.init({ queues: [0, 1], size: 16 });
      assert.equal(t.broken, false);
      assert.equal(t.status & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
      d.addChain(0, [{ addr: 0x81000, len: 8, write: true }]);
      d.kick(0);
      assert.equal(d.usedIdx(0), 1);
    });
  }
}

Deno.test("Virtqueue fails the device when rings lie outside RAM", () => {
  const mem = new FakeMemory(0x100000);
  const t = new VirtioMmio({ id: "m", irq: new RecordingIrq(), mem, forceLegacy: true });
  t.plug(new SinkDevice());
  const d = new TestDriver(t, mem);
  d.init({ queues: [], size: 16 });
  t.write(0x30, 4, 0);
  t.write(0x38, 4, 16);
  t.write(0x28, 4, 4096);
  t.write(0x40, 4, 0xfffff); // PFN far above RAM
  t.write(0x50, 4, 0);
  assert.equal(t.broken, true);
});
