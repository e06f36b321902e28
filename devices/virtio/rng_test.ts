import assert from "node:assert/strict";
import { UserError } from "../../core/types.ts";
import { FakeMemory, ManualClock, RecordingIrq } from "../../tests/fakes.ts";
import { TestDriver } from "./_driver_test_util.ts";
import { VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_ID, VirtioMmio } from "./mmio.ts";
import { hostEntropy, VirtioRng, type VirtioRngOptions } from "./rng.ts";

/** Deterministic "entropy": a counter. */
function counter(): (buf: Uint8Array) => void {
  let n = 0;
  return (buf) => {
    for (let i = 0; i < buf.length; i++) buf[i] = n++ & 0xff;
  };
}

function rig(legacy: boolean, opts: Partial<VirtioRngOptions> = {}) {
  const mem = new FakeMemory(0x100000);
  const irq = new RecordingIrq();
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq, mem, forceLegacy: legacy });
  t.plug(new VirtioRng({ id: "rng0", entropy: counter(), ...opts }));
  const d = new TestDriver(t, mem);
  d.init({ queues: [0], size: 8 });
  return { mem, irq, t, d };
}

for (const legacy of [true, false]) {
  Deno.test(`VirtioRng (${legacy ? "legacy" : "modern"}) fills a buffer with entropy`, () => {
    const { d, irq, t } = rig(legacy);
    assert.equal(t.read(VIRTIO_MMIO_DEVICE_ID, 4), 4);
    d.addChain(0, [{ addr: 0x80000, len: 16, write: true }, { addr: 0x81000, len: 16, write: true }]);
    d.kick(0);
    assert.equal(d.usedIdx(0), 1);
    assert.equal(d.used(0, 0).len, 32);
    assert.deepEqual([...d.mem.read(0x80000, 4)!], [0, 1, 2, 3]);
    assert.deepEqual([...d.mem.read(0x81000, 2)!], [16, 17]);
    assert.equal(irq.level, true);
  });
}

Deno.test("VirtioRng legacy features are QEMU's common set", () => {
  const { t } = rig(true);
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 0x39000000);
});

Deno.test("VirtioRng rate limit waits for the next period", () => {
  const clock = new ManualClock();
  const { d } = rig(true, { maxBytes: 20, periodMs: 1000, clock });
  d.addChain(0, [{ addr: 0x80000, len: 16, write: true }]);
  d.addChain(0, [{ addr: 0x81000, len: 16, write: true }]);
  d.addChain(0, [{ addr: 0x82000, len: 16, write: true }]);
  d.kick(0);
  assert.equal(d.usedIdx(0), 2);
  assert.equal(d.used(0, 1).len, 4);
  clock.step(999e6);
  assert.equal(d.usedIdx(0), 2);
  clock.step(1e6);
  assert.equal(d.usedIdx(0), 3);
  assert.equal(d.used(0, 2).len, 16);
});

Deno.test("VirtioRng validates its properties", () => {
  assert.throws(() => new VirtioRng({ id: "r", periodMs: 0 }), UserError);
  assert.throws(() => new VirtioRng({ id: "r", maxBytes: 0 }), UserError);
  assert.throws(() => new VirtioRng({ id: "r", maxBytes: 10 }), UserError, "limit without clock");
  const r = new VirtioRng({ id: "r" });
  assert.deepEqual(Object.keys(r.propertyValues()).slice(0, 3), ["max-bytes", "period", "rng"]);
});

Deno.test("hostEntropy fills large buffers", () => {
  const b = new Uint8Array(200_000);
  hostEntropy(b);
  assert.ok(b.subarray(150_000).some((x) => x !== 0));
});

Deno.test("VirtioRng bounds the work a huge aliasing chain can ask for", () => {
  const mem = new FakeMemory(0x100000);
  const t = new VirtioMmio({ id: "m", irq: new RecordingIrq(), mem, forceLegacy: true });
  t.plug(new VirtioRng({ id: "rng0", entropy: counter() }));
  const d = new TestDriver(t, mem);
  d.init({ queues: [0], size: 1024 });
  // 1024 descriptors, each the same 512 KiB: 512 MiB of "buffer".
  d.addChain(0, Array.from({ length: 1024 }, () => ({ addr: 0x80000, len: 0x80000, write: true })));
  d.kick(0);
  assert.equal(d.usedIdx(0), 1);
  assert.equal(d.used(0, 0).len, 65536);
});
