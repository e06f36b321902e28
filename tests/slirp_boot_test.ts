/**
 * `-netdev user` with the real guest on the software CPU, the VMM running as an unprivileged user (uid/gid
 * 65534 through setpriv when this test runs as root): the guest's udhcpc gets 10.0.2.15; a name from the
 * host's /etc/hosts resolves through 10.0.2.3; the guest fetches a file from an HTTP server this test runs on
 * 127.0.0.1 (through 10.0.2.2) and its SHA-256 matches; a hostfwd rule on 127.0.0.1 lets this test fetch a
 * file the guest serves with busybox httpd (SHA-256 checked); with restrict=on the guest's connection to the
 * same server fails and the server sees no request. Only 127.0.0.1 and addresses inside 10.0.2.0/24 are used.
 * Without libslirp0 (or setpriv, when root) it prints one `SKIP:` line and passes.
 */
import assert from "node:assert/strict";
import { guestFile } from "../core/host/guest_files.ts";
import { guestLines } from "./lib/boot.ts";
import { onPath, Proc } from "./lib/netns.ts";
import { payload, sha256Hex } from "./lib/tcp_peer.ts";

const REPO = new URL("../", import.meta.url).pathname;
/** What `deno run main.ts` needs of the checkout (copied when the unprivileged user cannot read it in place). */
const SOURCES = ["main.ts", "deno.json", "deno.lock", "core", "devices", "shell", "plugins", "node_modules"];
/** Per boot: a loaded 2-core machine can take minutes. */
const BOOT_TIMEOUT_MS = 300_000;
const NOBODY = 65534;
const FILE_BYTES = 256 * 1024;
const FILE_SEED = 16;

function skipReason(): string | null {
  try {
    Deno.dlopen("libslirp.so.0", { slirp_version_string: { parameters: [], result: "pointer" } }).close();
  } catch {
    return "libslirp.so.0 not found (apt-get install libslirp0): -netdev user boot tests not run";
  }
  if (Deno.uid() === 0 && onPath("setpriv") === null) {
    return "setpriv not found (util-linux): cannot run the VMM unprivileged";
  }
  return null;
}
const SKIP = skipReason();

function skip(reason: string): void {
  console.log(`SKIP: ${reason}`);
}

function explain(out: string, lines = 40): string {
  return `\n--- output tail ---\n${out.split("\n").slice(-lines).join("\n")}`;
}

function tagged(out: string, tag: string): string | undefined {
  return out.split(/\r?\n/).find((l) => l.startsWith(tag));
}

/** The first IPv4 name in /etc/hosts other than localhost (else localhost), and its address. */
function hostsEntry(): { name: string; addr: string } {
  let text = "";
  try {
    text = Deno.readTextFileSync("/etc/hosts");
  } catch {
    // no /etc/hosts: localhost still resolves
  }
  for (const line of text.split("\n")) {
    const f = line.replace(/#.*/, "").trim().split(/\s+/);
    if (f.length < 2 || !/^\d+\.\d+\.\d+\.\d+$/.test(f[0])) continue;
    const name = f.slice(1).find((n) => n !== "localhost" && /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(n));
    if (name) return { name, addr: f[0] };
  }
  return { name: "localhost", addr: "127.0.0.1" };
}

/** A world-readable directory with the guest files, and (as root) a DENO_DIR owned by the unprivileged user. */
async function prepare(): Promise<
  { dir: string; prefix: string[]; main: string; cleanup: () => Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "mvt-slirp-" });
  await Deno.chmod(dir, 0o755);
  for (const f of ["vmlinux", "initramfs.cpio.gz"]) {
    await Deno.copyFile(await guestFile(f), `${dir}/${f}`);
    await Deno.chmod(`${dir}/${f}`, 0o644);
  }
  const cleanup = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  if (Deno.uid() !== 0) return { dir, prefix: [Deno.execPath()], main: `${REPO}main.ts`, cleanup };
  // The unprivileged user cannot read root's DENO_DIR: give it its own, with the npm packages copied so
  // nothing is downloaded.
  const denoDir = `${dir}/deno_dir`;
  await Deno.mkdir(denoDir);
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  const rootDir = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir as string;
  await new Deno.Command("cp", { args: ["-r", `${rootDir}/npm`, denoDir], stderr: "null" }).output();
  await new Deno.Command("chown", { args: ["-R", `${NOBODY}:${NOBODY}`, denoDir] }).output();
  const setpriv = [onPath("setpriv")!, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"];
  // A checkout under a private home directory is not readable by the unprivileged user: run a copy.
  let main = `${REPO}main.ts`;
  const readable = await new Deno.Command(setpriv[0], {
    args: [...setpriv.slice(1), "/usr/bin/test", "-r", main],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!readable.success) {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await new Deno.Command("cp", { args: ["-r", ...SOURCES.map((f) => `${REPO}${f}`), src], stderr: "null" })
      .output();
    await new Deno.Command("chmod", { args: ["-R", "a+rX", src] }).output();
    main = `${src}/main.ts`;
  }
  return {
    dir,
    main,
    prefix: [
      ...setpriv,
      "/usr/bin/env",
      `DENO_DIR=${denoDir}`,
      `HOME=${denoDir}`,
      Deno.execPath(),
    ],
    cleanup,
  };
}

function vmm(env: { prefix: string[]; dir: string; main: string }, netdev: string, cmd: string): Proc {
  const { prefix, dir } = env;
  const args = [
    ...prefix.slice(1),
    "run",
    "-A",
    env.main,
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
    `earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t guest_cmd="${cmd}"`,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-netdev",
    netdev,
    "-device",
    "virtio-net-device,netdev=n0",
    "-no-reboot",
  ];
  return new Proc(prefix[0], args, { cwd: dir, timeoutMs: BOOT_TIMEOUT_MS });
}

/** DHCP with a udhcpc script (the guest has no default one) that configures eth0 and prints the lease. */
const DHCP = "printf '#!/bin/sh\\n[ $1 = bound ] || exit 0\\nip addr add $ip/$mask dev $interface\\n" +
  "[ $router ] && ip route add default via $router\\necho GUEST-DHCP $ip $router $dns\\necho GUEST-DHCP-NAMES $hostname $domain $search\\n' >/s; chmod +x /s; " +
  "ip link set eth0 up; udhcpc -i eth0 -n -q -s /s";

/** An HTTP server on 127.0.0.1 serving /f.bin, and /done once `done` is set; counts requests. */
function httpServer() {
  const body = payload(FILE_BYTES, FILE_SEED);
  const st = { requests: 0, done: false };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    st.requests++;
    const path = new URL(req.url).pathname;
    if (path === "/f.bin") return new Response(new Uint8Array(body));
    if (path === "/done" && st.done) return new Response("done\n");
    return new Response("not yet\n", { status: 404 });
  });
  return { st, server, port: server.addr.port, body };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

