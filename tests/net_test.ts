/**
 * Host network backends: tap (needs root and /dev/net/tun; the tap is moved into a network namespace this test
 * creates, and only addresses inside it are used) and the socket netdev over 127.0.0.1.
 */
import assert from "node:assert/strict";
import type { NetBackend, NetReceiver } from "../core/types.ts";
import { UserError } from "../core/types.ts";
import { netdevInfoLine, openNetdev } from "../core/host/netdev.ts";
import { NetSocketBackend, parseHostPort } from "../core/host/net_socket.ts";
import { TAP_VNET_HDR_LEN, TapBackend } from "../core/host/tap.ts";
import { TestDriver } from "../devices/virtio/_driver_test_util.ts";
import { VirtioMmio } from "../devices/virtio/mmio.ts";
import { VirtioNet } from "../devices/virtio/net.ts";
import { FakeMemory, RecordingIrq } from "./fakes.ts";

/** A receiver that collects frames and lets a test await the next one matching a predicate. */
class Collector implements NetReceiver {
  readonly frames: Uint8Array[] = [];
  room = true;
  #waiters: { pred: (f: Uint8Array) => boolean; res: (f: Uint8Array) => void }[] = [];
  canReceive(): boolean {
    return this.room;
  }
  receive(frame: Uint8Array): void {
    const f = frame.slice();
    this.frames.push(f);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(f)) return true;
      w.res(f);
      return false;
    });
  }
  /** The first frame (already seen or future) matching `pred`; rejects after `ms`. */
  next(pred: (f: Uint8Array) => boolean = () => true, ms = 5000): Promise<Uint8Array> {
    const have = this.frames.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error("timed out waiting for a frame")), ms);
      this.#waiters.push({ pred, res: (f) => (clearTimeout(t), res(f)) });
    });
  }
}

function frame(n: number, seed: number): Uint8Array {
  const f = new Uint8Array(n);
  for (let i = 0; i < n; i++) f[i] = (seed + i) & 0xff;
  return f;
}

