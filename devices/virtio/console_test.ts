import assert from "node:assert/strict";
import { type CharBackend, type CharReceiver, UserError } from "../../core/types.ts";
import { FakeMemory, RecordingIrq } from "../../tests/fakes.ts";
import { TestDriver } from "./_driver_test_util.ts";
import {
  VIRTIO_CONSOLE_BAD_ID,
  VIRTIO_CONSOLE_CONSOLE_PORT,
  VIRTIO_CONSOLE_DEVICE_READY,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_PORT_ADD,
  VIRTIO_CONSOLE_PORT_NAME,
  VIRTIO_CONSOLE_PORT_OPEN,
  VIRTIO_CONSOLE_PORT_READY,
  VIRTIO_CONSOLE_RESIZE,
  VirtioSerial,
} from "./console.ts";
import { featureBit } from "./device.ts";
import {
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_ID,
  VirtioMmio,
} from "./mmio.ts";

class FakeChar implements CharBackend {
  out: number[] = [];
  receiver: CharReceiver | null = null;
  accepts = 0;
  connected = true;
  write(data: Uint8Array): void {
    this.out.push(...data);
  }
  setReceiver(r: CharReceiver | null): void {
    this.receiver = r;
  }
  accept(): void {
    this.accepts++;
  }
  text(): string {
    return new TextDecoder().decode(Uint8Array.from(this.out));
  }
}

const CTRL_BUFS = 0xa0000;

function rig(legacy: boolean, opts: { multiport?: boolean; named?: boolean } = {}) {
  const mem = new FakeMemory(0x100000);
  const irq = new RecordingIrq();
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq, mem, forceLegacy: legacy });
  const ser = new VirtioSerial({ id: "vser0", ...(opts.multiport === false ? { maxPorts: 1 } : {}) });
  const con = new FakeChar();
  ser.addPort({ console: true, chardev: con, chardevName: "virtiocon0" });
  const named = new FakeChar();
  if (opts.named) ser.addPort({ console: false, chardev: named, name: "org.test.port" });
  t.plug(ser);
  const d = new TestDriver(t, mem);
  const queues = opts.multiport === false ? [0, 1] : [0, 1, 2, 3, 4, 5];
  d.init({ queues, size: 16 });
  return { mem, irq, t, ser, con, named, d };
}

/** Give the device `n` control-rx buffers of 64 bytes. */
function fillCtrlRx(d: TestDriver, n: number, base = CTRL_BUFS): number[] {
  const addrs: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = base + i * 64;
    d.addChain(2, [{ addr: a, len: 64, write: true }]);
    addrs.push(a);
  }
  d.kick(2);
  return addrs;
}

function sendCtrl(d: TestDriver, id: number, event: number, value: number): void {
  const a = 0xb0000;
  d.mem.writeU32(a, id);
  d.mem.writeU16(a + 4, event);
  d.mem.writeU16(a + 6, value);
  d.addChain(3, [{ addr: a, len: 8 }]);
  d.kick(3);
}

/** Control messages the device has put in control-rx so far, from used entry `from`. */
function received(
  d: TestDriver,
  from: number,
): { id: number; event: number; value: number; extra: Uint8Array }[] {
  const out = [];
  for (let n = from; n < d.usedIdx(2); n++) {
    const u = d.used(2, n);
    const a = CTRL_BUFS + u.id * 64;
    out.push({
      id: d.mem.readU32(a),
      event: d.mem.readU16(a + 4),
      value: d.mem.readU16(a + 6),
      extra: d.mem.read(a + 8, u.len - 8)!,
    });
  }
  return out;
}

Deno.test("VirtioSerial legacy offers QEMU 7.2's feature word 0x39000006 and max_nr_ports 31", () => {
  const { t } = rig(true);
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_ID, 4), 3);
  t.write(0x14, 4, 0);
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 0x39000006);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG, 4), 0); // cols, rows
  assert.equal(t.read(VIRTIO_MMIO_CONFIG + 4, 4), 31);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG + 8, 4), 0);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG + 12, 4), 0xffffffff);
});

