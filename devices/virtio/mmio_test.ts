import assert from "node:assert/strict";
import { type BlockBackend, CountingLog, UserError } from "../../core/types.ts";
import { FakeMemory, RecordingIrq } from "../../tests/fakes.ts";
import { TestDriver } from "./_driver_test_util.ts";
import { VirtioBlk } from "./blk.ts";
import {
  VIRT_MAGIC,
  VIRT_VENDOR,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_GUEST_PAGE_SIZE,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_PFN,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_SHM_LEN_HIGH,
  VIRTIO_MMIO_SHM_LEN_LOW,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VirtioMmio,
} from "./mmio.ts";

/** A zero-filled in-memory disk. */
function memDisk(size = 64 * 1024 * 1024): BlockBackend {
  const bytes = new Uint8Array(size);
  return {
    size,
    readOnly: false,
    id: "test",
    read: (off, dst) => (dst.set(bytes.subarray(off, off + dst.length)), true),
    write: (off, src) => (bytes.set(src, off), true),
    flush: () => true,
    close: () => {},
  };
}

function transport(legacy: boolean, withBlk = true) {
  const mem = new FakeMemory(0x100000);
  const irq = new RecordingIrq();
  const log = new CountingLog();
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq, mem, log, forceLegacy: legacy });
  if (withBlk) t.plug(new VirtioBlk({ id: "blk0", drive: memDisk() }));
  return { mem, irq, log, t, d: new TestDriver(t, mem) };
}

