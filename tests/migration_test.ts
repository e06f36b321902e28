/**
 * Migration end to end with the default guest (busybox shell on ttyS0): boot once; a background loop prints
 * a counter on the console while the source is live-migrated over tcp:127.0.0.1 to a second process (no
 * counter value lost or repeated); that destination migrates to file:, a third process restores the file
 * and its shell answers a command from restored RAM; corrupted, truncated and mismatched streams are
 * refused with one line, exit status 1, and the guest never runs.
 */
import assert from "node:assert/strict";
import { guestFile } from "../core/host/guest_files.ts";
import { Qmp, waitMigration } from "./lib/qmp_client.ts";

const enc = new TextEncoder(), dec = new TextDecoder();
const ROOT = new URL("..", import.meta.url).pathname;

async function vmArgs(extra: string[], mem = "512m"): Promise<string[]> {
  return [
    "run",
    "-A",
    `${ROOT}main.ts`,
    "-M",
    "microvm",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-m",
    mem,
    "-smp",
    "1",
    "-kernel",
    await guestFile("vmlinux"),
    "-initrd",
    await guestFile("initramfs.cpio.gz"),
    "-append",
    "earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t guest_shell=1 guest_noread=1",
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-no-reboot",
    ...extra,
  ];
}

interface Proc {
  child: Deno.ChildProcess;
  out(): string;
  err(): string;
  type(s: string): Promise<void>;
  status: Promise<Deno.CommandStatus>;
}

