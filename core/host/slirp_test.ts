/**
 * `-netdev user` without a guest: option parsing against QEMU 7.2's messages (captured from
 * qemu-system-x86_64 7.2+dfsg-7+deb12u18), the SlirpConfig/SlirpCb layouts against <slirp/libslirp.h> (gcc),
 * the DNS answerer, and a live libslirp stack driven with hand-built frames: ARP, ICMP to the gateway, a
 * hostfwd listener on 127.0.0.1 whose connection reaches the "guest" as a SYN, the bounded queue under a
 * flood, and sockets closed at close(). Only 127.0.0.1 and addresses inside 10.0.2.0/24 are used.
 * Without libslirp0 the live part prints one `SKIP:` line.
 */
import assert from "node:assert/strict";
import type { NetReceiver } from "../types.ts";
import { UserError } from "../types.ts";
import { configVersionFor, encodeSlirpConfig, SLIRP_CB, SLIRP_CONFIG } from "./_slirp_ffi.ts";
import { buildDnsReply, parseDnsQuery } from "./_slirp_dns.ts";
import { LIBSLIRP_MISSING, SlirpBackend, TO_GUEST_MAX_BYTES } from "./slirp.ts";
import { inetAton, parseGuestFwd, parseHostFwd, parseHostFwdKey, parseSlirpOptions } from "./slirp_config.ts";

const GUEST_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const GUEST_IP = [10, 0, 2, 15];
const GW_IP = [10, 0, 2, 2];
const DNS_IP = [10, 0, 2, 3];

function libslirpPresent(): boolean {
  try {
    Deno.dlopen("libslirp.so.0", { slirp_version_string: { parameters: [], result: "pointer" } }).close();
    return true;
  } catch {
    return false;
  }
}
const HAVE_LIB = libslirpPresent();
if (!HAVE_LIB) {
  console.log("SKIP: libslirp.so.0 not found (apt-get install libslirp0): live slirp tests not run");
}

// ------------------------------------------------------------------------------------------------ options

/** [options, QEMU 7.2's message] as qemu-system-x86_64 -netdev user,id=n,OPTIONS printed them. */
const QEMU_ERRORS: [Record<string, string>, string][] = [
  [{ net: "foo" }, "Failed to parse netmask"],
  [{ net: "10.0.2.0/3" }, "Invalid netmask provided (must be in range 4-32)"],
  [{ net: "10.0.2.0/x" }, "Failed to parse netmask (trailing chars)"],
  [{ net: "10.0.2.0/255.255.0.x" }, "Failed to parse netmask (trailing chars)"],
  [{ host: "1.2.3.4" }, "Host doesn't belong to network"],
  [{ dns: "10.0.2.2" }, "DNS must be different from host"],
  [{ dhcpstart: "10.0.3.5" }, "DHCP doesn't belong to network"],
  [{ dhcpstart: "10.0.2.2" }, "DHCP must be different from host and DNS"],
  [{ restrict: "maybe" }, "Parameter 'restrict' expects 'on' or 'off'"],
  [{ ipv6: "x" }, "Parameter 'ipv6' expects 'on' or 'off'"],
  [
    { "ipv6-net": "fec0::/200" },
    "Invalid IPv6 prefix provided (IPv6 prefix length must be between 0 and 126)",
  ],
  [{ "ipv6-net": "zz" }, "Failed to parse IPv6 prefix"],
  [{ "ipv6-net": "fec0::/x" }, "Parameter 'ipv6-prefixlen' expects a number"],
  [{ "ipv6-prefix": "zz" }, "Failed to parse IPv6 prefix"],
  [{ "ipv6-prefixlen": "abc" }, "Parameter 'ipv6-prefixlen' expects an int64 value"],
  [{ "ipv6-host": "fec1::1" }, "IPv6 Host doesn't belong to network"],
  [{ hostfwd: "tcp:1.2.3.4" }, "Invalid host forwarding rule 'tcp:1.2.3.4' (Missing : separator)"],
  [{ hostfwd: "xx:1:2-3" }, "Invalid host forwarding rule 'xx:1:2-3' (Bad protocol name)"],
  [{ hostfwd: "tcp::99999-:22" }, "Invalid host forwarding rule 'tcp::99999-:22' (Bad host port)"],
  [{ hostfwd: "tcp::22-:0" }, "Invalid host forwarding rule 'tcp::22-:0' (Bad guest port)"],
  [{ hostfwd: "tcp:a:22-:22" }, "Invalid host forwarding rule 'tcp:a:22-:22' (Bad host address)"],
  [{ hostfwd: "tcp::2222-foo:22" }, "Invalid host forwarding rule 'tcp::2222-foo:22' (Bad guest address)"],
  [{ guestfwd: "tcp:10.0.2.100:x-cmd:cat" }, "Invalid guest forwarding rule 'tcp:10.0.2.100:x-cmd:cat'"],
  [{ guestfwd: "bla" }, "Invalid guest forwarding rule 'bla'"],
  [{ domainname: "" }, "'domainname' parameter cannot be empty"],
  [{ ipv4: "off", ipv6: "off" }, "IPv4 and IPv6 disabled"],
  [{ ipv4: "off", net: "10.0.0.0/8" }, "IPv4 disabled but netmask/host/dns provided"],
  [{ restrict: "on", dns: "8.8.8.8" }, "DNS doesn't belong to network"],
  [{ hostname: "a".repeat(300) }, "'vhostname' parameter cannot exceed 255 bytes"],
];

