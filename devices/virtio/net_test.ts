import assert from "node:assert/strict";
import { type NetBackend, type NetReceiver, UserError } from "../../core/types.ts";
import { FakeMemory, RecordingIrq } from "../../tests/fakes.ts";
import { TestDriver } from "./_driver_test_util.ts";
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT } from "./queue.ts";
import { featureBit, VIRTIO_F_VERSION_1 } from "./device.ts";
import {
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_INT_CONFIG,
  VirtioMmio,
} from "./mmio.ts";
import {
  completeChecksum,
  type NetOffloads,
  VIRTIO_NET_CTRL_GUEST_OFFLOADS,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_RX_BACKLOG,
  VirtioNet,
  type VirtioNetOptions,
} from "./net.ts";

/** A NetBackend that records sent frames and lets the test inject received ones. */
class FakeNet implements NetBackend {
  readonly sent: Uint8Array[] = [];
  receiver: NetReceiver | null = null;
  offloads: NetOffloads | null = null;
  readonly netdevType = "tap";
  readonly infoStr = "ifname=tap0,script=no,downscript=no";
  constructor(readonly vnetHdr = false, readonly hasUfo = false) {}
  send(frame: Uint8Array): boolean {
    this.sent.push(frame.slice());
    return true;
  }
  setReceiver(r: NetReceiver | null): void {
    this.receiver = r;
  }
  setOffloads(o: NetOffloads): void {
    this.offloads = o;
  }
  close(): void {}
  /** Deliver like a backend does: only when the device can take it. */
  inject(frame: Uint8Array): boolean {
    if (!this.receiver?.canReceive()) return false;
    this.receiver.receive(frame);
    return true;
  }
}

const GUEST_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/** An Ethernet frame to `dst` with `n` payload bytes counting from `seed`. */
function eth(n: number, seed = 0, dst = GUEST_MAC): Uint8Array {
  const f = new Uint8Array(14 + n);
  f.set(dst, 0);
  f.set([0x02, 0, 0, 0, 0, 1], 6);
  f[12] = 0x08;
  for (let i = 0; i < n; i++) f[14 + i] = (seed + i) & 0xff;
  return f;
}

interface RigOpts {
  legacy: boolean;
  vnetHdr?: boolean;
  features?: (offered: bigint) => bigint;
  net?: Partial<VirtioNetOptions>;
}

function rig(o: RigOpts) {
  const mem = new FakeMemory(0x200000);
  const irq = new RecordingIrq();
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq, mem, forceLegacy: o.legacy });
  const be = new FakeNet(o.vnetHdr ?? false, o.vnetHdr ?? false);
  const net = new VirtioNet({ id: "", backend: be, netdevName: "net0", ...o.net });
  t.plug(net);
  const d = new TestDriver(t, mem);
  const queues = net.queueSizes.length === 3 ? [0, 1, 2] : [0, 1];
  const f = d.init({ queues, size: 16, ...(o.features ? { features: o.features } : {}) });
  return { mem, irq, t, d, be, net, f };
}

const noMrg = (f: bigint) => f & ~featureBit(VIRTIO_NET_F_MRG_RXBUF);

Deno.test("VirtioNet offers QEMU's legacy feature word with a vnet-header backend", () => {
  const mem = new FakeMemory(0x10000);
  const t = new VirtioMmio({ id: "m", irq: new RecordingIrq(), mem, forceLegacy: true });
  t.plug(new VirtioNet({ id: "", backend: new FakeNet(true, true) }));
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_ID, 4), 1);
  // The capture's tcg-legacy-blk-net `xp /8xw 0xfeb00c00` shows 0x39bfffe7.
  assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 0x39bfffe7);
});

Deno.test("VirtioNet offers no offloads without a vnet header", () => {
  const n = new VirtioNet({ id: "", backend: new FakeNet(false) });
  const f = n.hostFeatures(false);
  for (const b of [0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14]) assert.equal(f & featureBit(b), 0n, `bit ${b}`);
  for (const b of [5, 15, 16, 17, 18, 23]) assert.notEqual(f & featureBit(b), 0n, `bit ${b}`);
});

