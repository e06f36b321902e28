/**
 * Host integration with a real Linux guest on the software CPU (`-accel tcg`): a host directory over
 * virtio-9p (read, write, rename, symlink, escape attempts, a readonly=on export), virtio-balloon driven
 * over QMP (shrink, grow back, statistics) and virtio-vsock over Firecracker-style Unix sockets (streams
 * both ways with data checked, many connections, a peer that vanishes, a refused port). The guest's test
 * scripts reach it over 9p. The VMM runs with --allow-read/--allow-write/--allow-env (plus --allow-net for the
 * vsock and QMP Unix sockets).
 */
import assert from "node:assert/strict";
import { boot, guestLines, seedDir } from "./lib/boot.ts";

const dir = await seedDir();
const BOOT_TIMEOUT_MS = 300_000;
const SECRET = "HOSTSECRET-4711";

function argv(append: string, extra: string[], mem = "256m"): string[] {
  return [
    "-M",
    "microvm",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-m",
    mem,
    "-kernel",
    "vmlinux",
    "-initrd",
    "initramfs.cpio.gz",
    "-append",
    `console=ttyS0 rdinit=/init reboot=t ${append}`,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-no-reboot",
    ...extra,
  ];
}

function explain(out: string, lines = 40): string {
  return `\n--- output tail ---\n${out.split("\n").slice(-lines).join("\n")}`;
}

/** The first guest line starting with `tag`. */
function line(g: string[], tag: string): string | undefined {
  return g.find((l) => l.startsWith(tag));
}

/** The first console line containing `tag` (the vsock tool's lines do not start with GUEST-), from `tag` on. */
function vline(out: string, tag: string): string | undefined {
  const l = out.split(/\r?\n/).find((x) => x.includes(tag));
  return l === undefined ? undefined : l.slice(l.indexOf(tag)).trimEnd();
}

const MOUNT = "mount -t 9p -o trans=virtio,version=9p2000.L,msize=131072";