function spawn(args: string[]): Proc {
  const child = new Deno.Command("nice", {
    args: ["deno", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  let out = "", err = "";
  const p1 = (async () => {
    for await (const b of child.stdout) out += dec.decode(b, { stream: true });
  })();
  const p2 = (async () => {
    for await (const b of child.stderr) err += dec.decode(b, { stream: true });
  })();
  const w = child.stdin.getWriter();
  return {
    child,
    out: () => out,
    err: () => err,
    type: (s) => w.write(enc.encode(s)),
    status: child.status.then(async (st) => {
      await Promise.all([p1, p2]);
      await w.close().catch(() => {});
      return st;
    }),
  };
}

async function until(what: string, f: () => boolean, ms: number, p?: Proc): Promise<void> {
  const t = Date.now();
  while (!f()) {
    if (Date.now() - t > ms) {
      throw new Error(
        `timed out waiting for ${what}${
          p ? `\nstdout tail: ${p.out().slice(-400)}\nstderr: ${p.err()}` : ""
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function counters(out: string): number[] {
  // The shell prints its prompt ("/ # ") after starting the background counter, so a counter line can follow
  // the prompt on the same console line: accept that prefix (else "C1" is missed and the test sees 0 -> 2).
  return [...out.matchAll(/^(?:\/ # )*C(\d+)\r?$/gm)].map((m) => Number(m[1]));
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test({
  name:
    "migration: live over tcp with a console counter, to a file, restored in a new process; bad streams refused",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mvm-mig-" });
    const procs: Proc[] = [];
    const qmps: Qmp[] = [];
    try {
      // --- source: boot to the shell, start the counter ---
      const qa = `${dir}/a.sock`, qb = `${dir}/b.sock`;
      const a = spawn(await vmArgs(["-qmp", `unix:${qa},server=on,wait=off`]));
      procs.push(a);
      await until("the source's shell prompt", () => a.out().includes("/ # "), 240_000, a);
      await a.type("(i=0; while true; do echo C$i; i=$((i+1)); usleep 20000; done) &\n");
      await until("counter output", () => counters(a.out()).length >= 5, 60_000, a);

      // --- live migration over tcp ---
      const port = freePort();
      const b = spawn(
        await vmArgs(["-qmp", `unix:${qb},server=on,wait=off`, "-incoming", `tcp:127.0.0.1:${port}`]),
      );
      procs.push(b);
      console.log("source booted; destination listening");
      const mb = await Qmp.open(qb);
      const ma = await Qmp.open(qa);
      qmps.push(ma, mb);
      assert.equal((await mb.cmd("query-status")).status, "inmigrate");
      await ma.cmd("migrate-set-capabilities", { capabilities: [{ capability: "events", state: true }] });
      await ma.cmd("migrate-set-parameters", { "downtime-limit": 300 });
      assert.deepEqual(await ma.cmd("migrate", { uri: `tcp:127.0.0.1:${port}` }), {});
      console.log("migrating");
      const info = await waitMigration(ma, 120_000);
      const ram = info.ram as Record<string, number>;
      assert.ok(ram.transferred > 1 << 20 && ram.total >= 512 << 20, JSON.stringify(info));
      assert.ok(typeof info.downtime === "number" && typeof info["setup-time"] === "number");
      assert.equal((await ma.cmd("query-status")).status, "postmigrate");
      await until(
        "the destination to run",
        () => b.out().length > 0 && counters(b.out()).length >= 5,
        60_000,
        b,
      );
      assert.equal((await mb.cmd("query-status")).status, "running");
      // No counter value lost or repeated across the switch-over.
      const ca = counters(a.out()), cb = counters(b.out());
      const all = [...ca, ...cb];
      for (let i = 1; i < all.length; i++) {
        assert.equal(all[i], all[i - 1] + 1, `counter jumps ${all[i - 1]} → ${all[i]}`);
      }
      console.log(
        `live: ${ram.transferred} bytes, ${ram["dirty-sync-count"]} rounds, downtime ${info.downtime} ms, ` +
          `counter ${ca[0]}..${ca.at(-1)} on the source, ${cb[0]}.. on the destination`,
      );
      await ma.cmd("quit");

      // --- the destination stops the counter, migrates to a file, a third process restores it ---
      await b.type("kill $!; echo stopped-$((5*5))\n");
      await until("the counter to stop", () => b.out().includes("stopped-25"), 60_000, b);
      const file = `${dir}/vm.bin`;
      await mb.cmd("migrate", { uri: `file:${file}` });
      await waitMigration(mb, 60_000);
      await mb.cmd("quit");
      const size = Deno.statSync(file).size;
      assert.ok(size > 1 << 20 && size < 128 << 20, `stream is ${size} bytes`);

      const t0 = performance.now();
      const c = spawn(await vmArgs(["-incoming", `file:${file}`]));
      procs.push(c);
      await c.type("echo fromfile-$((6*9))\n");
      await until("the restored shell to answer", () => c.out().includes("fromfile-54"), 60_000, c);
      console.log(
        `file: ${size} bytes, restored guest answered ${(performance.now() - t0).toFixed(0)} ms after spawn`,
      );
      assert.equal(counters(c.out()).length, 0, "the counter was stopped before the snapshot");
      c.child.kill();

      // --- bad streams: one line on stderr, exit 1, the guest never runs ---
      const bytes = Deno.readFileSync(file);
      const bad: [string, Uint8Array, string, RegExp][] = [];
      const flipped = bytes.slice();
      flipped[bytes.length >> 1] ^= 0x10;
      bad.push(["corrupted", flipped, "512m", /corrupted: checksum mismatch in section \d+/]);
      bad.push(["truncated", bytes.subarray(0, bytes.length - 1000), "512m", /truncated/]);
      bad.push([
        "mismatched",
        bytes,
        "256m",
        /Machine configuration mismatch: ram is 536870912 in the stream but 268435456 here/,
      ]);
      bad.push(["not a stream", enc.encode("hello world, not a stream".repeat(4)), "512m", /bad magic/]);
      for (const [what, data, mem, re] of bad) {
        const f = `${dir}/${what.replace(/ /g, "_")}.bin`;
        Deno.writeFileSync(f, data);
        const d = spawn(await vmArgs(["-incoming", `file:${f}`], mem));
        procs.push(d);
        await d.type("echo never-$((3*3))\n");
        const st = await d.status;
        const lines = d.err().trim().split("\n");
        assert.equal(st.code, 1, `${what}: exit ${st.code}, stderr ${d.err()}`);
        assert.equal(lines.length, 1, `${what}: ${d.err()}`);
        assert.match(lines[0], /^microvm\.ts: load of migration failed: /, what);
        assert.match(lines[0], re, what);
        assert.ok(!d.out().includes("never-9"), `${what}: the guest ran`);
      }
    } finally {
      for (const q of qmps) q.close();
      for (const p of procs) {
        try {
          p.child.kill();
        } catch { /* exited */ }
        await p.status.catch(() => {});
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
