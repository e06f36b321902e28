/**
 * End-to-end networking with a real Linux guest on the software CPU (`-accel tcg`): virtio-net over a tap in a
 * private network namespace (seed lines 1 and 2: ping, and a file moved over TCP both ways, checked by
 * SHA-256), and two guests pinging each other over `-netdev socket` on 127.0.0.1. The tap tests need root,
 * /dev/net/tun and iproute2; without them they print one `SKIP:` line and pass. Only namespaces created here
 * (mvt-<random>) and addresses in 192.168.100.0/24 inside them are used; they are removed even on failure.
 * Boots are slow on a loaded machine, so each test combines its checks into as few boots as possible.
 */
import assert from "node:assert/strict";
import { guestLines, seedDir } from "./lib/boot.ts";
import { SEED_LINE_1, SEED_LINE_2, SEED_TAP, withTcg } from "./lib/machine.ts";
import {
  GUEST_IP,
  HOST_IP,
  NET_PREFIX,
  netnsUnavailable,
  type Proc,
  vmmProc,
  withTapNetns,
} from "./lib/netns.ts";
import { parsePeerArgs, parsePeerEvents, payload, type PeerEvent, sha256Hex } from "./lib/tcp_peer.ts";

const TCP_PEER = new URL("./lib/tcp_peer.ts", import.meta.url).pathname;
/** Per boot, as tests/boot_test.ts: a loaded 2-core machine can take minutes. */
const BOOT_TIMEOUT_MS = 300_000;
/** Bytes the host sends to the guest, and the guest to the host (KiB), in the seed line 1 test. */
const TO_GUEST_BYTES = 1 << 20;
const TO_GUEST_SEED = 42;
const TO_HOST_KIB = 768;
const PORT_TO_GUEST = 7001;
const PORT_TO_HOST = 7002;
const PING_OK = /3 packets transmitted, 3 packets received, 0% packet loss/;

const dir = await seedDir();
const skipTap = await netnsUnavailable();

function withAppend(argv: readonly string[], extra: string): string[] {
  const i = argv.indexOf("-append");
  const out = argv.slice();
  out[i + 1] = `${out[i + 1]} ${extra}`;
  return out;
}

/** SEED_TAP with ifname=tap0, so the VMM attaches to the namespace's tap. */
function seedTap(): string[] {
  return SEED_TAP.map((a) =>
    a.startsWith("tap,") ? a.replace("tap,id=tap0,", "tap,id=tap0,ifname=tap0,") : a
  );
}

function explain(out: string, lines = 30): string {
  return `\n--- output tail ---\n${out.split("\n").slice(-lines).join("\n")}`;
}

/** The first output line that starts with `tag` (guestLines would also cut one out of GUEST-CMDLINE). */
function tagged(out: string, tag: string): string | undefined {
  return out.split(/\r?\n/).find((l) => l.startsWith(tag));
}

function skip(reason: string): void {
  console.log(`SKIP: ${reason}`);
}

// ------------------------------------------------------------------------------------------ helpers (fast)