Deno.test("virtio-9p: the guest reads, writes, renames and links in a host directory; escapes and readonly=on are refused", async () => {
  const top = await Deno.makeTempDir({ prefix: "mvt-9p-" });
  try {
    const share = `${top}/share`;
    const ro = `${top}/ro`;
    await Deno.mkdir(share);
    await Deno.mkdir(ro);
    await Deno.writeTextFile(`${top}/secret`, SECRET);
    await Deno.writeTextFile(`${share}/hello.txt`, "hello from the host");
    await Deno.writeTextFile(`${ro}/ro.txt`, "read only");
    await Deno.symlink(`${top}/secret`, `${share}/abs-link`);
    await Deno.symlink("../secret", `${share}/rel-link`);
    await Deno.symlink(top, `${share}/dirlink`);
    await Deno.writeTextFile(
      `${share}/t.sh`,
      [
        "mkdir -p /ro",
        `${MOUNT} ro /ro || echo GUEST-9P-RO-MOUNT-FAIL`,
        'echo "GUEST-9P-READ $(cat /mnt/hello.txt)"',
        'echo "written by the guest" > /mnt/fromguest.txt && echo GUEST-9P-WRITE ok',
        "mkdir /mnt/gdir && mv /mnt/fromguest.txt /mnt/gdir/renamed.txt && echo GUEST-9P-RENAME ok",
        'ln -s renamed.txt /mnt/gdir/glink && echo "GUEST-9P-SYMLINK $(readlink /mnt/gdir/glink) $(cat /mnt/gdir/glink)"',
        "dd if=/dev/zero bs=1024 count=300 2>/dev/null | tr '\\0' x > /mnt/big.bin",
        'echo "GUEST-9P-BIG $(wc -c < /mnt/big.bin) $(head -c 5 /mnt/big.bin)"',
        "ln /mnt/hello.txt /mnt/hello-hard && echo GUEST-9P-LINK ok",
        'for f in abs-link rel-link dirlink/secret; do echo "GUEST-9P-ESCAPE $f $(cat /mnt/$f 2>&1 | head -c 60)"; done',
        'echo "GUEST-9P-PARENT $(ls /mnt/.. | grep -c secret)"',
        "rm /mnt/hello-hard && echo GUEST-9P-UNLINK ok",
        'echo "GUEST-9P-RO-READ $(cat /ro/ro.txt)"',
        "echo x > /ro/new.txt; echo GUEST-9P-RO-WRITE rc=$?",
        "rm /ro/ro.txt; echo GUEST-9P-RO-RM rc=$?",
        "mkdir /ro/d; echo GUEST-9P-RO-MKDIR rc=$?",
        "t0=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=/mnt/speed.bin bs=65536 count=64 2>/dev/null",
        "t1=$(cut -d' ' -f1 /proc/uptime); dd if=/mnt/speed.bin of=/dev/null bs=65536 2>/dev/null",
        "t2=$(cut -d' ' -f1 /proc/uptime); rm /mnt/speed.bin",
        "echo \"GUEST-9P-SPEED 4MiB write_s=$(echo $t0 $t1 | awk '{print $2-$1}') read_s=$(echo $t1 $t2 | awk '{print $2-$1}')\"",
        "sync",
        "echo GUEST-9P-DONE",
      ].join("\n") + "\n",
    );
    const r = await boot(
      argv(`guest_cmd="${MOUNT} host0 /mnt && sh /mnt/t.sh"`, [
        "-fsdev",
        `local,id=fs0,path=${share},security_model=none`,
        "-device",
        "virtio-9p-device,fsdev=fs0,mount_tag=host0",
        "-virtfs",
        `local,path=${ro},mount_tag=ro,security_model=none,readonly=on`,
      ]),
      { cwd: dir, timeoutMs: BOOT_TIMEOUT_MS },
    );
    const g = guestLines(r.out);
    if (Deno.env.get("MVT_SHOW_SPEED")) console.log(line(g, "GUEST-9P-SPEED") ?? "no GUEST-9P-SPEED line");
    assert.equal(r.code, 0, `exit code${explain(r.out)}`);
    assert.ok(g.includes("GUEST-VIRTIO virtio0 id=0x0009 driver=9pnet_virtio"), explain(r.out));
    assert.ok(g.includes("GUEST-9P-DONE"), explain(r.out));
    assert.equal(line(g, "GUEST-9P-READ"), "GUEST-9P-READ hello from the host");
    assert.ok(g.includes("GUEST-9P-WRITE ok") && g.includes("GUEST-9P-RENAME ok"), explain(r.out));
    assert.equal(line(g, "GUEST-9P-SYMLINK"), "GUEST-9P-SYMLINK renamed.txt written by the guest");
    assert.equal(line(g, "GUEST-9P-BIG"), "GUEST-9P-BIG 307200 xxxxx");
    assert.ok(g.includes("GUEST-9P-LINK ok") && g.includes("GUEST-9P-UNLINK ok"), explain(r.out));
    // The host sees what the guest did.
    assert.equal(await Deno.readTextFile(`${share}/gdir/renamed.txt`), "written by the guest\n");
    assert.equal(await Deno.readLink(`${share}/gdir/glink`), "renamed.txt");
    assert.equal((await Deno.stat(`${share}/big.bin`)).size, 307200);
    assert.equal(await Deno.readTextFile(`${share}/hello.txt`), "hello from the host");
    // Escapes: the host secret never reaches the guest; host symlinks resolve inside the guest, not the host.
    assert.ok(!r.out.includes(SECRET), `host secret leaked${explain(r.out)}`);
    assert.equal(g.filter((l) => l.startsWith("GUEST-9P-ESCAPE")).length, 3, explain(r.out));
    assert.equal(line(g, "GUEST-9P-PARENT"), "GUEST-9P-PARENT 0");
    // readonly=on
    assert.equal(line(g, "GUEST-9P-RO-READ"), "GUEST-9P-RO-READ read only");
    for (const tag of ["GUEST-9P-RO-WRITE", "GUEST-9P-RO-RM", "GUEST-9P-RO-MKDIR"]) {
      assert.match(line(g, tag) ?? "", /rc=[1-9]/, `${tag}${explain(r.out)}`);
    }
    assert.equal(await Deno.readTextFile(`${ro}/ro.txt`), "read only");
    await assert.rejects(() => Deno.stat(`${ro}/new.txt`));
    await assert.rejects(() => Deno.stat(`${ro}/d`));
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

/** pattern(seed)[i] as guest/vsock.c makes it. */
function pattern(seed: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff;
  return b;
}

function fnv(b: Uint8Array): string {
  let h = 2166136261;
  for (const x of b) h = Math.imul(h ^ x, 16777619) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** Conn.write may write less than asked: loop until everything is out. */
async function writeAll(c: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await c.write(data.subarray(off));
}

async function readAll(c: Deno.Conn, limit = Infinity): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const buf = new Uint8Array(65536);
  while (n < limit) {
    const k = await c.read(buf);
    if (k === null) break;
    parts.push(buf.slice(0, k));
    n += k;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A line-oriented QMP client on a Unix socket. */
class Qmp {
  #buf = "";
  constructor(readonly c: Deno.Conn) {}
  async recv(): Promise<Record<string, unknown>> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const l = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        const o = JSON.parse(l);
        if ("event" in o) continue;
        return o;
      }
      const b = new Uint8Array(4096);
      const n = await this.c.read(b);
      if (n === null) throw new Error("QMP closed");
      this.#buf += new TextDecoder().decode(b.subarray(0, n));
    }
  }
  async cmd(execute: string, args?: unknown): Promise<Record<string, unknown>> {
    await this.c.write(new TextEncoder().encode(JSON.stringify({ execute, arguments: args ?? {} }) + "\n"));
    return await this.recv();
  }
}

Deno.test("virtio-balloon over QMP and virtio-vsock over Unix sockets with a Linux guest", async () => {
  const top = await Deno.makeTempDir({ prefix: "mvt-bv-" });
  const uds = `${top}/v.sock`;
  const qmpPath = `${top}/qmp.sock`;
  const listeners: Deno.Listener[] = [];
  const hostChecks: Promise<string>[] = [];
  try {
    await Deno.mkdir(`${top}/share`);
    await Deno.writeTextFile(
      `${top}/share/t.sh`,
      [
        "mt() { awk '/MemTotal/{print $2}' /proc/meminfo; }",
        'echo "GUEST-MEM-START $(mt)"',
        "vsock listen 5000 6 &",
        "LP=$!",
        "sleep 1",
        "echo GUEST-BALLOON-READY",
        // Report the reading that ended each wait: the host deflates as soon as it sees the target reached, so a
        // second reading can already be larger again.
        "i=0; while m=$(mt); [ $m -gt 140000 ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done",
        'echo "GUEST-MEM-SHRUNK $m"',
        "i=0; while m=$(mt); [ $m -lt 230000 ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done",
        'echo "GUEST-MEM-GREW $m"',
        'P=""; for p in 6001 6002 6003 6004; do vsock send 2 $p 200000 $p & P="$P $!"; done; wait $P',
        "sleep 1",
        "vsock send 2 6999 10 1",
        "vsock recv 2 6100",
        "vsock send 2 6200 2000000 9",
        "wait $LP",
        "echo GUEST-BV-DONE",
      ].join("\n") + "\n",
    );
    // Guest-initiated: echo servers on <uds>_600N that check the pattern.
    for (const port of [6001, 6002, 6003, 6004, 6100, 6200]) {
      const l = Deno.listen({ transport: "unix", path: `${uds}_${port}` });
      listeners.push(l);
      hostChecks.push((async () => {
        const c = await l.accept();
        try {
          if (port === 6100) {
            await writeAll(c, pattern(77, 300000));
            return "sent";
          }
          if (port === 6200) {
            // A peer that vanishes mid-stream.
            await readAll(c, 50000);
            return "vanished";
          }
          const got = await readAll(c);
          const ok = fnv(got) === fnv(pattern(port, 200000)) && got.length === 200000;
          await writeAll(c, got);
          return ok ? "ok" : `bad ${got.length}`;
        } finally {
          c.close();
        }
      })());
    }
    let started = false;
    let hostInit: Promise<string[]> | null = null;
    let balloon: Promise<string> | null = null;
    const r = await boot(
      argv(`guest_cmd="${MOUNT} host0 /mnt && sh /mnt/t.sh"`, [
        "-virtfs",
        `local,path=${top}/share,mount_tag=host0,security_model=none`,
        "-device",
        "virtio-balloon-device,id=balloon0",
        "-device",
        `virtio-vsock-device,guest-cid=3,uds-path=${uds}`,
        "-qmp",
        `unix:${qmpPath},server=on,wait=off`,
      ]),
      {
        cwd: dir,
        timeoutMs: BOOT_TIMEOUT_MS * 2,
        // Deno 2.9 asks for net permission to listen on or connect to a Unix socket.
        perms: ["--allow-read", "--allow-write", "--allow-env", "--allow-net"],
        onOutput: (out) => {
          if (!started && out.includes("GUEST-BALLOON-READY")) {
            started = true;
            // Host-initiated: six connections to guest port 5000, one of which vanishes before reading.
            hostInit = Promise.all([0, 1, 2, 3, 4, 5].map(async (i) => {
              const c = await Deno.connect({ transport: "unix", path: uds });
              try {
                await c.write(new TextEncoder().encode("CONNECT 5000\n"));
                const okLine = new TextDecoder().decode(
                  await readAll(c, 1).then(async (first) => {
                    const rest = new Uint8Array(32);
                    let s = first;
                    while (!new TextDecoder().decode(s).includes("\n")) {
                      const k = await c.read(rest);
                      if (k === null) break;
                      s = new Uint8Array([...s, ...rest.subarray(0, k)]);
                    }
                    return s;
                  }),
                );
                if (!/^OK \d+\n$/.test(okLine)) return `bad handshake ${JSON.stringify(okLine)}`;
                const data = pattern(100 + i, 100000);
                if (i === 5) {
                  await writeAll(c, data.subarray(0, 1000));
                  return "vanished";
                }
                const reader = readAll(c);
                await writeAll(c, data);
                await c.closeWrite();
                const back = await reader;
                return fnv(back) === fnv(data) ? "ok" : `bad echo ${back.length}`;
              } finally {
                c.close();
              }
            }));
            balloon = (async () => {
              const q = new Qmp(await Deno.connect({ transport: "unix", path: qmpPath }));
              try {
                await q.recv();
                await q.cmd("qmp_capabilities");
                await q.cmd("qom-set", {
                  path: "/machine/peripheral/balloon0",
                  property: "guest-stats-polling-interval",
                  value: 1,
                });
                const shrink = await q.cmd("balloon", { value: 128 * 1024 * 1024 });
                let actual = 0;
                for (let i = 0; i < 600; i++) {
                  actual = ((await q.cmd("query-balloon")).return as { actual: number }).actual;
                  if (actual <= 128 * 1024 * 1024) break;
                  await new Promise((res) => setTimeout(res, 200));
                }
                const stats = (await q.cmd("qom-get", {
                  path: "/machine/peripheral/balloon0",
                  property: "guest-stats",
                })).return as { stats: Record<string, number> };
                await q.cmd("balloon", { value: 256 * 1024 * 1024 });
                return JSON.stringify({ shrink, actual, total: stats.stats["stat-total-memory"] });
              } finally {
                q.c.close();
              }
            })();
          }
          return false;
        },
      },
    );
    const g = guestLines(r.out);
    assert.equal(r.code, 0, `exit code${explain(r.out)}`);
    assert.ok(g.includes("GUEST-BV-DONE"), explain(r.out));
    // Balloon: the guest shrank below the target and grew back; stats arrived.
    const b = JSON.parse(await balloon!);
    assert.deepEqual(b.shrink, { return: {} });
    assert.ok(b.actual <= 128 * 1024 * 1024, `actual ${b.actual}`);
    assert.ok(b.total > 0, `stat-total-memory ${b.total}`);
    const start = Number(line(g, "GUEST-MEM-START")?.split(" ")[1]);
    const shrunk = Number(line(g, "GUEST-MEM-SHRUNK")?.split(" ")[1]);
    const grew = Number(line(g, "GUEST-MEM-GREW")?.split(" ")[1]);
    assert.ok(shrunk < start - 100_000, `MemTotal ${start} -> ${shrunk}${explain(r.out)}`);
    assert.ok(grew > start - 20_000, `MemTotal back to ${grew}${explain(r.out)}`);
    // vsock, guest → host: four streams echoed, data checked on both ends.
    for (const p of [6001, 6002, 6003, 6004]) {
      assert.equal(
        vline(r.out, `VSOCK-SEND port=${p}`),
        `VSOCK-SEND port=${p} sent=200000 recv=200000 fnv=${fnv(pattern(p, 200000))}`,
        explain(r.out),
      );
    }
    assert.match(vline(r.out, "VSOCK-ERR connect port=6999") ?? "", /errno=(104|111)/, explain(r.out));
    assert.equal(
      vline(r.out, "VSOCK-RECV port=6100"),
      `VSOCK-RECV port=6100 recv=300000 fnv=${fnv(pattern(77, 300000))}`,
    );
    assert.ok(
      vline(r.out, "VSOCK-ERR write port=6200") !== undefined ||
        vline(r.out, "VSOCK-SEND port=6200") !== undefined,
      explain(r.out),
    );
    assert.deepEqual(await Promise.all(hostChecks), ["ok", "ok", "ok", "ok", "sent", "vanished"]);
    // vsock, host → guest: Firecracker's CONNECT handshake, echoed data checked, one peer vanished.
    assert.deepEqual(await hostInit!, ["ok", "ok", "ok", "ok", "ok", "vanished"]);
    assert.ok(vline(r.out, "VSOCK-SERVED 6") !== undefined, explain(r.out));
  } finally {
    for (const l of listeners) {
      try {
        l.close();
      } catch {
        // closed
      }
    }
    await Deno.remove(top, { recursive: true });
  }
});