Deno.test("parseSlirpOptions rejects bad values with QEMU 7.2's one-line messages", () => {
  for (const [props, msg] of QEMU_ERRORS) {
    assert.throws(() => parseSlirpOptions(props), (e: unknown) => {
      assert.ok(e instanceof UserError, JSON.stringify(props));
      assert.equal(e.message, msg, JSON.stringify(props));
      return true;
    });
  }
});

Deno.test("parseSlirpOptions fills QEMU's defaults and derives addresses from net=", () => {
  const d = parseSlirpOptions({});
  assert.deepEqual([...d.net, ...d.mask], [10, 0, 2, 0, 255, 255, 255, 0]);
  assert.deepEqual([...d.host], GW_IP);
  assert.deepEqual([...d.dns], DNS_IP);
  assert.deepEqual([...d.dhcpStart], GUEST_IP);
  assert.equal(d.infoStr, "net=10.0.2.0,restrict=off");
  assert.equal(d.prefixLen6, 64);
  assert.deepEqual([...d.host6], [0xfe, 0xc0, ...new Array(13).fill(0), 2]);
  assert.ok(d.ipv4 && d.ipv6 && !d.restricted);
  const n = parseSlirpOptions({ net: "192.168.76.0/24", restrict: "on" });
  assert.deepEqual([...n.host], [192, 168, 76, 2]);
  assert.deepEqual([...n.dhcpStart], [192, 168, 76, 15]);
  assert.equal(n.infoStr, "net=192.168.76.0,restrict=on");
  // Classful default mask (QEMU: 172.16/12 private block) and ip= as a /24.
  assert.deepEqual([...parseSlirpOptions({ net: "172.20.0.0" }).mask], [255, 240, 0, 0]);
  assert.deepEqual([...parseSlirpOptions({ ip: "10.1.2.3" }).net], [10, 1, 2, 0]);
  const v6 = parseSlirpOptions({ "ipv6-net": "fd00:1::/48" });
  assert.equal(v6.prefixLen6, 48);
  assert.deepEqual([...v6.dns6.subarray(0, 4)], [0xfd, 0x00, 0x00, 0x01]);
  assert.equal(v6.dns6[15], 3);
  assert.equal(parseSlirpOptions({ ipv6: "on" }).ipv4, false);
  assert.equal(parseSlirpOptions({ ipv4: "on" }).ipv6, false);
  const lists = parseSlirpOptions({}, {
    hostfwd: ["tcp:127.0.0.1:5000-:22", "udp::5001-10.0.2.20:53"],
    dnssearch: ["a.example", "b.example"],
  });
  // QEMU applies rules last-written first.
  assert.deepEqual(lists.hostfwd.map((h) => h.hostPort), [5001, 5000]);
  assert.deepEqual(lists.dnssearch, ["a.example", "b.example"]);
});