Deno.test("tcp_peer payload is deterministic per seed and sha256Hex matches FIPS 180-2's vector", async () => {
  assert.deepEqual(payload(1027, 7), payload(1027, 7));
  assert.notDeepEqual(payload(64, 7), payload(64, 8));
  assert.deepEqual(payload(1027, 7).subarray(0, 1024), payload(1024, 7));
  assert.equal(payload(0).length, 0);
  assert.equal(
    await sha256Hex(new TextEncoder().encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("tcp_peer parses its command line and its own event lines", () => {
  assert.deepEqual(
    parsePeerArgs(["--host", HOST_IP, "--send", "7001:100:5", "--recv", "7002", "--no-hash"]),
    {
      host: HOST_IP,
      hash: false,
      jobs: [{ kind: "send", port: 7001, bytes: 100, seed: 5 }, { kind: "recv", port: 7002 }],
    },
  );
  assert.deepEqual(parsePeerArgs(["--send", "1:2"]).jobs, [{ kind: "send", port: 1, bytes: 2, seed: 1 }]);
  assert.throws(() => parsePeerArgs([]), /Nothing to do/);
  assert.throws(() => parsePeerArgs(["--recv", "x"]), /Invalid port/);
  assert.throws(() => parsePeerArgs(["--bogus"]), /Unknown argument/);
  const evs = parsePeerEvents('noise\n{"event":"ready","host":"h","ports":[1]}\n{"event":"recv",\n');
  assert.deepEqual(evs, [{ event: "ready", host: "h", ports: [1] }]);
});

// --------------------------------------------------------------------------------------- boots (slow)

Deno.test("seed line 1 with a tap: the guest pings the host 3/3 and moves files over TCP both ways", async () => {
  if (skipTap) return skip(skipTap);
  await withTapNetns(async (ns) => {
    const peer = ns.spawn(Deno.execPath(), [
      "run",
      "--allow-net",
      TCP_PEER,
      "--host",
      HOST_IP,
      "--send",
      `${PORT_TO_GUEST}:${TO_GUEST_BYTES}:${TO_GUEST_SEED}`,
      "--recv",
      String(PORT_TO_HOST),
    ], { timeoutMs: BOOT_TIMEOUT_MS + 60_000 });
    assert.ok(await peer.waitFor(/"event":"ready"/, 60_000), `tcp peer did not start${explain(peer.out)}`);

    // busybox nc (the small one) half-closes on stdin EOF and exits on the network's EOF (checked on the host
    // with the guest's busybox), so `</dev/null` receives until the peer closes, `<file` sends then waits.
    const cmd = [
      `ping -c 3 ${HOST_IP}`,
      "mount -t tmpfs tmpfs /mnt",
      `nc ${HOST_IP} ${PORT_TO_GUEST} </dev/null >/mnt/in`,
      "echo GUEST-NC-IN rc=$? $(wc -c </mnt/in) $(sha256sum </mnt/in)",
      `dd if=/dev/urandom of=/mnt/out bs=1024 count=${TO_HOST_KIB} 2>/dev/null`,
      "echo GUEST-NC-OUT $(wc -c </mnt/out) $(sha256sum </mnt/out)",
      `nc ${HOST_IP} ${PORT_TO_HOST} </mnt/out`,
      "echo GUEST-NC-OUT-DONE rc=$?",
    ].join("; ");
    const argv = [
      ...withAppend(
        withTcg(SEED_LINE_1),
        `ro reboot=t guest_noread=1 guest_ip=${GUEST_IP}/${NET_PREFIX} guest_cmd="${cmd}"`,
      ),
      ...seedTap(),
      "-no-reboot",
    ];
    const vm = await ns.spawnVmm(argv, { cwd: dir, timeoutMs: BOOT_TIMEOUT_MS }).done;
    const g = guestLines(vm.out);
    assert.equal(vm.code, 0, `exit code${explain(vm.out)}`);
    assert.ok(g.includes("GUEST-VIRTIO virtio1 id=0x0001 driver=virtio_net"), explain(vm.out));
    assert.ok(g.includes(`GUEST-NET-UP eth0 ${GUEST_IP}/${NET_PREFIX}`), explain(vm.out));
    assert.match(vm.out, PING_OK, explain(vm.out));

    const events: PeerEvent[] = parsePeerEvents((await peer.done).out);
    const sent = events.find((e) => e.event === "send");
    const recv = events.find((e) => e.event === "recv");
    assert.ok(
      sent && sent.event === "send" && recv && recv.event === "recv",
      `peer events: ${JSON.stringify(events)}`,
    );

    // Host → guest: what the guest stored is what the peer sent, which is payload(…, seed).
    const wantIn = await sha256Hex(payload(TO_GUEST_BYTES, TO_GUEST_SEED));
    assert.equal(sent.sha256, wantIn);
    assert.equal(sent.bytes, TO_GUEST_BYTES);
    const inLine = tagged(vm.out, "GUEST-NC-IN ");
    assert.equal(inLine, `GUEST-NC-IN rc=0 ${TO_GUEST_BYTES} ${wantIn} -`, explain(vm.out));

    // Guest → host: what the peer received is the file the guest hashed.
    const m = /^GUEST-NC-OUT (\d+) ([0-9a-f]{64}) -$/.exec(tagged(vm.out, "GUEST-NC-OUT ") ?? "");
    assert.ok(m, explain(vm.out));
    assert.equal(Number(m[1]), TO_HOST_KIB * 1024);
    assert.equal(recv.bytes, TO_HOST_KIB * 1024);
    assert.equal(recv.sha256, m[2]);
    assert.equal(tagged(vm.out, "GUEST-NC-OUT-DONE"), "GUEST-NC-OUT-DONE rc=0", explain(vm.out));
    assert.equal(g[g.length - 1], "GUEST-REBOOT");
  });
});

Deno.test("seed line 2 (all legacy off, console on hvc0) with a tap: the guest pings the host 3/3", async () => {
  if (skipTap) return skip(skipTap);
  await withTapNetns(async (ns) => {
    const argv = [
      ...withAppend(
        withTcg(SEED_LINE_2),
        `ro reboot=t guest_noread=1 guest_ip=${GUEST_IP}/${NET_PREFIX} guest_cmd="ping -c 3 ${HOST_IP}"`,
      ),
      ...seedTap(),
      "-no-reboot",
    ];
    const vm = await ns.spawnVmm(argv, { cwd: dir, timeoutMs: BOOT_TIMEOUT_MS }).done;
    const g = guestLines(vm.out);
    assert.equal(vm.code, 0, `exit code${explain(vm.out)}`);
    assert.ok(g.includes("GUEST-VIRTIO virtio0 id=0x0003 driver=virtio_console"), explain(vm.out));
    assert.ok(g.includes("GUEST-VIRTIO virtio2 id=0x0001 driver=virtio_net"), explain(vm.out));
    assert.match(vm.out, PING_OK, explain(vm.out));
    assert.ok(g.includes("GUEST-CMD-END rc=0"), explain(vm.out));
    assert.equal(g[g.length - 1], "GUEST-REBOOT");
  });
});

/** An initramfs guest with one virtio-net on `-netdev socket,<socket>`, smp 1 and 128 MiB. */
function socketGuest(socket: string, mac: string, ip: string, cmd: string): string[] {
  return [
    "-M",
    "microvm",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-m",
    "128m",
    "-smp",
    "1",
    "-kernel",
    "vmlinux",
    "-initrd",
    "initramfs.cpio.gz",
    "-append",
    `earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t guest_ip=${ip}/${NET_PREFIX} guest_cmd="${cmd}"`,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-netdev",
    `socket,id=n0,${socket}`,
    "-device",
    `virtio-net-device,netdev=n0,mac=${mac}`,
    "-no-reboot",
  ];
}

function freeLocalPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("two guests ping each other over -netdev socket (listen= and connect= on 127.0.0.1)", async () => {
  const port = freeLocalPort();
  const perms = ["--allow-read", "--allow-write", "--allow-env", "--allow-net=127.0.0.1"];
  const ipA = "192.168.100.2";
  const ipB = "192.168.100.3";
  let a: Proc | undefined;
  let b: Proc | undefined;
  try {
    // Guest A waits; it answers pings from its kernel while its /init sleeps, and is killed at the end.
    a = vmmProc(socketGuest(`listen=127.0.0.1:${port}`, "52:54:00:12:34:56", ipA, "sleep 600"), {
      cwd: dir,
      perms,
      timeoutMs: 2 * BOOT_TIMEOUT_MS,
    });
    // The listener exists once the machine is built, before the kernel prints anything.
    assert.ok(await a.waitFor(/Linux version/, 120_000), `guest A did not start${explain(a.out)}`);
    // Both boot at once; B retries a single ping until A's eth0 is up, then pings 3 times.
    const cmdB =
      `i=0; while ! ping -c 1 -W 1 ${ipA} >/dev/null 2>&1 && [ $i -lt 120 ]; do i=$((i+1)); done; ` +
      `ping -c 3 ${ipA}`;
    b = vmmProc(socketGuest(`connect=127.0.0.1:${port}`, "52:54:00:12:34:57", ipB, cmdB), {
      cwd: dir,
      perms,
      timeoutMs: BOOT_TIMEOUT_MS,
    });
    const rb = await b.done;
    const gb = guestLines(rb.out);
    assert.equal(rb.code, 0, `guest B exit code${explain(rb.out)}\n--- guest A ---${explain(a.out, 15)}`);
    assert.ok(gb.includes("GUEST-NET eth0 52:54:00:12:34:57"), explain(rb.out));
    assert.match(rb.out, PING_OK, `${explain(rb.out)}\n--- guest A ---${explain(a.out, 15)}`);
    assert.ok(gb.includes("GUEST-CMD-END rc=0"), explain(rb.out));
    assert.ok(guestLines(a.out).includes(`GUEST-NET-UP eth0 ${ipA}/${NET_PREFIX}`), explain(a.out));
    assert.equal(a.out.includes("GUEST-CMD-END"), false, "guest A should still be sleeping");
  } finally {
    a?.kill();
    b?.kill();
    await Promise.allSettled([a?.done, b?.done]);
  }
});
