/**
 * Network benchmark: TCP throughput through virtio-net and a tap, guest → host and host → guest, and ping
 * round-trip time, under microvm.ts and (when installed) QEMU 7.2 with TCG. Each boot runs in a fresh
 * network namespace (tests/lib/netns.ts) holding tap0 = 192.168.100.1/24; the host end is tests/lib/tcp_peer.ts
 * inside it, which measures: host → guest from accept until the guest closes after our FIN (the guest's busybox
 * nc reads the console as stdin, which never ends, so it only closes on the network's EOF), guest → host from
 * accept until the guest's EOF (`dd if=/dev/zero | nc`, which half-closes at the end of its input).
 * Needs root, /dev/net/tun and iproute2; otherwise it prints one `SKIP:` line and exits 0.
 * Usage: deno run -A bench/net.ts [--runs N] [--mib N] [--smp N] [--no-qemu]
 * @module
 */
import { machineArg, MAIN_TS, prepareGuestDir, qemuPath, type Vmm } from "./lib/guest.ts";
import { fmtRatio, fmtSummary, renderSection, type Section, summarize } from "./lib/stats.ts";
import { GUEST_IP, HOST_IP, NET_PREFIX, netnsUnavailable, withTapNetns } from "../tests/lib/netns.ts";
import { parsePeerEvents } from "../tests/lib/tcp_peer.ts";

const TCP_PEER = new URL("../tests/lib/tcp_peer.ts", import.meta.url).pathname;
const PORT_TO_GUEST = 7001;
const PORT_TO_HOST = 7002;
/** Pings for the round-trip row (0.2 s apart). */
const PINGS = 10;
const BOOT_TIMEOUT_MS = 600_000;

/** What one benchmark boot measured (NaN where it failed). */
export interface NetResult {
  /** MB/s (10^6 bytes per second), guest → host and host → guest. */
  toHostMBps: number;
  toGuestMBps: number;
  /** Average ping round trip in ms (busybox's summary line). */
  rttMs: number;
  /** Guest → host: ms from accept at which each MiB had arrived (shows a rate change during the transfer). */
  toHostMibMs: number[];
  /** TCP segments the host retransmitted during the boot (/proc/net/snmp RetransSegs in the namespace). */
  hostRetrans: number;
  /** Frames the tap dropped on the way to the VMM (tap0 tx_dropped: its queue was full). */
  tapTxDropped: number;
  ok: boolean;
  failure?: string;
}

/** The guest_cmd: ping, receive `bytes` into /dev/null, then send `bytes` of zeros (no double quotes). */
export function netCmd(bytes: number): string {
  return [
    `ping -q -c ${PINGS} -i 0.2 ${HOST_IP}`,
    `nc ${HOST_IP} ${PORT_TO_GUEST} >/dev/null`,
    `dd if=/dev/zero bs=65536 count=${Math.ceil(bytes / 65536)} 2>/dev/null | nc ${HOST_IP} ${PORT_TO_HOST}`,
    "echo GUEST-NETBENCH-DONE",
  ].join("; ");
}

/** The average round trip of busybox ping's summary ("round-trip min/avg/max = 1.0/2.0/3.0 ms"), or NaN. */
export function parseRtt(out: string): number {
  const m = /round-trip min\/avg\/max = [\d.]+\/([\d.]+)\/[\d.]+ ms/.exec(out);
  return m ? Number(m[1]) : NaN;
}

/** RetransSegs from /proc/net/snmp's two "Tcp:" lines (names, then values), or NaN. */
export function parseRetransSegs(snmp: string): number {
  const lines = snmp.split("\n").filter((l) => l.startsWith("Tcp:")).map((l) => l.trim().split(/\s+/));
  if (lines.length < 2) return NaN;
  const i = lines[0].indexOf("RetransSegs");
  return i > 0 ? Number(lines[1][i]) : NaN;
}

/** The command line (program arguments) of one benchmark boot under `vmm`. */
export function netBootArgs(vmm: Vmm, opts: { bytes: number; smp: number }): string[] {
  return [
    ...vmm.prefix,
    "-M",
    machineArg(vmm),
    ...["-accel", "tcg", "-cpu", "max", "-m", "512m", "-smp", String(opts.smp)],
    ...["-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio"],
    ...["-kernel", "vmlinux", "-initrd", "initramfs.cpio.gz"],
    "-append",
    `earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t guest_ip=${GUEST_IP}/${NET_PREFIX} ` +
    `guest_cmd="${netCmd(opts.bytes)}"`,
    ...[
      "-netdev",
      "tap,id=net0,ifname=tap0,script=no,downscript=no",
      "-device",
      "virtio-net-device,netdev=net0",
    ],
    "-no-reboot",
  ];
}