Deno.test("VirtioNet config space holds MAC and link status", () => {
  const { t } = rig({ legacy: true });
  const b = [0, 1, 2, 3, 4, 5].map((i) => t.read(VIRTIO_MMIO_CONFIG + i, 1));
  assert.deepEqual(b, GUEST_MAC);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG + 6, 2), 1);
});

Deno.test("VirtioNet set_link toggles status with a config interrupt", () => {
  const { t, net, irq, d } = rig({ legacy: false });
  net.setLink(false);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG + 6, 2), 0);
  assert.equal(irq.level, true);
  assert.equal(d.isr() & VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_CONFIG);
  d.ack();
  net.setLink(true);
  assert.equal(t.read(VIRTIO_MMIO_CONFIG + 6, 2), 1);
});

for (
  const c of [
    { name: "legacy without MRG_RXBUF", legacy: true, features: noMrg, hdr: 10 },
    { name: "legacy with MRG_RXBUF", legacy: true, features: undefined, hdr: 12 },
    { name: "VERSION_1 without MRG_RXBUF", legacy: false, features: noMrg, hdr: 12 },
  ]
) {
  Deno.test(`VirtioNet uses a ${c.hdr}-byte header (${c.name})`, () => {
    const { d, be, net, mem, f } = rig({ legacy: c.legacy, ...(c.features ? { features: c.features } : {}) });
    assert.equal((f & featureBit(VIRTIO_F_VERSION_1)) !== 0n, !c.legacy);
    assert.equal(net.guestHdrLen, c.hdr);
    // TX: header then frame split over two descriptors.
    const frame = eth(100, 7);
    mem.write(0x80000, new Uint8Array(c.hdr));
    mem.write(0x81000, frame);
    d.addChain(1, [{ addr: 0x80000, len: c.hdr }, { addr: 0x81000, len: frame.length }]);
    d.kick(1);
    assert.equal(d.usedIdx(1), 1);
    assert.deepEqual(be.sent, [frame]);
    // RX: the frame lands after a zeroed header of the same size.
    mem.write(0x90000, new Uint8Array(2048).fill(0xaa));
    d.addChain(0, [{ addr: 0x90000, len: 2048, write: true }]);
    d.kick(0);
    const rx = eth(60, 3);
    assert.equal(be.inject(rx), true);
    assert.equal(d.usedIdx(0), 1);
    assert.equal(d.used(0, 0).len, c.hdr + rx.length);
    const hdr = mem.read(0x90000, c.hdr)!;
    const expect = new Uint8Array(c.hdr);
    if (c.hdr === 12) expect[10] = 1; // num_buffers
    assert.deepEqual(hdr, expect);
    assert.deepEqual(mem.read(0x90000 + c.hdr, rx.length), rx);
  });
}

Deno.test("VirtioNet merges RX buffers for a frame larger than one buffer", () => {
  const { d, be, mem } = rig({ legacy: true });
  for (let i = 0; i < 3; i++) d.addChain(0, [{ addr: 0x90000 + i * 0x1000, len: 1000, write: true }]);
  d.kick(0);
  const rx = eth(1500, 1);
  be.inject(rx);
  assert.equal(d.usedIdx(0), 2);
  assert.equal(d.used(0, 0).len, 1000);
  assert.equal(d.used(0, 1).len, 12 + rx.length - 1000);
  assert.equal(mem.readU16(0x90000 + 10), 2);
  const got = new Uint8Array(rx.length);
  got.set(mem.read(0x90000 + 12, 988)!, 0);
  got.set(mem.read(0x91000, rx.length - 988)!, 988);
  assert.deepEqual(got, rx);
});