Deno.test("hostfwd, hostfwd_remove and guestfwd rules parse as QEMU's slirp_hostfwd/slirp_guestfwd do", () => {
  assert.deepEqual(parseHostFwd("tcp:127.0.0.1:2222-:22"), {
    udp: false,
    hostAddr: "127.0.0.1",
    hostPort: 2222,
    guestAddr: "",
    guestPort: 22,
    text: "tcp:127.0.0.1:2222-:22",
  });
  assert.equal(parseHostFwd("udp::0x10-10.0.2.15:010").guestPort, 8);
  assert.equal(parseHostFwd(":127.1:80-:80").hostAddr, "127.0.0.1");
  assert.deepEqual(parseHostFwdKey("udp::5555"), { udp: true, hostAddr: "", hostPort: 5555 });
  assert.equal(parseHostFwdKey("zzz"), null);
  assert.equal(parseHostFwdKey("tcp:1.2.3.4:x"), null);
  assert.deepEqual(parseGuestFwd("tcp:10.0.2.100:1234-cmd:cat").cmd, "cat");
  assert.deepEqual(parseGuestFwd("tcp:10.0.2.100:1234-tcp:127.0.0.1:4321").connect, {
    host: "127.0.0.1",
    port: 4321,
  });
  assert.throws(
    () => parseGuestFwd("tcp:10.0.2.100:1234-nonsense"),
    /Could not open guest forwarding device/,
  );
  assert.deepEqual([...inetAton("10.2")!], [10, 0, 0, 2]);
  assert.equal(inetAton("256.1.1.1"), null);
});

// ------------------------------------------------------------------------------------------------ layout

const LAYOUT_C = `
#include <stdio.h>
#include <stddef.h>
#include <slirp/libslirp.h>
#define O(t,f) printf("%s.%s %zu\\n", #t, #f, offsetof(t, f));
int main(void) {
  printf("SlirpConfig.size %zu\\nSlirpCb.size %zu\\n", sizeof(SlirpConfig), sizeof(SlirpCb));
  O(SlirpConfig,version) O(SlirpConfig,restricted) O(SlirpConfig,in_enabled) O(SlirpConfig,vnetwork)
  O(SlirpConfig,vnetmask) O(SlirpConfig,vhost) O(SlirpConfig,in6_enabled) O(SlirpConfig,vprefix_addr6)
  O(SlirpConfig,vprefix_len) O(SlirpConfig,vhost6) O(SlirpConfig,vhostname) O(SlirpConfig,tftp_server_name)
  O(SlirpConfig,tftp_path) O(SlirpConfig,bootfile) O(SlirpConfig,vdhcp_start) O(SlirpConfig,vnameserver)
  O(SlirpConfig,vnameserver6) O(SlirpConfig,vdnssearch) O(SlirpConfig,vdomainname) O(SlirpConfig,if_mtu)
  O(SlirpConfig,if_mru) O(SlirpConfig,disable_host_loopback) O(SlirpConfig,enable_emu)
  O(SlirpConfig,outbound_addr) O(SlirpConfig,outbound_addr6) O(SlirpConfig,disable_dns)
  O(SlirpConfig,disable_dhcp)
  O(SlirpCb,send_packet) O(SlirpCb,guest_error) O(SlirpCb,clock_get_ns) O(SlirpCb,timer_new)
  O(SlirpCb,timer_free) O(SlirpCb,timer_mod) O(SlirpCb,register_poll_fd) O(SlirpCb,unregister_poll_fd)
  O(SlirpCb,notify) O(SlirpCb,init_completed) O(SlirpCb,timer_new_opaque)
  printf("SLIRP_CONFIG_VERSION_MAX %d\\n", SLIRP_CONFIG_VERSION_MAX);
  return 0;
}`;