for (const legacy of [true, false]) {
  const layout = legacy ? "legacy" : "modern";
  Deno.test(`VirtioMmio (${layout}) empty transport answers magic, version, vendor and device id 0`, () => {
    const { t } = transport(legacy, false);
    assert.equal(t.read(VIRTIO_MMIO_MAGIC_VALUE, 4), VIRT_MAGIC);
    assert.equal(t.read(VIRTIO_MMIO_VERSION, 4), legacy ? 1 : 2);
    assert.equal(t.read(VIRTIO_MMIO_DEVICE_ID, 4), 0);
    assert.equal(t.read(VIRTIO_MMIO_VENDOR_ID, 4), VIRT_VENDOR);
    assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 0);
    t.write(VIRTIO_MMIO_STATUS, 4, 1);
    assert.equal(t.read(VIRTIO_MMIO_STATUS, 4), 0);
    assert.equal(t.read(VIRTIO_MMIO_CONFIG, 4), 0);
  });

  Deno.test(`VirtioMmio (${layout}) rejects sub-word register access but not config access`, () => {
    const { t, log } = transport(legacy);
    assert.equal(t.read(VIRTIO_MMIO_MAGIC_VALUE, 2), 0);
    assert.equal(t.read(VIRTIO_MMIO_DEVICE_ID, 1), 0);
    assert.equal(log.errors, 2);
    t.write(VIRTIO_MMIO_STATUS, 1, 1);
    assert.equal(t.read(VIRTIO_MMIO_STATUS, 4), 0);
    // config space: capacity of a 64 MiB disk is 131072 sectors, readable at any width
    assert.equal(t.read(VIRTIO_MMIO_CONFIG, 4), 131072);
    assert.equal(t.read(VIRTIO_MMIO_CONFIG + 2, 1), 2);
    assert.equal(t.read(VIRTIO_MMIO_CONFIG + 2, 2), 2);
    // past the end of config space: all-ones
    assert.equal(t.read(VIRTIO_MMIO_CONFIG + 0xfc, 4), 0xffffffff);
    assert.equal(t.read(VIRTIO_MMIO_CONFIG + 0xff, 1), 0xff);
  });

  Deno.test(`VirtioMmio (${layout}) QueueNumMax is 1024 for existing queues and 0 beyond`, () => {
    const { t } = transport(legacy);
    t.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
    assert.equal(t.read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4), 1024);
    t.write(VIRTIO_MMIO_QUEUE_SEL, 4, 1);
    assert.equal(t.read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4), 0);
    t.write(VIRTIO_MMIO_QUEUE_SEL, 4, 5000); // ignored (>= VIRTIO_QUEUE_MAX)
    assert.equal(t.read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4), 0);
  });

  Deno.test(`VirtioMmio (${layout}) status table refuses out-of-order transitions`, () => {
    const { t, log } = transport(legacy);
    t.write(VIRTIO_MMIO_STATUS, 4, 4); // DRIVER_OK from reset
    assert.equal(t.status, 0);
    t.write(VIRTIO_MMIO_STATUS, 4, 1);
    t.write(VIRTIO_MMIO_STATUS, 4, 1 | 8); // FEATURES_OK without DRIVER
    assert.equal(t.status, 1);
    t.write(VIRTIO_MMIO_STATUS, 4, 3);
    assert.equal(t.status, 3);
    t.write(VIRTIO_MMIO_STATUS, 4, 1); // clearing a bit
    assert.equal(t.status, 3);
    t.write(VIRTIO_MMIO_STATUS, 4, 3 | 0x80); // FAILED any time
    assert.equal(t.status, 0x83);
    assert.ok(log.errors >= 3);
    t.write(VIRTIO_MMIO_STATUS, 4, 0);
    assert.equal(t.status, 0);
  });

  Deno.test(`VirtioMmio (${layout}) interrupt status drives the IRQ line until acknowledged`, () => {
    const { d, irq, mem } = transport(legacy);
    d.init({ queues: [0], size: 16 });
    d.addChain(0, [{ addr: 0x80000, len: 16 }, { addr: 0x81000, len: 1, write: true }]);
    mem.writeU32(0x80000, 8); // GET_ID
    d.kick(0);
    assert.equal(d.isr(), 1);
    assert.equal(irq.level, true);
    d.ack(1);
    assert.equal(d.isr(), 0);
    assert.equal(irq.level, false);
  });

  Deno.test(`VirtioMmio (${layout}) survives seeded random register writes`, () => {
    for (let seed = 1; seed <= 20; seed++) {
      let s = seed;
      const rnd = () => {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        return s >>> 0;
      };
      const { t, mem, d } = transport(legacy);
      for (let i = 0; i < mem.bytes.length; i += 4) mem.writeU32(i, rnd());
      d.init({ queues: [0], size: 16 });
      const regs = [
        0x14,
        0x20,
        0x24,
        0x28,
        0x30,
        0x38,
        0x3c,
        0x40,
        0x44,
        0x50,
        0x64,
        0x70,
        0x80,
        0x84,
        0x90,
        0xa0,
      ];
      try {
        for (let i = 0; i < 3000; i++) {
          const r = rnd();
          const off = (r & 1) ? regs[r % regs.length] : r % 0x200;
          const size = ([1, 2, 4] as const)[(r >>> 8) % 3];
          const v = (r & 0x100) ? (rnd() & 0xf) : (r & 0x200) ? rnd() & 0xfff : rnd();
          if (r & 0x400) t.write(off, size, off === 0x50 ? 0 : v);
          else t.read(off, size);
          if ((r & 0xff) === 7) mem.writeU32(rnd() % (mem.bytes.length - 4), rnd());
        }
      } catch (e) {
        throw new Error(`seed ${seed}: ${e}`);
      }
    }
  });

  Deno.test(`VirtioMmio (${layout}) saveState/loadState round-trips`, () => {
    const { d, t, mem } = transport(legacy);
    d.init({ queues: [0], size: 16 });
    d.addChain(0, [{ addr: 0x80000, len: 16 }, { addr: 0x81000, len: 1, write: true }]);
    mem.writeU32(0x80000, 8);
    d.kick(0);
    const s = t.saveState();
    const t2 = new VirtioMmio({ id: "x", irq: new RecordingIrq(), mem, forceLegacy: legacy });
    t2.plug(new VirtioBlk({ id: "blk0", drive: memDisk() }));
    t2.loadState(structuredClone(s));
    assert.deepEqual(t2.saveState(), s);
    assert.throws(() => t2.loadState({ ...s, queues: [] }));
  });
}