for (const legacy of [true, false]) {
  const layout = legacy ? "legacy" : "modern";

  Deno.test(`VirtioSerial (${layout}) control handshake gives Linux a console port and a named port`, () => {
    const { d, con, named, ser } = rig(legacy, { named: true });
    fillCtrlRx(d, 8);
    sendCtrl(d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    let msgs = received(d, 0);
    assert.deepEqual(msgs.map((m) => [m.id, m.event, m.value]), [[0, VIRTIO_CONSOLE_PORT_ADD, 1], [
      1,
      VIRTIO_CONSOLE_PORT_ADD,
      1,
    ]]);
    sendCtrl(d, 0, VIRTIO_CONSOLE_PORT_READY, 1);
    msgs = received(d, 2);
    assert.deepEqual(msgs.map((m) => [m.id, m.event, m.value]), [[0, VIRTIO_CONSOLE_CONSOLE_PORT, 1], [
      0,
      VIRTIO_CONSOLE_PORT_OPEN,
      1,
    ]]);
    sendCtrl(d, 1, VIRTIO_CONSOLE_PORT_READY, 1);
    msgs = received(d, 4);
    assert.deepEqual(msgs.map((m) => [m.id, m.event]), [[1, VIRTIO_CONSOLE_PORT_NAME], [
      1,
      VIRTIO_CONSOLE_PORT_OPEN,
    ]]);
    assert.equal(new TextDecoder().decode(msgs[0].extra), "org.test.port\0");

    // Guest output on the console's transmit queue reaches the chardev.
    d.mem.write(0xc0000, new TextEncoder().encode("GUEST-INIT-OK\n"));
    d.addChain(1, [{ addr: 0xc0000, len: 14 }]);
    d.kick(1);
    assert.equal(con.text(), "GUEST-INIT-OK\n");
    assert.equal(d.used(1, 0).len, 0);

    // Host input waits until the guest opens the port and posts buffers.
    const rx = con.receiver!;
    assert.equal(rx.canReceive(), 0);
    sendCtrl(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
    assert.equal(ser.ports[0].guestConnected, true);
    assert.equal(rx.canReceive(), 0, "no receive buffers yet");
    d.addChain(0, [{ addr: 0xd0000, len: 4, write: true }]);
    d.addChain(0, [{ addr: 0xd1000, len: 64, write: true }]);
    d.kick(0);
    assert.ok(con.accepts > 0, "backend told to retry");
    assert.equal(rx.canReceive(), 4);
    rx.receive(new TextEncoder().encode("ls\n"));
    assert.equal(d.usedIdx(0), 1);
    assert.equal(d.used(0, 0).len, 3);
    assert.equal(new TextDecoder().decode(d.mem.read(0xd0000, 3)!), "ls\n");
    assert.equal(ser.ports[0].describe(), "port 0, guest on, host on, throttle off");
    assert.equal(named.out.length, 0);
  });

  Deno.test(`VirtioSerial (${layout}) holds control messages until control buffers arrive`, () => {
    const { d } = rig(legacy);
    sendCtrl(d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    assert.equal(d.usedIdx(2), 0);
    fillCtrlRx(d, 2);
    assert.deepEqual(received(d, 0).map((m) => [m.id, m.event]), [[0, VIRTIO_CONSOLE_PORT_ADD]]);
  });
}

Deno.test("VirtioSerial without MULTIPORT uses port 0 directly", () => {
  const { d, con, t } = rig(true, { multiport: false });
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4) & (1 << VIRTIO_CONSOLE_F_MULTIPORT), 0);
  d.addChain(0, [{ addr: 0xd0000, len: 16, write: true }]);
  d.kick(0);
  assert.equal(con.receiver!.canReceive(), 16);
  con.receiver!.receive(Uint8Array.of(0x41, 0x42));
  assert.equal(d.used(0, 0).len, 2);
  d.mem.write(0xc0000, Uint8Array.of(0x43));
  d.addChain(1, [{ addr: 0xc0000, len: 1 }]);
  d.kick(1);
  assert.deepEqual(con.out, [0x43]);
});

Deno.test("VirtioSerial emergency write sends one byte to port 0 once negotiated", () => {
  const { t, con } = rig(true);
  t.write(VIRTIO_MMIO_CONFIG + 8, 4, 0x21);
  assert.deepEqual(con.out, [0x21]);
  const { t: t2, con: con2 } = rig(true);
  t2.write(0x70, 4, 0); // reset: nothing negotiated
  t2.write(VIRTIO_MMIO_CONFIG + 8, 4, 0x21);
  assert.deepEqual(con2.out, []);
});

Deno.test("VirtioSerial resize reaches a ready console port", () => {
  const { d, ser } = rig(false);
  fillCtrlRx(d, 8);
  sendCtrl(d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
  sendCtrl(d, 0, VIRTIO_CONSOLE_PORT_READY, 1);
  const before = d.usedIdx(2);
  ser.resize(80, 25);
  const m = received(d, before);
  assert.equal(m.length, 1);
  assert.equal(m[0].event, VIRTIO_CONSOLE_RESIZE);
  assert.deepEqual([...m[0].extra], [25, 0, 80, 0]);
  assert.equal(d.t.read(VIRTIO_MMIO_CONFIG, 4), 0, "F_SIZE not offered: config cols/rows stay 0");
});

Deno.test("VirtioSerial addPort refuses taken, reserved and out-of-range numbers", () => {
  const ser = new VirtioSerial({ id: "s" });
  ser.addPort({ console: true, chardev: new FakeChar() });
  assert.throws(() => ser.addPort({ console: true, chardev: new FakeChar(), nr: 0 }), UserError);
  assert.throws(() => ser.addPort({ console: false, chardev: new FakeChar(), nr: 0 }), UserError);
  assert.throws(() => ser.addPort({ console: false, chardev: new FakeChar(), nr: 31 }), UserError);
  const p = ser.addPort({ console: false, chardev: new FakeChar(), name: "a" });
  assert.equal(p.nr, 1);
  assert.equal(p.typeName, "virtserialport");
  assert.throws(() => ser.addPort({ console: false, chardev: new FakeChar(), name: "a" }), UserError);
  const c2 = ser.addPort({ console: true, chardev: new FakeChar() });
  assert.equal(c2.nr, 2);
  assert.deepEqual(Object.keys(ser.propertyValues()).slice(0, 3), [
    "max_ports",
    "emergency-write",
    "indirect_desc",
  ]);
  assert.equal(
    ser.hostFeatures(false) & featureBit(VIRTIO_CONSOLE_F_MULTIPORT),
    featureBit(VIRTIO_CONSOLE_F_MULTIPORT),
  );
});

Deno.test("VirtioSerial survives random control traffic", () => {
  let s = 12345;
  const rnd = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const { d } = rig(true, { named: true });
  fillCtrlRx(d, 4);
  for (let i = 0; i < 500; i++) sendCtrl(d, rnd() % 40, rnd() % 9, rnd() & 1);
});