Deno.test("SlirpConfig and SlirpCb offsets match <slirp/libslirp.h> (gcc)", async () => {
  assert.equal(SLIRP_CONFIG.size, 184);
  assert.equal(SLIRP_CB.size, 88);
  const dir = await Deno.makeTempDir({ prefix: "slirp_layout_" });
  try {
    await Deno.writeTextFile(`${dir}/l.c`, LAYOUT_C);
    let ok = false;
    try {
      ok =
        (await new Deno.Command("gcc", { args: ["-o", `${dir}/l`, `${dir}/l.c`], stderr: "null" }).output())
          .success;
    } catch {
      ok = false;
    }
    if (!ok) {
      console.log("SKIP: gcc or <slirp/libslirp.h> (libslirp-dev) unavailable: layout cross-check not run");
      return;
    }
    const out = new TextDecoder().decode(
      (await new Deno.Command(`${dir}/l`, { stdout: "piped" }).output()).stdout,
    );
    let checked = 0;
    for (const line of out.trim().split("\n")) {
      const [key, val] = line.split(" ");
      const [t, f] = key.split(".");
      if (t === "SLIRP_CONFIG_VERSION_MAX") {
        assert.ok(Number(val) >= configVersionFor("4.7.0"));
        continue;
      }
      const table: Record<string, number> = t === "SlirpConfig" ? SLIRP_CONFIG : SLIRP_CB;
      assert.equal(table[f], Number(val), key);
      checked++;
    }
    assert.equal(checked, 2 + 27 + 11);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodeSlirpConfig writes QEMU's default network in network byte order", () => {
  const { bytes } = encodeSlirpConfig(parseSlirpOptions({ restrict: "on" }), 4);
  const v = new DataView(bytes.buffer);
  assert.equal(v.getUint32(SLIRP_CONFIG.version, true), 4);
  assert.equal(v.getInt32(SLIRP_CONFIG.restricted, true), 1);
  assert.deepEqual([...bytes.subarray(SLIRP_CONFIG.vhost, SLIRP_CONFIG.vhost + 4)], GW_IP);
  assert.deepEqual([...bytes.subarray(SLIRP_CONFIG.vdhcp_start, SLIRP_CONFIG.vdhcp_start + 4)], GUEST_IP);
  assert.equal(bytes[SLIRP_CONFIG.vprefix_len], 64);
  assert.equal(configVersionFor("4.6.1"), 1);
  assert.equal(configVersionFor("4.9.0"), 4);
});

// ------------------------------------------------------------------------------------------------ frames

function csum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function arpRequest(targetIp: number[]): Uint8Array {
  return new Uint8Array([
    ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ...GUEST_MAC,
    0x08,
    0x06,
    ...[0, 1, 8, 0, 6, 4, 0, 1],
    ...GUEST_MAC,
    ...GUEST_IP,
    ...[0, 0, 0, 0, 0, 0],
    ...targetIp,
  ]);
}

/** An IPv4 frame from the guest to `dst` carrying `l4` with protocol `proto`. */
function ipv4(dstMac: number[], dst: number[], proto: number, l4: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + 20 + l4.length);
  f.set(dstMac, 0);
  f.set(GUEST_MAC, 6);
  f[12] = 0x08;
  const ip = 14;
  f[ip] = 0x45;
  f[ip + 2] = (20 + l4.length) >> 8;
  f[ip + 3] = (20 + l4.length) & 0xff;
  f[ip + 8] = 64;
  f[ip + 9] = proto;
  f.set(GUEST_IP, ip + 12);
  f.set(dst, ip + 16);
  const c = csum(f, ip, 20);
  f[ip + 10] = c >> 8;
  f[ip + 11] = c & 0xff;
  f.set(l4, ip + 20);
  return f;
}