function randHex(n: number): string {
  return [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------------------------------------- netdev

Deno.test("openNetdev checks -netdev user options with QEMU's one-line errors", () => {
  assert.throws(() => openNetdev({ id: "n0", type: "user", props: { net: "foo" } }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.equal(e.message, "Failed to parse netmask");
    return true;
  });
});

Deno.test("openNetdev validates socket and tap options", () => {
  assert.throws(() => openNetdev({ id: "s", type: "socket", props: {} }), UserError);
  assert.throws(() => openNetdev({ id: "s", type: "socket", props: { connect: "nohost" } }), UserError);
  assert.throws(() => openNetdev({ id: "s", type: "socket", props: { udp: "127.0.0.1:5" } }), /localaddr/);
  assert.throws(() => openNetdev({ id: "t", type: "tap", props: { vhost: "on" } }), /vhost/);
  assert.throws(() => openNetdev({ id: "t", type: "tap", props: { vnet_hdr: "maybe" } }), UserError);
  assert.throws(() => openNetdev({ id: "b", type: "bridge", props: {} }), /not compiled/);
  assert.deepEqual(parseHostPort(":1234"), { host: "", port: 1234 });
  assert.throws(() => parseHostPort("127.0.0.1:99999"), UserError);
});

// ------------------------------------------------------------------------------------------------- socket

Deno.test("socket netdevs exchange frames over TCP with QEMU's length framing", async () => {
  const a = NetSocketBackend.open({ listen: "127.0.0.1:0", onError: () => {} });
  const port = a.listenPort;
  assert.ok(port > 0);
  assert.equal(netdevInfoLine("s0", a), "s0: index=0,type=socket,");
  const b = NetSocketBackend.open({ connect: `127.0.0.1:${port}`, onError: () => {} });
  const ra = new Collector();
  const rb = new Collector();
  a.setReceiver(ra);
  b.setReceiver(rb);
  try {
    await b.ready;
    assert.equal(b.infoStr, `socket: connect to 127.0.0.1:${port}`);
    const big = frame(9000, 1);
    assert.equal(b.send(frame(60, 7)), true);
    assert.equal(b.send(big), true);
    assert.deepEqual(await ra.next((f) => f.length === 60), frame(60, 7));
    assert.deepEqual(await ra.next((f) => f.length === 9000), big);
    assert.match(a.infoStr, /^socket: connection from 127\.0\.0\.1:\d+$/);
    // Backpressure: while the receiver has no room nothing is delivered, and nothing is lost.
    rb.room = false;
    for (let i = 0; i < 50; i++) assert.equal(a.send(frame(100, i)), true);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(rb.frames.length, 0);
    rb.room = true;
    await rb.next(() => rb.frames.length === 50);
    rb.frames.forEach((f, i) => assert.deepEqual(f, frame(100, i)));
  } finally {
    b.close();
    a.close();
    await Promise.all([a.closed, b.closed]);
  }
});

Deno.test("socket netdevs exchange frames as UDP datagrams", async () => {
  const pa = 20000 + (crypto.getRandomValues(new Uint16Array(1))[0] % 20000);
  const pb = pa + 1;
  const a = NetSocketBackend.open({
    udp: `127.0.0.1:${pb}`,
    localaddr: `127.0.0.1:${pa}`,
    onError: () => {},
  });
  const b = NetSocketBackend.open({
    udp: `127.0.0.1:${pa}`,
    localaddr: `127.0.0.1:${pb}`,
    onError: () => {},
  });
  const ra = new Collector();
  const rb = new Collector();
  a.setReceiver(ra);
  b.setReceiver(rb);
  try {
    await Promise.all([a.ready, b.ready]);
    a.send(frame(1514, 3));
    b.send(frame(42, 9));
    assert.deepEqual(await rb.next(), frame(1514, 3));
    assert.deepEqual(await ra.next(), frame(42, 9));
    assert.equal(a.infoStr, `socket: udp=127.0.0.1:${pb}`);
  } finally {
    a.close();
    b.close();
    await Promise.all([a.closed, b.closed]);
  }
});

Deno.test("a socket listener drops frames while no peer is connected", async () => {
  const a = NetSocketBackend.open({ listen: "127.0.0.1:0", onError: () => {} });
  try {
    assert.equal(a.connected, false);
    assert.equal(a.send(frame(60, 0)), false);
    assert.equal(a.dropped, 1);
  } finally {
    a.close();
    await a.closed;
  }
});

// ---------------------------------------------------------------------------------------------------- tap

function run(cmd: string, ...args: string[]): { ok: boolean; err: string } {
  const o = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).outputSync();
  return { ok: o.success, err: new TextDecoder().decode(o.stderr).trim() };
}

function tapUnavailable(): string | null {
  if (Deno.uid() !== 0) return "tap tests need root";
  try {
    Deno.statSync("/dev/net/tun");
  } catch {
    return "no /dev/net/tun";
  }
  try {
    if (!run("ip", "-V").ok) return "no ip(8)";
  } catch {
    return "no ip(8)";
  }
  return null;
}

const NS_ADDR = [10, 213, 77, 1];
const PEER_ADDR = [10, 213, 77, 2];
const PEER_MAC = [0x02, 0x00, 0x00, 0x4d, 0x56, 0x54];

function ipChecksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i] << 8) | b[i + 1];
  if (b.length & 1) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** An ICMP echo request from PEER to NS (Ethernet frame). */
function echoRequest(dstMac: Uint8Array, id: number): Uint8Array {
  const f = new Uint8Array(14 + 20 + 8 + 16);
  f.set(dstMac, 0);
  f.set(PEER_MAC, 6);
  f[12] = 0x08;
  const ip = f.subarray(14, 34);
  ip.set([0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 1, 0, 0, ...PEER_ADDR, ...NS_ADDR]);
  const c = ipChecksum(ip);
  ip[10] = c >> 8;
  ip[11] = c & 0xff;
  const icmp = f.subarray(34);
  icmp.set([8, 0, 0, 0, id >> 8, id & 0xff, 0, 1]);
  for (let i = 8; i < icmp.length; i++) icmp[i] = i;
  const ic = ipChecksum(icmp);
  icmp[2] = ic >> 8;
  icmp[3] = ic & 0xff;
  return f;
}

function isEchoReply(eth: Uint8Array, id: number): boolean {
  return eth.length >= 42 && eth[12] === 0x08 && eth[13] === 0 && eth[14 + 9] === 1 && eth[34] === 0 &&
    ((eth[38] << 8) | eth[39]) === id && eth.subarray(30, 34).every((b, i) => b === PEER_ADDR[i]);
}

