/**
 * Snapshot restore and live migration, side by side with QEMU 7.2 (`qemu-system-x86_64`, TCG) on the default
 * guest (vmlinux + initramfs, busybox shell on ttyS0, 512 MiB):
 * 1. stream size of a booted idle guest (ours: `migrate file:F`; QEMU: `migrate "exec:cat > F"`);
 * 2. restore latency: a new process started with `-incoming file:F` (QEMU: `-incoming "exec:cat F"`) is
 *    typed a command at once; time from spawn until its answer appears on the console (median of N);
 * 3. live migration over tcp:127.0.0.1 while the guest prints a counter: downtime and total time
 *    (query-migrate), and whether the counter continued without a gap.
 *   deno run -A bench/restore.ts [--runs N] [--no-qemu]
 * @module
 */
import { guestFile } from "../core/host/guest_files.ts";

const enc = new TextEncoder(), dec = new TextDecoder();
const ROOT = new URL("..", import.meta.url).pathname;
const runs = Number(Deno.args[Deno.args.indexOf("--runs") + 1] || 5) || 5;
const withQemu = !Deno.args.includes("--no-qemu");
const APPEND = "earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t guest_shell=1 guest_noread=1";

type Who = "ours" | "qemu";

async function argv(who: Who, extra: string[]): Promise<[string, string[]]> {
  const common = [
    "-M",
    "microvm",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-m",
    "512m",
    "-smp",
    "1",
    "-kernel",
    await guestFile("vmlinux"),
    "-initrd",
    await guestFile("initramfs.cpio.gz"),
    "-append",
    APPEND,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-no-reboot",
    ...extra,
  ];
  return who === "ours"
    ? ["deno", ["run", "-A", `${ROOT}main.ts`, ...common]]
    : ["qemu-system-x86_64", common];
}

interface Proc {
  child: Deno.ChildProcess;
  out(): string;
  type(s: string): Promise<void>;
}

function spawn([cmd, args]: [string, string[]]): Proc {
  const child = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "null" }).spawn();
  let out = "";
  (async () => {
    for await (const b of child.stdout) out += dec.decode(b, { stream: true });
  })();
  const w = child.stdin.getWriter();
  return { child, out: () => out, type: (s) => w.write(enc.encode(s)) };
}

async function until(f: () => boolean, ms: number, what: string): Promise<void> {
  const t = Date.now();
  while (!f()) {
    if (Date.now() - t > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function qmp(path: string, cmds: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
  const t = Date.now();
  for (;;) {
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      const r = conn.readable.getReader();
      let buf = "";
      const line = async () => {
        while (!buf.includes("\n")) {
          const { value, done } = await r.read();
          if (done) throw new Error("closed");
          buf += dec.decode(value);
        }
        const i = buf.indexOf("\n");
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        return l;
      };
      await line();
      const res: Record<string, unknown>[] = [];
      for (const c of [{ execute: "qmp_capabilities" }, ...cmds]) {
        await conn.write(enc.encode(JSON.stringify(c) + "\n"));
        let l: string;
        do l = await line(); while (l.includes('"event"'));
        res.push(JSON.parse(l));
      }
      r.releaseLock();
      conn.close();
      return res.slice(1);
    } catch (e) {
      if (Date.now() - t > 60_000) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function migrated(sock: string): Promise<Record<string, unknown>> {
  for (;;) {
    const [q] = await qmp(sock, [{ execute: "query-migrate" }]);
    const ret = q.return as Record<string, unknown>;
    if (ret.status === "completed") return ret;
    if (ret.status === "failed") throw new Error(JSON.stringify(ret));
    await new Promise((r) => setTimeout(r, 50));
  }
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];

async function bench(who: Who, dir: string): Promise<Record<string, string>> {
  const sock = `${dir}/${who}.sock`;
  const src = spawn(await argv(who, ["-qmp", `unix:${sock},server=on,wait=off`]));
  await until(() => src.out().includes("/ # "), 300_000, `${who} boot`);
  await src.type("echo warm-$((2*3))\n");
  await until(() => src.out().includes("warm-6"), 30_000, "warm");
  const file = `${dir}/${who}.bin`;
  const uri = who === "ours" ? `file:${file}` : `exec:cat > ${file}`;
  await qmp(sock, [{ execute: "migrate", arguments: { uri } }]);
  await migrated(sock);
  const size = Deno.statSync(file).size;
  // Live migration over tcp while the guest prints a counter.
  await qmp(sock, [{ execute: "cont" }]);
  await src.type("(i=0; while true; do echo C$i; i=$((i+1)); usleep 20000; done) &\n");
  await until(() => /C5\r?\n/.test(src.out()), 60_000, "counter");
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const dsock = `${dir}/${who}-dst.sock`;
  const dst = spawn(
    await argv(who, ["-qmp", `unix:${dsock},server=on,wait=off`, "-incoming", `tcp:127.0.0.1:${port}`]),
  );
  await qmp(dsock, []);
  await qmp(sock, [{ execute: "migrate", arguments: { uri: `tcp:127.0.0.1:${port}` } }]);
  const live = await migrated(sock);
  await until(() => /C\d+\r?\n/.test(dst.out()), 60_000, "destination counter");
  await new Promise((r) => setTimeout(r, 500));
  const nums = [...(src.out() + dst.out()).matchAll(/^C(\d+)\r?$/gm)].map((m) => Number(m[1]));
  const gapless = nums.every((n, i) => i === 0 || n === nums[i - 1] + 1);
  for (const p of [src, dst]) p.child.kill();
  // Restore latency.
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const p = spawn(await argv(who, ["-incoming", who === "ours" ? `file:${file}` : `exec:cat ${file}`]));
    await p.type(`echo r${i}-$((6*${i + 1}))\n`);
    await until(() => p.out().includes(`r${i}-${6 * (i + 1)}`), 60_000, "restored answer");
    times.push(performance.now() - t0);
    p.child.kill();
    await p.child.status;
  }
  const ram = live.ram as Record<string, number>;
  return {
    "stream (idle guest)": `${(size / 1048576).toFixed(1)} MiB`,
    "restore → console answer (median)": `${median(times).toFixed(0)} ms (min ${
      Math.min(...times).toFixed(0)
    })`,
    "live migration downtime": `${live.downtime} ms`,
    "live migration total": `${live["total-time"]} ms, ${(ram.transferred / 1048576).toFixed(1)} MiB`,
    "counter continued without a gap": gapless ? "yes" : "NO",
  };
}

const dir = await Deno.makeTempDir({ prefix: "mvm-restore-bench-" });
try {
  const rows: Record<string, Record<string, string>> = {};
  rows.ours = await bench("ours", dir);
  if (withQemu) rows.qemu = await bench("qemu", dir);
  console.log(`| default guest, 512 MiB, TCG | microvm.ts | QEMU 7.2 |\n|---|---|---|`);
  for (const k of Object.keys(rows.ours)) {
    console.log(`| ${k} | ${rows.ours[k]} | ${rows.qemu?.[k] ?? "—"} |`);
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