Deno.test({
  name:
    "-netdev user, unprivileged: DHCP lease 10.0.2.15, /etc/hosts name via 10.0.2.3, HTTP both ways (SHA-256)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (SKIP) return skip(SKIP);
    const env = await prepare();
    const { cleanup } = env;
    const http = httpServer();
    const fwdPort = freePort();
    const hosts = hostsEntry();
    // guestfwd target: the guest's connections to 10.0.2.100:1234 arrive here.
    const gfwd = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const gfwdPort = (gfwd.addr as Deno.NetAddr).port;
    const gfwdData = (async () => {
      const c = await gfwd.accept();
      const dec = new TextDecoder();
      const buf = new Uint8Array(4096);
      let text = "";
      while (!text.includes("\n")) {
        const n = await c.read(buf).catch(() => null);
        if (n === null) break;
        text += dec.decode(buf.subarray(0, n), { stream: true });
      }
      c.close();
      return text;
    })().catch((e) => `accept failed: ${e}`);
    let vm: Proc | undefined;
    try {
      const cmd = [
        DHCP,
        `nslookup ${hosts.name} 10.0.2.3`,
        `wget -q -O /tmp/f.bin http://10.0.2.2:${http.port}/f.bin`,
        "echo GUEST-FETCH rc=$? $(wc -c </tmp/f.bin) $(sha256sum </tmp/f.bin)",
        "echo GUEST-GFWD-HELLO | timeout 5 nc 10.0.2.100 1234",
        "mkdir /www",
        "dd if=/dev/urandom of=/www/g.bin bs=1024 count=64 2>/dev/null",
        "echo GUEST-SERVE $(sha256sum </www/g.bin)",
        "httpd -p 8080 -h /www",
        "echo GUEST-HTTPD rc=$?",
        `i=0; while ! wget -q -O /dev/null http://10.0.2.2:${http.port}/done && [ $i -lt 240 ]; do sleep 1; i=$((i+1)); done`,
        "echo GUEST-DONE $i",
      ].join("; ");
      vm = vmm(
        env,
        `user,id=n0,hostfwd=tcp:127.0.0.1:${fwdPort}-:8080,hostname=mvtguest,domainname=test.example,` +
          `dnssearch=a.example,dnssearch=b.example,guestfwd=tcp:10.0.2.100:1234-tcp:127.0.0.1:${gfwdPort}`,
        cmd,
      );
      const served = await vm.waitFor(/GUEST-SERVE ([0-9a-f]{64}) -/, BOOT_TIMEOUT_MS);
      assert.ok(served, `guest did not start serving${explain(vm.out)}`);
      assert.ok(await vm.waitFor(/GUEST-HTTPD rc=0/, 30_000), explain(vm.out));
      // Host → guest through the hostfwd rule on 127.0.0.1.
      const res = await fetch(`http://127.0.0.1:${fwdPort}/g.bin`);
      assert.equal(res.status, 200);
      const got = new Uint8Array(await res.arrayBuffer());
      assert.equal(got.length, 64 * 1024);
      assert.equal(await sha256Hex(got), served[1]);
      http.st.done = true;
      const r = await vm.done;
      const g = guestLines(r.out);
      assert.equal(r.code, 0, `exit code${explain(r.out)}`);
      assert.match(r.out, /udhcpc: lease of 10\.0\.2\.15 obtained from 10\.0\.2\.2/, explain(r.out));
      assert.equal(tagged(r.out, "GUEST-DHCP "), "GUEST-DHCP 10.0.2.15 10.0.2.2 10.0.2.3", explain(r.out));
      // hostname=, domainname= and dnssearch= reach the guest through libslirp's DHCP (SlirpConfig strings).
      assert.equal(
        tagged(r.out, "GUEST-DHCP-NAMES"),
        "GUEST-DHCP-NAMES mvtguest test.example a.example b.example",
        explain(r.out),
      );
      assert.match(
        r.out,
        new RegExp(
          `Name:\\s+${hosts.name.replace(/\./g, "\\.")}\\s*\\r?\\nAddress:\\s+${
            hosts.addr.replace(/\./g, "\\.")
          }`,
        ),
        explain(r.out),
      );
      // guestfwd: what the guest wrote to 10.0.2.100:1234 reached the host connection.
      assert.equal(await gfwdData, "GUEST-GFWD-HELLO\n");
      // Guest → host: 10.0.2.2 is the host's 127.0.0.1.
      const want = await sha256Hex(http.body);
      assert.equal(tagged(r.out, "GUEST-FETCH"), `GUEST-FETCH rc=0 ${FILE_BYTES} ${want} -`, explain(r.out));
      assert.ok(g.includes("GUEST-CMD-END rc=0"), explain(r.out));
      assert.equal(g[g.length - 1], "GUEST-REBOOT");
      // The VM has ended: its hostfwd listener is closed.
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port: fwdPort }),
        Deno.errors.ConnectionRefused,
      );
    } finally {
      vm?.kill();
      await vm?.done;
      await http.server.shutdown();
      gfwd.close();
      await cleanup();
    }
  },
});