Deno.test("VirtioNet holds a burst while the RX ring is empty and delivers it on kick", () => {
  const { d, be, mem, irq } = rig({ legacy: true });
  for (let i = 0; i < 5; i++) assert.equal(be.inject(eth(50, i)), true);
  assert.equal(irq.level, false);
  for (let i = 0; i < 3; i++) d.addChain(0, [{ addr: 0x90000 + i * 0x1000, len: 2048, write: true }]);
  d.kick(0);
  assert.equal(d.usedIdx(0), 3);
  assert.equal(irq.level, true);
  assert.equal(mem.read(0x90000 + 12 + 14, 1)![0], 0);
  assert.equal(mem.read(0x92000 + 12 + 14, 1)![0], 2);
  for (let i = 3; i < 6; i++) d.addChain(0, [{ addr: 0x90000 + i * 0x1000, len: 2048, write: true }]);
  d.kick(0);
  assert.equal(d.usedIdx(0), 5);
  assert.equal(mem.read(0x94000 + 12 + 14, 1)![0], 4);
  // Nothing else waits: the sixth buffer stays available for the next frame.
  be.inject(eth(50, 9));
  assert.equal(d.usedIdx(0), 6);
});

Deno.test("VirtioNet refuses frames once the backlog is full, dropping none it accepted", () => {
  const { d, be, net } = rig({ legacy: true });
  let accepted = 0;
  while (be.inject(eth(20, accepted))) accepted++;
  assert.equal(accepted, VIRTIO_NET_RX_BACKLOG);
  assert.equal(net.stats.rxDropped, 0);
  d.addChain(0, [{ addr: 0x90000, len: 2048, write: true }]);
  d.kick(0);
  assert.equal(net.canReceive(), true);
  assert.equal(net.stats.backlog, VIRTIO_NET_RX_BACKLOG - 1);
});

Deno.test("VirtioNet canReceive is false before DRIVER_OK", () => {
  const mem = new FakeMemory(0x100000);
  const t = new VirtioMmio({ id: "m", irq: new RecordingIrq(), mem, forceLegacy: true });
  const be = new FakeNet();
  t.plug(new VirtioNet({ id: "", backend: be }));
  assert.equal(be.receiver?.canReceive(), false);
});

Deno.test("VirtioNet translates headers for a vnet-header backend", () => {
  const { d, be, mem } = rig({ legacy: true, vnetHdr: true, features: noMrg });
  assert.notEqual(be.offloads, null);
  assert.equal(be.offloads!.csum, true);
  // TX: 10-byte guest header → 12-byte backend header.
  const hdr = Uint8Array.of(1, 0, 0, 0, 0, 0, 34, 0, 16, 0);
  const frame = eth(40);
  mem.write(0x80000, hdr);
  mem.write(0x80000 + 10, frame);
  d.addChain(1, [{ addr: 0x80000, len: 10 + frame.length }]);
  d.kick(1);
  assert.equal(be.sent[0].length, 12 + frame.length);
  assert.deepEqual(be.sent[0].subarray(0, 10), hdr);
  assert.deepEqual(be.sent[0].subarray(12), frame);
  // RX: 12-byte backend header → 10-byte guest header.
  d.addChain(0, [{ addr: 0x90000, len: 2048, write: true }]);
  const rx = new Uint8Array(12 + 60);
  rx[0] = 2; // DATA_VALID
  rx.set(eth(46), 12);
  be.inject(rx);
  assert.equal(d.used(0, 0).len, 10 + 60);
  assert.equal(mem.read(0x90000, 1)![0], 2);
  assert.deepEqual(mem.read(0x90000 + 10, 60), rx.subarray(12));
});

