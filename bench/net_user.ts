/**
 * User-mode network benchmark: TCP throughput through virtio-net on `-netdev user` (libslirp), guest → host and
 * host → guest, under microvm.ts and (when installed) QEMU 7.2's own `-netdev user`, same guest, same libslirp.
 * The host end is tests/lib/tcp_peer.ts on 127.0.0.1 (the guest reaches it as 10.0.2.2); it measures host →
 * guest from accept until the guest closes, guest → host from accept until the guest's EOF. No root needed.
 * Usage: deno run -A bench/net_user.ts [--runs N] [--mib N] [--no-qemu]
 * @module
 */
import { machineArg, MAIN_TS, prepareGuestDir, qemuPath, type Vmm } from "./lib/guest.ts";
import { fmtRatio, fmtSummary, renderSection, type Section, summarize } from "./lib/stats.ts";
import { Proc } from "../tests/lib/netns.ts";
import { parsePeerEvents } from "../tests/lib/tcp_peer.ts";

const TCP_PEER = new URL("../tests/lib/tcp_peer.ts", import.meta.url).pathname;
const BOOT_TIMEOUT_MS = 600_000;

/** What one boot measured (NaN where it failed). */
export interface UserNetResult {
  toHostMBps: number;
  toGuestMBps: number;
  ok: boolean;
  failure?: string;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** The guest_cmd: DHCP, receive `bytes` into /dev/null, then send `bytes` of zeros (no double quotes). */
export function userNetCmd(bytes: number, toGuest: number, toHost: number): string {
  return [
    "printf '#!/bin/sh\\n[ $1 = bound ] && ip addr add $ip/$mask dev $interface\\n' >/s; chmod +x /s",
    "ip link set eth0 up; udhcpc -i eth0 -n -q -s /s >/dev/null",
    `nc 10.0.2.2 ${toGuest} >/dev/null`,
    `dd if=/dev/zero bs=65536 count=${Math.ceil(bytes / 65536)} 2>/dev/null | nc 10.0.2.2 ${toHost}`,
    "echo GUEST-NETBENCH-DONE",
  ].join("; ");
}

/** Boot once under `vmm` and measure. */
export async function runUserNetBoot(vmm: Vmm, dir: string, bytes: number): Promise<UserNetResult> {
  bytes = Math.ceil(bytes / 65536) * 65536;
  const toGuest = freePort();
  const toHost = freePort();
  const fail = (failure: string): UserNetResult => ({
    toHostMBps: NaN,
    toGuestMBps: NaN,
    ok: false,
    failure,
  });
  const peer = new Proc(Deno.execPath(), [
    "run",
    "--allow-net",
    TCP_PEER,
    "--no-hash",
    "--host",
    "127.0.0.1",
    "--send",
    `${toGuest}:${bytes}`,
    "--recv",
    String(toHost),
  ], { timeoutMs: BOOT_TIMEOUT_MS + 60_000 });
  if (!await peer.waitFor(/"event":"ready"/, 60_000)) {
    return fail(`tcp peer did not start: ${peer.out.trim()}`);
  }
  const vm = await new Proc(vmm.cmd, [
    ...vmm.prefix,
    "-M",
    machineArg(vmm),
    ...["-accel", "tcg", "-cpu", "max", "-m", "512m", "-smp", "1"],
    ...["-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio"],
    ...["-kernel", "vmlinux", "-initrd", "initramfs.cpio.gz"],
    "-append",
    `earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t guest_cmd="${userNetCmd(bytes, toGuest, toHost)}"`,
    ...["-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0"],
    "-no-reboot",
  ], { cwd: dir, timeoutMs: BOOT_TIMEOUT_MS }).done;
  peer.kill();
  const evs = parsePeerEvents((await peer.done).out);
  const sent = evs.find((e) => e.event === "send");
  const recv = evs.find((e) => e.event === "recv");
  const r: UserNetResult = {
    toGuestMBps: sent?.event === "send" && sent.bytes === bytes && !sent.peerClosedEarly
      ? bytes / 1e3 / sent.ms
      : NaN,
    toHostMBps: recv?.event === "recv" && recv.bytes === bytes ? bytes / 1e3 / recv.ms : NaN,
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
}

/** The table: both directions, microvm.ts and QEMU side by side. */
export function userNetSection(ours: UserNetResult[], qemu: UserNetResult[] | null, mib: number): Section {
  const med = (rs: readonly UserNetResult[], f: (r: UserNetResult) => number) =>
    summarize(rs.filter((r) => r.ok).map(f));
  const tests: Array<[string, (r: UserNetResult) => number]> = [
    [`TCP guest → host, ${mib} MiB (MB/s)`, (r) => r.toHostMBps],
    [`TCP host → guest, ${mib} MiB (MB/s)`, (r) => r.toGuestMBps],
  ];
  const rows = tests.map(([name, f]) => {
    const o = med(ours, f);
    if (!qemu) return [name, fmtSummary(o, 2), "skipped", "n/a"];
    const q = med(qemu, f);
    return [name, fmtSummary(o, 2), fmtSummary(q, 2), fmtRatio(q.median, o.median)];
  });
  const notes = [
    `median / min / max of ${ours.length} boot(s) per VMM; vmlinux + initramfs, -accel tcg -cpu max, smp 1, ` +
    "512 MiB, virtio-net-device on -netdev user (libslirp in both), peer on 127.0.0.1 reached as 10.0.2.2.",
    "Ratio is QEMU/ours: how many times faster QEMU is.",
  ];
  if (!qemu) notes.push("QEMU not installed: skipped");
  for (const f of [...ours, ...(qemu ?? [])].filter((r) => !r.ok)) notes.push(`a boot failed: ${f.failure}`);
  return {
    title: "User-mode network (virtio-net + -netdev user, TCP through busybox nc)",
    headers: ["test", "microvm.ts", "QEMU 7.2", "QEMU/ours"],
    rows,
    notes,
  };
}

/** Run `runs` boots per VMM (interleaved) in the guest directory `dir`; returns the table. */
export async function runUserNetBench(opts: {
  dir: string;
  runs: number;
  mib: number;
  qemu: string | null;
  progress?: (msg: string) => void;
}): Promise<Section> {
  const ours: Vmm = { name: "microvm.ts", cmd: Deno.execPath(), prefix: ["run", "-A", MAIN_TS] };
  const o: UserNetResult[] = [];
  const q: UserNetResult[] | null = opts.qemu ? [] : null;
  for (let i = 0; i < opts.runs; i++) {
    o.push(await runUserNetBoot(ours, opts.dir, opts.mib << 20));
    opts.progress?.(`user net ${i + 1}/${opts.runs} microvm.ts: ${JSON.stringify(o.at(-1))}`);
    if (opts.qemu && q) {
      q.push(await runUserNetBoot({ name: "QEMU", cmd: opts.qemu, prefix: [] }, opts.dir, opts.mib << 20));
      opts.progress?.(`user net ${i + 1}/${opts.runs} QEMU: ${JSON.stringify(q.at(-1))}`);
    }
  }
  return userNetSection(o, q, opts.mib);
}

function flag(name: string, def: number): number {
  const i = Deno.args.indexOf(name);
  const v = i >= 0 ? Number(Deno.args[i + 1]) : def;
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`Invalid ${name}: "${Deno.args[i + 1]}"`);
  return v;
}

if (import.meta.main) {
  const runs = flag("--runs", 1);
  const mib = flag("--mib", 16);
  const qemu = Deno.args.includes("--no-qemu") ? null : qemuPath();
  const dir = await prepareGuestDir();
  try {
    const s = await runUserNetBench({ dir, runs, mib, qemu, progress: (m) => console.error(m) });
    console.log(renderSection(s));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
