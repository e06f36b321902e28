import assert from "node:assert/strict";
import { FakeMemory, RecordingIrq } from "../../tests/fakes.ts";
import type { VsockBackend, VsockReceiver } from "../../core/vsock.ts";
import { TestDriver } from "./_driver_test_util.ts";
import { VirtioMmio } from "./mmio.ts";
import { VirtioVsock, VSOCK_HDR_SIZE, VSOCK_OP } from "./vsock.ts";

const CID = 3;

/** Records what the device asks of the host. */
class FakeBackend implements VsockBackend {
  r: VsockReceiver | null = null;
  log: string[] = [];
  sent = new Map<number, number[]>();
  #next = 1;
  setReceiver(r: VsockReceiver | null) {
    this.r = r;
  }
  connect(port: number) {
    const id = this.#next++;
    this.log.push(`connect ${port} -> ${id}`);
    return id;
  }
  accepted(conn: number, hostPort: number) {
    this.log.push(`accepted ${conn} ${hostPort}`);
  }
  send(conn: number, bytes: Uint8Array) {
    const l = this.sent.get(conn) ?? [];
    l.push(...bytes);
    this.sent.set(conn, l);
  }
  shutdownWrite(conn: number) {
    this.log.push(`shutwr ${conn}`);
  }
  close(conn: number) {
    this.log.push(`close ${conn}`);
  }
  resume(conn: number) {
    this.log.push(`resume ${conn}`);
  }
  shutdown() {}
}

interface Hdr {
  srcCid: number;
  dstCid: number;
  srcPort: number;
  dstPort: number;
  len: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

function rig() {
  const mem = new FakeMemory(0x200000);
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq: new RecordingIrq(), mem, forceLegacy: true });
  const be = new FakeBackend();
  const dev = new VirtioVsock({ id: "vsock0", guestCid: CID, udsPath: "/nonexistent", backend: be });
  t.plug(dev);
  const d = new TestDriver(t, mem);
  d.init({ queues: [0, 1, 2], size: 64 });
  let rxAt = 0x100000;
  let rxSeen = 0;
  const addRx = (n = 8) => {
    for (let i = 0; i < n; i++) {
      d.addChain(0, [{ addr: rxAt, len: VSOCK_HDR_SIZE, write: true }, {
        addr: rxAt + 0x100,
        len: 4096,
        write: true,
      }]);
      rxAt += 0x2000;
    }
    d.kick(0);
  };
  let txAt = 0x180000;
  const send = (h: Partial<Hdr>, payload = new Uint8Array(0)) => {
    const b = new Uint8Array(VSOCK_HDR_SIZE);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(0, BigInt(h.srcCid ?? CID), true);
    dv.setBigUint64(8, BigInt(h.dstCid ?? 2), true);
    dv.setUint32(16, h.srcPort ?? 0, true);
    dv.setUint32(20, h.dstPort ?? 0, true);
    dv.setUint32(24, payload.length, true);
    dv.setUint16(28, 1, true);
    dv.setUint16(30, h.op ?? 0, true);
    dv.setUint32(32, h.flags ?? 0, true);
    dv.setUint32(36, h.bufAlloc ?? 65536, true);
    dv.setUint32(40, h.fwdCnt ?? 0, true);
    mem.write(txAt, b);
    mem.write(txAt + VSOCK_HDR_SIZE, payload);
    d.addChain(1, [{ addr: txAt, len: VSOCK_HDR_SIZE + payload.length }]);
    txAt += 0x1000;
    if (txAt > 0x1f0000) txAt = 0x180000;
    d.kick(1);
  };
  /** Packets the device put in rx since the last call. */
  const received = () => {
    const out: (Hdr & { data: Uint8Array })[] = [];
    while (rxSeen < d.usedIdx(0)) {
      const u = d.used(0, rxSeen++);
      const base = 0x100000 + u.id / 2 * 0x2000;
      const hb = mem.read(base, VSOCK_HDR_SIZE)!;
      const dv = new DataView(hb.buffer, hb.byteOffset);
      const len = dv.getUint32(24, true);
      out.push({
        srcCid: Number(dv.getBigUint64(0, true)),
        dstCid: Number(dv.getBigUint64(8, true)),
        srcPort: dv.getUint32(16, true),
        dstPort: dv.getUint32(20, true),
        len,
        op: dv.getUint16(30, true),
        flags: dv.getUint32(32, true),
        bufAlloc: dv.getUint32(36, true),
        fwdCnt: dv.getUint32(40, true),
        data: mem.read(base + 0x100, len)!,
      });
    }
    return out;
  };
  return { d, dev, be, addRx, send, received };
}