Deno.test("VirtioMmio legacy offers QEMU 7.2's virtio-blk feature word 0x31006ed4", () => {
  const { t } = transport(true);
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_ID, 4), 2);
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 0x31006ed4);
  t.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4, 1);
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 0);
});

Deno.test("VirtioMmio modern offers VERSION_1 and hides legacy-only bits", () => {
  const { t } = transport(false);
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 0x30006e54);
  t.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4, 1);
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 0x101);
  assert.equal(t.read(VIRTIO_MMIO_SHM_LEN_LOW, 4), 0xffffffff);
  assert.equal(t.read(VIRTIO_MMIO_SHM_LEN_HIGH, 4), 0xffffffff);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG_GENERATION, 4), 0);
});

Deno.test("VirtioMmio modern refuses FEATURES_OK without VERSION_1 or with unoffered bits", () => {
  const { t, d } = transport(false);
  d.init({ queues: [], features: (f) => f & 0xffffffffn });
  assert.equal(t.status & 8, 0);
  d.init({ queues: [], features: (f) => f | (1n << 50n) });
  assert.equal(t.status & 8, 0);
  d.init({ queues: [0], features: (f) => f });
  assert.equal(t.status, 0xf);
  t.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
  assert.equal(t.read(VIRTIO_MMIO_QUEUE_READY, 4), 1);
  // Legacy registers are refused in the modern layout.
  t.write(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4, 4096);
  assert.equal(t.read(VIRTIO_MMIO_QUEUE_PFN, 4), 0);
  // Status 0 resets and disables the queue.
  t.write(VIRTIO_MMIO_STATUS, 4, 0);
  assert.equal(t.read(VIRTIO_MMIO_QUEUE_READY, 4), 0);
});

Deno.test("VirtioMmio legacy QueuePFN reads back and a 0 write resets the device", () => {
  const { t, d } = transport(true);
  d.init({ queues: [0], size: 16 });
  t.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
  assert.equal(t.read(VIRTIO_MMIO_QUEUE_PFN, 4), 0x10);
  assert.equal(t.status, 7);
  t.write(VIRTIO_MMIO_QUEUE_PFN, 4, 0);
  assert.equal(t.status, 0);
  assert.equal(t.read(VIRTIO_MMIO_QUEUE_PFN, 4), 0);
  // Legacy ignores the second GuestFeatures word and modern-only registers.
  t.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4, 1);
  t.write(VIRTIO_MMIO_DRIVER_FEATURES, 4, 1);
  assert.equal(t.read(VIRTIO_MMIO_QUEUE_READY, 4), 0);
  t.write(VIRTIO_MMIO_QUEUE_NUM, 4, 2048); // above QueueNumMax: ignored
  assert.equal(t.queues[0].size, 256);
});

Deno.test("VirtioMmio plug refuses a second device", () => {
  const { t } = transport(true);
  assert.throws(() => t.plug(new VirtioBlk({ id: "b2", drive: memDisk() })), UserError);
});

Deno.test("VirtioMmio exposes its properties and region", () => {
  const { t } = transport(true);
  assert.deepEqual(t.propertyValues(), {
    format_transport_address: true,
    "force-legacy": true,
    ioeventfd: false,
  });
  assert.equal(VirtioMmio.REGION_SIZE, 0x200);
  assert.equal(VirtioMmio.REGION_NAME, "virtio-mmio");
});

Deno.test("VirtioMmio ignores QueueNotify beyond the queue count and for unready queues", () => {
  const { t, d } = transport(true);
  t.write(0x50, 4, 1); // blk has one queue
  t.write(0x50, 4, 0xffffffff);
  t.write(0x50, 4, 0); // queue 0 not set up yet
  assert.equal(t.broken, false);
  d.init({ queues: [0], size: 16 });
  t.write(0x50, 4, 7);
  assert.equal(t.broken, false);
  assert.equal(t.interruptStatus, 0);
});