/** Boot once under `vmm` in a fresh namespace and measure. */
export async function runNetBoot(
  vmm: Vmm,
  dir: string,
  opts: { bytes: number; smp: number },
): Promise<NetResult> {
  const bytes = Math.ceil(opts.bytes / 65536) * 65536;
  return await withTapNetns(async (ns): Promise<NetResult> => {
    const peer = ns.spawn(Deno.execPath(), [
      "run",
      "--allow-net",
      TCP_PEER,
      "--no-hash",
      "--host",
      HOST_IP,
      "--send",
      `${PORT_TO_GUEST}:${bytes}`,
      "--recv",
      String(PORT_TO_HOST),
    ], { timeoutMs: BOOT_TIMEOUT_MS + 60_000 });
    const fail = (failure: string): NetResult => ({
      toHostMBps: NaN,
      toGuestMBps: NaN,
      rttMs: NaN,
      toHostMibMs: [],
      hostRetrans: NaN,
      tapTxDropped: NaN,
      ok: false,
      failure,
    });
    if (!await peer.waitFor(/"event":"ready"/, 60_000)) {
      return fail(`tcp peer did not start: ${peer.out.trim()}`);
    }
    const vm = await ns.spawn(vmm.cmd, netBootArgs(vmm, { ...opts, bytes }), {
      cwd: dir,
      timeoutMs: BOOT_TIMEOUT_MS,
    }).done;
    peer.kill(); // both transfers ended before the guest rebooted; nothing is left to wait for
    const evs = parsePeerEvents((await peer.done).out);
    const sent = evs.find((e) => e.event === "send");
    const recv = evs.find((e) => e.event === "recv");
    const r: NetResult = {
      toGuestMBps: sent?.event === "send" && sent.bytes === bytes && !sent.peerClosedEarly
        ? bytes / 1e3 / sent.ms
        : NaN,
      toHostMBps: recv?.event === "recv" && recv.bytes === bytes ? bytes / 1e3 / recv.ms : NaN,
      rttMs: parseRtt(vm.out),
      toHostMibMs: recv?.event === "recv" ? recv.mibMs ?? [] : [],
      hostRetrans: parseRetransSegs((await ns.spawn("cat", ["/proc/net/snmp"]).done).out),
      tapTxDropped: Number(
        (await ns.spawn("cat", ["/sys/class/net/tap0/statistics/tx_dropped"]).done).out.trim(),
      ),
      ok: false,
    };
    r.ok = vm.code === 0 && vm.out.includes("GUEST-NETBENCH-DONE") && Number.isFinite(r.toGuestMBps) &&
      Number.isFinite(r.toHostMBps);
    if (!r.ok) {
      const last = vm.out.trim().split("\n").slice(-1)[0] ?? "";
      r.failure = `${vm.timedOut ? "timeout" : `exit ${vm.code}`}: ${last.slice(0, 120)}; peer: ${
        JSON.stringify(evs)
      }`;
    }
    return r;
  });
}

/** Results per VMM. */
export interface NetSamples {
  ours: NetResult[];
  qemu: NetResult[] | null;
  bytes: number;
  smp: number;
}