function icmpEcho(seq: number, payload: number): Uint8Array {
  const m = new Uint8Array(8 + payload);
  m[0] = 8;
  m[6] = seq >> 8;
  m[7] = seq & 0xff;
  for (let i = 8; i < m.length; i++) m[i] = i & 0xff;
  const c = csum(m, 0, m.length);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return m;
}

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
    this.#waiters = this.#waiters.filter((w) => !(w.pred(f) && (w.res(f), true)));
  }
  next(pred: (f: Uint8Array) => boolean, ms = 10_000): Promise<Uint8Array> {
    const have = this.frames.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error("timed out waiting for a frame")), ms);
      this.#waiters.push({ pred, res: (f) => (clearTimeout(t), res(f)) });
    });
  }
}

const isArpReply = (f: Uint8Array) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2;
const isIcmpReply = (f: Uint8Array) => f[12] === 0x08 && f[13] === 0 && f[23] === 1 && f[34] === 0;

Deno.test("DNS answerer: parses an A query to 10.0.2.3 and builds a reply libc would accept", () => {
  const q = new Uint8Array([
    0x12,
    0x34,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    5,
    ..."runsc".split("").map((c) => c.charCodeAt(0)),
    0,
    0,
    1,
    0,
    1,
  ]);
  const udp = new Uint8Array(8 + q.length);
  udp.set([0x9c, 0x40, 0, 53, (8 + q.length) >> 8, (8 + q.length) & 0xff, 0, 0]);
  udp.set(q, 8);
  const gwMac = [0x52, 0x55, 10, 0, 2, 3];
  const frame = ipv4(gwMac, DNS_IP, 17, udp);
  const parsed = parseDnsQuery(frame, new Uint8Array(DNS_IP))!;
  assert.equal(parsed.name, "runsc");
  assert.equal(parsed.qtype, 1);
  assert.equal(parsed.id, 0x1234);
  assert.equal(parseDnsQuery(frame, new Uint8Array(GW_IP)), null); // another server: libslirp's
  const r = buildDnsReply(parsed, [new Uint8Array([127, 0, 0, 1])]);
  assert.deepEqual([...r.subarray(0, 6)], GUEST_MAC);
  assert.equal(csum(r, 14, 20), 0); // valid IPv4 header checksum
  const d = 14 + 20 + 8;
  assert.equal((r[d + 2] << 8) | r[d + 3], 0x8180); // response, RD, RA, NOERROR
  assert.equal(r[d + 7], 1); // one answer
  assert.deepEqual([...r.subarray(r.length - 4)], [127, 0, 0, 1]);
  const nx = buildDnsReply(parsed, null);
  assert.equal(nx[d + 3] & 0xf, 3); // NXDOMAIN
  // Truncated or garbage frames are not queries.
  for (let n = 0; n < frame.length; n += 7) {
    assert.equal(parseDnsQuery(frame.subarray(0, n), new Uint8Array(DNS_IP)), null);
  }
});

// ------------------------------------------------------------------------------------------------ live