Deno.test("VirtioNet completes checksums and drops GSO the guest did not accept", () => {
  const { d, be, mem, net } = rig({
    legacy: true,
    vnetHdr: true,
    features: (f) => f & ~featureBit(VIRTIO_NET_F_GUEST_CSUM) & ~featureBit(VIRTIO_NET_F_GUEST_TSO4),
  });
  assert.equal(be.offloads!.csum, false);
  d.addChain(0, [{ addr: 0x90000, len: 2048, write: true }]);
  const rx = new Uint8Array(12 + 64);
  rx[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  rx[6] = 34; // csum_start
  rx[8] = 16; // csum_offset
  rx.set(eth(50, 5), 12);
  rx[12 + 34 + 16] = 0;
  rx[12 + 34 + 17] = 0;
  be.inject(rx);
  assert.equal(mem.read(0x90000, 1)![0], 0);
  const pkt = mem.read(0x90000 + 12, 64)!;
  // Summing the covered range including the checksum gives the one's-complement zero.
  let s = 0;
  for (let i = 34; i < 64; i += 2) s += (pkt[i] << 8) | (pkt[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  assert.equal(s, 0xffff);
  const gso = new Uint8Array(12 + 64);
  gso[1] = 1; // TCPV4
  gso.set(eth(50), 12);
  const before = net.stats.rxDropped;
  be.inject(gso);
  assert.equal(net.stats.rxDropped, before + 1);
  assert.equal(d.usedIdx(0), 1);
});

Deno.test("completeChecksum handles odd lengths and bad offsets", () => {
  const f = Uint8Array.of(0, 0, 0x12, 0x34, 0x56);
  assert.equal(completeChecksum(f, 0, 0), true);
  assert.equal((f[0] << 8) | f[1], ~(0x1234 + 0x5600) & 0xffff);
  assert.equal(completeChecksum(f, 4, 2), false);
});

function ctrl(d: TestDriver, mem: FakeMemory, at: number, bytes: number[]): number {
  mem.write(at, Uint8Array.from(bytes));
  mem.write(at + 0x800, Uint8Array.of(0xee));
  d.addChain(2, [{ addr: at, len: bytes.length }, { addr: at + 0x800, len: 1, write: true }]);
  d.kick(2);
  return mem.read(at + 0x800, 1)![0];
}

Deno.test("VirtioNet control queue sets RX mode and MAC and filters unicast", () => {
  const { d, be, mem, net } = rig({ legacy: true });
  assert.ok(net.queueSizes.length === 3);
  const other = [0x02, 9, 9, 9, 9, 9];
  d.addChain(0, [{ addr: 0x90000, len: 2048, write: true }]);
  be.inject(eth(20, 0, other));
  assert.equal(d.usedIdx(0), 1, "promiscuous after reset");
  assert.equal(ctrl(d, mem, 0xa0000, [VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, 0]), 0);
  d.addChain(0, [{ addr: 0x91000, len: 2048, write: true }]);
  be.inject(eth(20, 0, other));
  assert.equal(d.usedIdx(0), 1, "foreign unicast filtered");
  be.inject(eth(20, 0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
  assert.equal(d.usedIdx(0), 2, "broadcast passes");
  assert.equal(ctrl(d, mem, 0xa1000, [VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, ...other]), 0);
  assert.equal(net.mac, "02:09:09:09:09:09");
  d.addChain(0, [{ addr: 0x92000, len: 2048, write: true }]);
  be.inject(eth(20, 0, other));
  assert.equal(d.usedIdx(0), 3, "new MAC accepted");
  assert.equal(ctrl(d, mem, 0xa2000, [9, 9]), 1, "unknown class → ERR");
  assert.equal(d.usedIdx(2), 3);
});

Deno.test("VirtioNet without ctrl_vq has two queues and no ctrl features", () => {
  const n = new VirtioNet({ id: "", backend: new FakeNet(), features: { ctrl_vq: false } });
  assert.equal(n.queueSizes.length, 2);
  assert.equal(n.hostFeatures(false) & featureBit(VIRTIO_NET_F_CTRL_VQ), 0n);
  assert.equal(n.hostFeatures(false) & featureBit(18), 0n);
});

Deno.test("VirtioNet legacy driver sets the MAC through config space", () => {
  const { t, net } = rig({ legacy: true, features: (f) => f & ~featureBit(23) });
  t.write(VIRTIO_MMIO_CONFIG + 5, 1, 0x99);
  assert.equal(net.mac, "52:54:00:12:34:99");
});

Deno.test("VirtioNet.defaultMac counts NICs from 52:54:00:12:34:56", () => {
  assert.equal(VirtioNet.defaultMac(0), "52:54:00:12:34:56");
  assert.equal(VirtioNet.defaultMac(1), "52:54:00:12:34:57");
});

Deno.test("VirtioNet info network and qtree match QEMU's format", () => {
  const n = VirtioNet.fromProps({
    id: "",
    netdev: new FakeNet(true),
    netdevName: "net0",
    props: {},
    index: 0,
  });
  assert.equal(
    n.infoNetwork(),
    "virtio-net-device.0: index=0,type=nic,model=virtio-net-device,macaddr=52:54:00:12:34:56\n" +
      " \\ net0: index=0,type=tap,ifname=tap0,script=no,downscript=no\n",
  );
  const v = n.propertyValues();
  assert.deepEqual(Object.keys(v), VirtioNet.PROPS.map((p) => p.name));
  assert.equal(v.mac, "52:54:00:12:34:56");
  assert.equal(v.netdev, "net0");
  assert.equal(v.rx_queue_size, 256);
});

Deno.test("VirtioNet.fromProps validates properties", () => {
  const mk = (props: Record<string, string>) =>
    VirtioNet.fromProps({ id: "", netdev: new FakeNet(), netdevName: "n", props, index: 0 });
  assert.throws(() => mk({ mac: "zz" }), UserError);
  assert.throws(() => mk({ csum: "maybe" }), UserError);
  assert.throws(() => mk({ rx_queue_size: "100" }), UserError);
  assert.equal(mk({ mac: "02:00:00:00:00:01" }).mac, "02:00:00:00:00:01");
  assert.equal(mk({ host_mtu: "1400" }).configSize, 12);
});

Deno.test("VirtioNet saves and restores its state", () => {
  const { d, be, mem, net } = rig({ legacy: true });
  ctrl(d, mem, 0xa0000, [VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, 0]);
  // A mergeable frame that does not fit holds the one buffer popped so far.
  d.addChain(0, [{ addr: 0x90000, len: 100, write: true }]);
  be.inject(eth(500));
  const s = net.saveState();
  assert.equal((s.held as unknown[]).length, 1);
  const n2 = new VirtioNet({ id: "", backend: new FakeNet() });
  n2.loadState(structuredClone(s));
  assert.deepEqual(n2.saveState(), s);
  assert.throws(() => n2.loadState({ ...s, mac: "nope" }));
});

Deno.test("VirtioNet fails the device on a TX chain shorter than the header", () => {
  const { d, mem, be } = rig({ legacy: true });
  mem.write(0x80000, new Uint8Array(4));
  d.addChain(1, [{ addr: 0x80000, len: 4 }]);
  d.kick(1);
  assert.equal(be.sent.length, 0);
  assert.equal(d.t.read(0x70, 4) & 0x40, 0x40);
});

Deno.test("VirtioNet sends a frame from an indirect descriptor table", () => {
  const { d, be, mem } = rig({ legacy: true });
  const frame = eth(80, 4);
  mem.write(0x80000, new Uint8Array(12));
  mem.write(0x81000, frame);
  // Indirect table at 0x82000: header, then frame.
  mem.writeU64(0x82000, 0x80000);
  mem.writeU32(0x82008, 12);
  mem.writeU16(0x8200c, VRING_DESC_F_NEXT);
  mem.writeU16(0x8200e, 1);
  mem.writeU64(0x82010, 0x81000);
  mem.writeU32(0x82018, frame.length);
  mem.writeU16(0x8201c, 0);
  d.addChain(1, [{ addr: 0x82000, len: 32, flags: VRING_DESC_F_INDIRECT }]);
  d.kick(1);
  assert.deepEqual(be.sent, [frame]);
});

Deno.test("VirtioNet applies GUEST_OFFLOADS_SET from the control queue", () => {
  const { d, be, mem } = rig({ legacy: true, vnetHdr: true });
  assert.equal(be.offloads!.tso4, true);
  const csumOnly = [1 << VIRTIO_NET_F_GUEST_CSUM, 0, 0, 0, 0, 0, 0, 0];
  assert.equal(ctrl(d, mem, 0xa0000, [VIRTIO_NET_CTRL_GUEST_OFFLOADS, 0, ...csumOnly]), 0);
  assert.deepEqual(be.offloads, { csum: true, tso4: false, tso6: false, ecn: false, ufo: false });
  // Asking for an offload the guest never negotiated is refused.
  assert.equal(ctrl(d, mem, 0xa1000, [VIRTIO_NET_CTRL_GUEST_OFFLOADS, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 1);
});