/** Open a tap, move it into a fresh namespace with NS_ADDR and a permanent neighbour PEER_ADDR, run `fn`. */
async function withTapNs(
  vnetHdr: boolean,
  fn: (tap: TapBackend, ns: string) => Promise<void>,
): Promise<void> {
  const ns = `mvt-${randHex(4)}`;
  const ifname = `mvt${randHex(4)}`;
  const tap = TapBackend.open({ ifname, script: "no", downscript: "no", vnetHdr });
  try {
    assert.equal(tap.ifname, ifname);
    assert.equal(tap.vnetHdr, vnetHdr);
    assert.equal(tap.infoStr, `ifname=${ifname},script=no,downscript=no`);
    const steps: string[][] = [
      ["netns", "add", ns],
      ["link", "set", ifname, "netns", ns],
      ["-n", ns, "link", "set", "lo", "up"],
      ["-n", ns, "addr", "add", `${NS_ADDR.join(".")}/24`, "dev", ifname],
      ["-n", ns, "link", "set", ifname, "address", "02:00:00:00:00:01", "up"],
      [
        "-n",
        ns,
        "neigh",
        "replace",
        PEER_ADDR.join("."),
        "lladdr",
        PEER_MAC.map((b) => b.toString(16)).join(":"),
        "dev",
        ifname,
        "nud",
        "permanent",
      ],
    ];
    for (const st of steps) {
      const r = run("ip", ...st);
      assert.ok(r.ok, `ip ${st.join(" ")}: ${r.err}`);
    }
    await fn(tap, ns);
  } finally {
    tap.close();
    await tap.stopped;
    run("ip", "netns", "del", ns);
  }
}

for (const vnetHdr of [false, true]) {
  Deno.test(`TapBackend exchanges frames with a namespace's stack (vnet_hdr=${vnetHdr ? "on" : "off"})`, async () => {
    const why = tapUnavailable();
    if (why !== null) {
      console.log(`SKIP: ${why}`);
      return;
    }
    await withTapNs(vnetHdr, async (tap) => {
      const rx = new Collector();
      tap.setReceiver(rx);
      const hdr = vnetHdr ? TAP_VNET_HDR_LEN : 0;
      const id = 0x4d56;
      const req = echoRequest(Uint8Array.of(2, 0, 0, 0, 0, 1), id);
      const out = new Uint8Array(hdr + req.length);
      out.set(req, hdr);
      assert.equal(tap.send(out), true);
      const reply = await rx.next((f) => isEchoReply(f.subarray(hdr), id));
      assert.deepEqual([...reply.subarray(hdr, hdr + 6)], PEER_MAC);
      if (vnetHdr) assert.equal(reply[1], 0, "no GSO without offloads");
    });
  });
}

/** TCP checksum over the pseudo header (valid frames sum to 0). */
function tcpChecksumOk(eth: Uint8Array): boolean {
  const ihl = (eth[14] & 0xf) * 4;
  const totLen = (eth[16] << 8) | eth[17];
  const seg = eth.subarray(14 + ihl, 14 + totLen);
  const pseudo = new Uint8Array(12 + seg.length);
  pseudo.set(eth.subarray(26, 34), 0);
  pseudo[9] = 6;
  pseudo[10] = seg.length >> 8;
  pseudo[11] = seg.length & 0xff;
  pseudo.set(seg, 12);
  return ipChecksum(pseudo) === 0;
}