Deno.test("VirtioVsock: guest connect to a host port, data both ways, credit respected", () => {
  const { be, addRx, send, received } = rig();
  addRx(16);
  send({ srcPort: 5000, dstPort: 1234, op: VSOCK_OP.REQUEST, bufAlloc: 8192 });
  assert.deepEqual(be.log, ["connect 1234 -> 1"]);
  be.r!.connected(1);
  const resp = received();
  assert.equal(resp.length, 1);
  assert.equal(resp[0].op, VSOCK_OP.RESPONSE);
  assert.deepEqual([resp[0].srcCid, resp[0].dstCid, resp[0].srcPort, resp[0].dstPort], [2, CID, 1234, 5000]);
  // guest → host
  send({ srcPort: 5000, dstPort: 1234, op: VSOCK_OP.RW, bufAlloc: 8192 }, new TextEncoder().encode("ping"));
  assert.equal(new TextDecoder().decode(new Uint8Array(be.sent.get(1)!)), "ping");
  // host → guest: 20000 bytes, but the guest advertised 8192 of buffer
  const big = new Uint8Array(20000).map((_, i) => i & 0xff);
  be.r!.data(1, big);
  let got = received();
  assert.equal(got.reduce((n, p) => n + p.len, 0), 8192);
  assert.ok(got.every((p) => p.op === VSOCK_OP.RW));
  // guest consumed it: credit update lets the rest through
  send({ srcPort: 5000, dstPort: 1234, op: VSOCK_OP.CREDIT_UPDATE, bufAlloc: 8192, fwdCnt: 8192 });
  addRx(16);
  send({ srcPort: 5000, dstPort: 1234, op: VSOCK_OP.CREDIT_UPDATE, bufAlloc: 8192, fwdCnt: 16384 });
  got = [...got, ...received()];
  const all = got.flatMap((p) => [...p.data]);
  assert.equal(all.length, 20000);
  assert.deepEqual(all.slice(8190, 8200), [...big.subarray(8190, 8200)]);
  // host EOF → SHUTDOWN(SEND); the guest may still write, then closes (SHUTDOWN both) and gets RST
  be.r!.closed(1, false);
  const sd = received();
  assert.equal(sd[sd.length - 1].op, VSOCK_OP.SHUTDOWN);
  assert.equal(sd[sd.length - 1].flags, 2);
  send({ srcPort: 5000, dstPort: 1234, op: VSOCK_OP.RW, bufAlloc: 8192 }, new TextEncoder().encode("!"));
  assert.equal(new TextDecoder().decode(new Uint8Array(be.sent.get(1)!)), "ping!");
  send({ srcPort: 5000, dstPort: 1234, op: VSOCK_OP.SHUTDOWN, flags: 3 });
  assert.equal(received()[0].op, VSOCK_OP.RST);
  assert.ok(be.log.includes("close 1"));
});

Deno.test("VirtioVsock: RST for unknown connections and refused ports", () => {
  const { be, addRx, send, received, dev } = rig();
  addRx();
  send({ srcPort: 7, dstPort: 9, op: VSOCK_OP.RW }, new Uint8Array([1]));
  let p = received();
  assert.equal(p.length, 1);
  assert.equal(p[0].op, VSOCK_OP.RST);
  assert.deepEqual([p[0].srcPort, p[0].dstPort], [9, 7]);
  send({ srcPort: 8, dstPort: 99, op: VSOCK_OP.REQUEST });
  be.r!.refused(1);
  p = received();
  assert.equal(p[0].op, VSOCK_OP.RST);
  assert.equal(dev.connections, 0);
  // Packets from another CID or to a non-host CID are dropped silently.
  send({ srcCid: 77, srcPort: 1, dstPort: 2, op: VSOCK_OP.REQUEST });
  send({ dstCid: 5, srcPort: 1, dstPort: 2, op: VSOCK_OP.REQUEST });
  assert.equal(received().length, 0);
});

Deno.test("VirtioVsock: host-initiated connection (CONNECT port) and a peer that vanishes", () => {
  const { be, addRx, send, received, dev } = rig();
  addRx();
  be.r!.incoming(10, 52);
  const req = received();
  assert.equal(req[0].op, VSOCK_OP.REQUEST);
  assert.equal(req[0].dstPort, 52);
  const local = req[0].srcPort;
  assert.equal(local, 1 << 30);
  send({ srcPort: 52, dstPort: local, op: VSOCK_OP.RESPONSE, bufAlloc: 65536 });
  assert.ok(be.log.includes(`accepted 10 ${local}`));
  be.r!.data(10, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...received()[0].data], [1, 2, 3]);
  // The host peer dies: the guest gets RST and the connection is gone.
  be.r!.closed(10, true);
  assert.equal(received()[0].op, VSOCK_OP.RST);
  assert.equal(dev.connections, 0);
  // Many connections at once.
  for (let i = 0; i < 20; i++) be.r!.incoming(100 + i, 60);
  addRx(24);
  const reqs = received().filter((x) => x.op === VSOCK_OP.REQUEST);
  assert.equal(reqs.length, 20);
  assert.equal(new Set(reqs.map((x) => x.srcPort)).size, 20);
});