/** The network table: one row per measurement, microvm.ts and QEMU side by side. */
export function netSection(s: NetSamples): Section {
  const ok = (rs: readonly NetResult[], f: (r: NetResult) => number) =>
    summarize(rs.filter((r) => r.ok).map(f));
  const tests: Array<[string, (r: NetResult) => number, "rate" | "time" | "count"]> = [
    [`TCP guest → host, ${s.bytes >> 20} MiB (MB/s)`, (r) => r.toHostMBps, "rate"],
    [`TCP host → guest, ${s.bytes >> 20} MiB (MB/s)`, (r) => r.toGuestMBps, "rate"],
    [`ping round trip, avg of ${PINGS} (ms)`, (r) => r.rttMs, "time"],
    ["host TCP segments retransmitted", (r) => r.hostRetrans, "count"],
    ["tap0 frames dropped towards the VMM", (r) => r.tapTxDropped, "count"],
  ];
  const digits = { rate: 2, time: 3, count: 0 } as const;
  const rows = tests.map(([name, f, kind]) => {
    const o = ok(s.ours, f);
    if (!s.qemu) return [name, fmtSummary(o, digits[kind]), "skipped", "n/a"];
    const q = ok(s.qemu, f);
    const ratio = kind === "rate"
      ? fmtRatio(q.median, o.median)
      : kind === "time"
      ? fmtRatio(o.median, q.median)
      : "";
    return [name, fmtSummary(o, digits[kind]), fmtSummary(q, digits[kind]), ratio];
  });
  const notes = [
    `median / min / max of ${s.ours.length} boot(s) per VMM; vmlinux + initramfs, -accel tcg -cpu max, ` +
    `smp ${s.smp}, 512 MiB, virtio-net-device on -netdev tap (tap0 in a private network namespace).`,
    "Throughput is measured by the host peer (tests/lib/tcp_peer.ts) over the whole connection, " +
    "guest side busybox nc (8 KiB reads/writes) fed by `dd bs=64k`.",
    "Ratio is QEMU/ours for rates and ours/QEMU for times: how many times better QEMU is.",
  ];
  if (!s.qemu) notes.push("QEMU not installed: skipped");
  for (const f of [...s.ours, ...(s.qemu ?? [])].filter((r) => !r.ok)) {
    notes.push(`a boot failed: ${f.failure}`);
  }
  return {
    title: "Network (virtio-net + tap, TCP through busybox nc)",
    headers: ["test", "microvm.ts", "QEMU 7.2", "QEMU/ours"],
    rows,
    notes,
  };
}

/** Guest → host MB/s over the first and the second half of the transfer (NaN when too short to tell). */
export function halfRates(mibMs: readonly number[]): [number, number] {
  const n = mibMs.length;
  if (n < 4) return [NaN, NaN];
  const h = n >> 1;
  const mb = (mib: number) => mib * 1.048576;
  return [mb(h - 1) / ((mibMs[h - 1] - mibMs[0]) / 1e3), mb(n - h) / ((mibMs[n - 1] - mibMs[h - 1]) / 1e3)];
}

function describe(r: NetResult): string {
  if (!r.ok) return `FAILED (${r.failure})`;
  const [a, b] = halfRates(r.toHostMibMs);
  return `guest→host ${r.toHostMBps.toFixed(2)} MB/s (halves ${a.toFixed(2)}, ${b.toFixed(2)}), ` +
    `host→guest ${r.toGuestMBps.toFixed(2)} MB/s, rtt ${r.rttMs.toFixed(3)} ms, ` +
    `host retransmits ${r.hostRetrans}, tap drops ${r.tapTxDropped}`;
}

/** Run `runs` boots per VMM (interleaved) and collect the results. */
export async function runNetBench(opts: {
  dir: string;
  runs: number;
  mib: number;
  smp: number;
  qemu: string | null;
  progress?: (msg: string) => void;
}): Promise<NetSamples> {
  const bytes = opts.mib << 20;
  const s: NetSamples = { ours: [], qemu: opts.qemu ? [] : null, bytes, smp: opts.smp };
  const ours: Vmm = { name: "microvm.ts", cmd: Deno.execPath(), prefix: ["run", "-A", MAIN_TS] };
  for (let i = 0; i < opts.runs; i++) {
    const o = await runNetBoot(ours, opts.dir, { bytes, smp: opts.smp });
    s.ours.push(o);
    opts.progress?.(`net ${i + 1}/${opts.runs} microvm.ts: ${describe(o)}`);
    if (opts.qemu && s.qemu) {
      const q = await runNetBoot({ name: "QEMU", cmd: opts.qemu, prefix: [] }, opts.dir, {
        bytes,
        smp: opts.smp,
      });
      s.qemu.push(q);
      opts.progress?.(`net ${i + 1}/${opts.runs} QEMU: ${describe(q)}`);
    }
  }
  return s;
}

function flag(name: string, def: number): number {
  const i = Deno.args.indexOf(name);
  const v = i >= 0 ? Number(Deno.args[i + 1]) : def;
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`Invalid ${name}: "${Deno.args[i + 1]}"`);
  return v;
}

if (import.meta.main) {
  const why = await netnsUnavailable();
  if (why) {
    console.log(`SKIP: ${why}`);
    Deno.exit(0);
  }
  const runs = flag("--runs", 1);
  const mib = flag("--mib", 32);
  const smp = flag("--smp", 1);
  const qemu = Deno.args.includes("--no-qemu") ? null : qemuPath();
  const dir = await prepareGuestDir();
  try {
    const s = await runNetBench({ dir, runs, mib, smp, qemu, progress: (m) => console.error(m) });
    console.log(renderSection(netSection(s)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