for (const guestCsum of [false, true]) {
  Deno.test(`VirtioNet on a vnet_hdr tap gets a kernel TCP SYN (guest_csum=${guestCsum ? "on" : "off"})`, async () => {
    const why = tapUnavailable();
    if (why !== null) {
      console.log(`SKIP: ${why}`);
      return;
    }
    await withTapNs(true, async (tap, ns) => {
      const mem = new FakeMemory(0x200000);
      const t = new VirtioMmio({ id: "m", irq: new RecordingIrq(), mem, forceLegacy: true });
      const net = new VirtioNet({ id: "", backend: tap, mac: "02:00:00:4d:56:54" });
      t.plug(net);
      const d = new TestDriver(t, mem);
      d.init({
        queues: [0, 1, 2],
        size: 16,
        features: (f) => guestCsum ? f : f & ~0x786n, // drop GUEST_CSUM/TSO4/TSO6/ECN/UFO and CTRL_GUEST_OFFLOADS
      });
      for (let i = 0; i < 8; i++) d.addChain(0, [{ addr: 0x90000 + i * 0x1000, len: 4096, write: true }]);
      d.kick(0);
      const cmd = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          ns,
          "timeout",
          "3",
          "bash",
          "-c",
          `echo > /dev/tcp/${PEER_ADDR.join(".")}/80`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        let syn = null as Uint8Array | null;
        for (let i = 0; i < 1000 && syn === null; i++) {
          for (let n = 0; n < d.usedIdx(0); n++) {
            const u = d.used(0, n);
            const base = 0x90000 + u.id * 0x1000;
            const f = mem.read(base + 12, u.len - 12)!;
            if (f[12] === 0x08 && f[13] === 0 && f[23] === 6) syn = mem.read(base, u.len)!;
          }
          if (syn === null) await new Promise((r) => setTimeout(r, 5));
        }
        assert.ok(syn !== null, "no TCP SYN arrived");
        const flags = syn[0];
        if (guestCsum) {
          // The kernel leaves the checksum to the guest: NEEDS_CSUM with the TCP checksum offsets.
          assert.equal(flags & 1, 1);
          assert.equal(syn[6] | (syn[7] << 8), 34);
          assert.equal(syn[8] | (syn[9] << 8), 16);
        } else {
          assert.equal(flags & 1, 0);
          assert.ok(tcpChecksumOk(syn.subarray(12)), "TCP checksum completed");
        }
      } finally {
        try {
          cmd.kill("SIGKILL");
        } catch {
          // already exited
        }
        await cmd.status;
      }
    });
  });
}

Deno.test("TapBackend reports a missing device or a bad fd in QEMU's words", () => {
  const why = tapUnavailable();
  if (why !== null) {
    console.log(`SKIP: ${why}`);
    return;
  }
  assert.throws(() => TapBackend.open({ fd: 0 }), /fd=0 is not a tap device/);
  assert.throws(() => TapBackend.open({ ifname: "x".repeat(20), script: "no" }), /too long/);
});

// ------------------------------------------------------------------------------------------ device + backend

/** A virtio-net device on a legacy transport, driven at register level, attached to `backend`. */
function nic(backend: NetBackend, index: number) {
  const mem = new FakeMemory(0x200000);
  const t = new VirtioMmio({ id: `virtio-mmio@${index}`, irq: new RecordingIrq(), mem, forceLegacy: true });
  const net = VirtioNet.fromProps({ id: "", netdev: backend, netdevName: `n${index}`, props: {}, index });
  t.plug(net);
  const d = new TestDriver(t, mem);
  d.init({ queues: [0, 1, 2], size: 16 });
  return { mem, d, net };
}

Deno.test("two virtio-net devices share a wire through socket netdevs", async () => {
  const a = NetSocketBackend.open({ listen: "127.0.0.1:0", onError: () => {} });
  const b = NetSocketBackend.open({ connect: `127.0.0.1:${a.listenPort}`, onError: () => {} });
  const na = nic(a, 0);
  const nb = nic(b, 1);
  try {
    await b.ready;
    assert.equal(na.net.mac, "52:54:00:12:34:56");
    assert.equal(nb.net.mac, "52:54:00:12:34:57");
    for (let i = 0; i < 4; i++) nb.d.addChain(0, [{ addr: 0x90000 + i * 0x1000, len: 2048, write: true }]);
    nb.d.kick(0);
    // Guest A sends a broadcast frame: 12-byte header (legacy + MRG_RXBUF), then the frame.
    const eth = new Uint8Array(64).fill(0xff, 0, 6);
    eth.set([0x52, 0x54, 0, 0x12, 0x34, 0x56], 6);
    eth[12] = 0x08;
    eth[13] = 0x06;
    for (let i = 14; i < 64; i++) eth[i] = i;
    na.mem.write(0x80000, new Uint8Array(12));
    na.mem.write(0x80000 + 12, eth);
    na.d.addChain(1, [{ addr: 0x80000, len: 12 + eth.length }]);
    na.d.kick(1);
    for (let i = 0; i < 500 && nb.d.usedIdx(0) === 0; i++) await new Promise((r) => setTimeout(r, 2));
    assert.equal(nb.d.usedIdx(0), 1);
    assert.equal(nb.d.used(0, 0).len, 12 + eth.length);
    assert.deepEqual(nb.mem.read(0x90000 + 12, eth.length), eth);
    assert.equal(nb.mem.readU16(0x90000 + 10), 1);
  } finally {
    a.close();
    b.close();
    await Promise.all([a.closed, b.closed]);
  }
});