Deno.test({
  name: "-netdev user, unprivileged: a hostfwd on a privileged port fails with QEMU's one line, exit 1",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (SKIP) return skip(SKIP);
    if (Deno.uid() !== 0) return skip("not root: the unprivileged bind check needs setpriv from root");
    const env = await prepare();
    const { dir, prefix, cleanup } = env;
    try {
      const rule = "tcp:127.0.0.1:1-:22";
      const p = new Proc(prefix[0], [
        ...prefix.slice(1),
        "run",
        "-A",
        env.main,
        ...["-M", "microvm", "-accel", "tcg", "-m", "128m", "-kernel", "vmlinux", "-nodefaults"],
        ...["-display", "none", "-netdev", `user,id=n0,hostfwd=${rule}`],
      ], { cwd: dir, timeoutMs: 120_000 });
      const r = await p.done;
      assert.equal(r.code, 1, r.out);
      assert.equal(
        r.out.trim(),
        `microvm.ts: -netdev user,id=n0,hostfwd=${rule}: Could not set up host forwarding rule '${rule}'`,
      );
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "-netdev user,restrict=on, unprivileged: DHCP still answers, the guest's outbound connection is blocked",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (SKIP) return skip(SKIP);
    const env = await prepare();
    const { cleanup } = env;
    const http = httpServer();
    let vm: Proc | undefined;
    try {
      const cmd = [
        DHCP,
        `echo GET / | nc -w 5 10.0.2.2 ${http.port}`,
        "echo GUEST-RESTRICTED-FETCH rc=$?",
      ].join("; ");
      vm = vmm(env, "user,id=n0,restrict=on", cmd);
      const r = await vm.done;
      assert.equal(r.code, 0, `exit code${explain(r.out)}`);
      // libslirp's restricted DHCP offers no router and no DNS (bootp.c).
      assert.match(r.out, /udhcpc: lease of 10\.0\.2\.15 obtained from 10\.0\.2\.2/, explain(r.out));
      assert.equal(tagged(r.out, "GUEST-DHCP "), "GUEST-DHCP 10.0.2.15", explain(r.out));
      const line = tagged(r.out, "GUEST-RESTRICTED-FETCH");
      assert.ok(line !== undefined && line !== "GUEST-RESTRICTED-FETCH rc=0", explain(r.out));
      assert.equal(http.st.requests, 0, "the host server saw a request from a restricted guest");
      assert.equal(guestLines(r.out).at(-1), "GUEST-REBOOT");
    } finally {
      vm?.kill();
      await vm?.done;
      await http.server.shutdown();
      await cleanup();
    }
  },
});