Deno.test({
  name:
    "SlirpBackend answers ARP and ICMP, forwards a 127.0.0.1 hostfwd as a SYN, bounds its queue, closes sockets",
  ignore: !HAVE_LIB,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const be = SlirpBackend.open(parseSlirpOptions({}, { hostfwd: [`tcp:127.0.0.1:${port}-:8080`] }));
    const rx = new Collector();
    try {
      be.setReceiver(rx);
      assert.match(be.version, /^4\./);
      be.send(arpRequest(GW_IP));
      const arp = await rx.next(isArpReply);
      assert.deepEqual([...arp.subarray(28, 32)], GW_IP); // sender IP: the gateway
      const gwMac = [...arp.subarray(22, 28)];
      be.send(ipv4(gwMac, GW_IP, 1, icmpEcho(1, 56)));
      const echo = await rx.next(isIcmpReply);
      assert.deepEqual([...echo.subarray(26, 30)], GW_IP);

      // hostfwd: a connection to 127.0.0.1:port becomes a SYN to 10.0.2.15:8080.
      assert.match(
        be.connectionInfo(),
        new RegExp(`TCP\\[HOST_FORWARD\\]\\s+\\d+\\s+127\\.0\\.0\\.1\\s+${port}\\s+10\\.0\\.2\\.15\\s+8080`),
      );
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const syn = await rx.next((f) => f[23] === 6 && ((f[36] << 8) | f[37]) === 8080);
      assert.deepEqual([...syn.subarray(30, 34)], GUEST_IP);
      assert.equal(syn[47] & 0x02, 0x02); // SYN
      conn.close();

      // hostfwd_remove / hostfwd_add (before the flood: libslirp opens a host ICMP socket per echo).
      assert.equal(
        be.hostfwdRemove(`tcp:127.0.0.1:${port}`),
        `host forwarding rule for tcp:127.0.0.1:${port} removed`,
      );
      assert.equal(
        be.hostfwdRemove(`tcp:127.0.0.1:${port}`),
        `host forwarding rule for tcp:127.0.0.1:${port} not found`,
      );
      assert.equal(be.hostfwdRemove("zzz"), "invalid format");
      // A fresh port: the accepted connection above may keep `port` in TIME_WAIT.
      const probe2 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port2 = (probe2.addr as Deno.NetAddr).port;
      probe2.close();
      be.hostfwdAdd(`tcp:127.0.0.1:${port2}-:8081`);
      assert.throws(
        () => be.hostfwdAdd(`tcp:127.0.0.1:${port2}-:8081`),
        /Could not set up host forwarding rule/,
      );
      // Flood: the NIC takes nothing; what waits stays within the bound and the rest is dropped.
      rx.room = false;
      for (let i = 0; i < 4000; i++) be.send(ipv4(gwMac, GW_IP, 1, icmpEcho(i, 1400)));
      assert.ok(be.queuedBytes <= TO_GUEST_MAX_BYTES, `${be.queuedBytes} bytes queued`);
      assert.ok(be.stats.dropped > 0);
      const before = rx.frames.length;
      rx.room = true;
      await rx.next((f) => isIcmpReply(f) && rx.frames.indexOf(f) >= before);

      // close(): the hostfwd listener is gone (checked below).
    } finally {
      be.close();
      await be.stopped;
    }
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }), Deno.errors.ConnectionRefused);
  },
});

Deno.test({
  name: "guestfwd cmd: a rule inside the network is accepted, one outside fails with QEMU's message",
  ignore: !HAVE_LIB,
  fn: () => {
    const be = SlirpBackend.open(parseSlirpOptions({}, { guestfwd: ["tcp:10.0.2.100:1234-cmd:cat"] }));
    be.close();
    assert.throws(
      () =>
        SlirpBackend.open(parseSlirpOptions({}, {
          guestfwd: ["tcp:10.0.3.100:1234-cmd:cat"],
        })),
      (e: unknown) =>
        e instanceof UserError &&
        e.message === "Conflicting/invalid host:port in guest forwarding rule 'tcp:10.0.3.100:1234-cmd:cat'",
    );
  },
});

Deno.test("a missing libslirp is one line naming the package", () => {
  assert.throws(
    () => SlirpBackend.open(parseSlirpOptions({}), { libraryPath: "/nonexistent/libslirp.so.0" }),
    (e: unknown) => e instanceof UserError && e.message === LIBSLIRP_MISSING && !e.message.includes("\n"),
  );
});
