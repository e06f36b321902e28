/**
 * The in-guest workload boot shared by the disk and MIPS benchmarks: vmlinux + initramfs, smp 1, with a
 * fresh zero-filled 64 MiB scratch image as /dev/vda. The guest's /init reads the whole disk
 * (GUEST-BLK-READ); `guest_cmd` then writes 16 MiB to it with `conv=fsync` and runs a CPU-bound busybox
 * awk loop, each timed with the guest's /proc/uptime and printed as GUEST-BLK-WRITE / GUEST-CPU-LOOP.
 * The awk loop runs 10x fewer iterations under microvm.ts than under QEMU (a rate is reported), so both
 * take long enough to time with /proc/uptime's 10 ms resolution without stretching the run.
 * @module
 */
import { blkReadMBps, oursVmm, qemuVmm, scratchImage, serialLine, type Vmm } from "./guest.ts";
import { timedRun } from "./proc.ts";

/** Bytes the write test writes (16 MiB). */
export const WRITE_BYTES = 16 << 20;
/** Iterations of the guest's awk loop per VMM. */
export const AWK_ITERATIONS = { "microvm.ts": 20_000, QEMU: 200_000 } as const;

/** The guest_cmd: time a 16 MiB fsync'd write and an `iterations`-step awk loop with /proc/uptime (no double quotes). */
export function workloadCmd(iterations: number): string {
  return [
    "a=$(cut -d' ' -f1 /proc/uptime)",
    `dd if=/dev/zero of=/dev/vda bs=1M count=${WRITE_BYTES >> 20} conv=fsync 2>/dev/null`,
    "b=$(cut -d' ' -f1 /proc/uptime)",
    `echo GUEST-BLK-WRITE bytes=${WRITE_BYTES} t0=$a t1=$b`,
    "a=$(cut -d' ' -f1 /proc/uptime)",
    `awk 'BEGIN{s=0;for(i=0;i<${iterations};i++)s+=i*i%7;print s}' >/dev/null`,
    "b=$(cut -d' ' -f1 /proc/uptime)",
    `echo GUEST-CPU-LOOP iterations=${iterations} t0=$a t1=$b`,
  ].join("; ");
}

/** What one workload boot measured (NaN where the guest did not report). */
export interface WorkloadResult {
  readMBps: number;
  writeMBps: number;
  /** awk loop iterations per second of guest time. */
  awkItersPerS: number;
  ok: boolean;
  failure?: string;
}

function span(out: string, tag: string): number {
  const m = new RegExp(`${tag} (?:bytes|iterations)=\\d+ t0=([\\d.]+) t1=([\\d.]+)`).exec(out);
  return m ? Number(m[2]) - Number(m[1]) : NaN;
}

/** Parse the workload's guest lines. */
export function parseWorkload(out: string): Omit<WorkloadResult, "ok"> {
  const w = span(out, "GUEST-BLK-WRITE");
  const c = span(out, "GUEST-CPU-LOOP");
  const n = Number(/GUEST-CPU-LOOP iterations=(\d+)/.exec(out)?.[1] ?? NaN);
  return {
    readMBps: blkReadMBps(out),
    writeMBps: w > 0 ? WRITE_BYTES / 1e6 / w : NaN,
    awkItersPerS: c > 0 ? n / c : NaN,
  };
}

/** Boot the workload once under `vmm` in `dir` (scratch.img is recreated first). */
export async function runWorkload(vmm: Vmm, dir: string): Promise<WorkloadResult> {
  await scratchImage(`${dir}/scratch.img`, 64 << 20);
  const args = serialLine(vmm, {
    kernel: "vmlinux",
    smp: 1,
    initramfs: true,
    drive: "scratch.img",
    append: `guest_cmd="${workloadCmd(AWK_ITERATIONS[vmm.name])}"`,
  });
  const r = await timedRun(vmm.cmd, args, { cwd: dir, marks: {}, timeoutMs: 300_000 });
  const p = parseWorkload(r.out);
  const ok = r.code === 0 && Number.isFinite(p.readMBps) && Number.isFinite(p.writeMBps) &&
    Number.isFinite(p.awkItersPerS);
  if (ok) return { ...p, ok };
  const last = r.out.trim().split("\n").slice(-1)[0] ?? "";
  return { ...p, ok, failure: `${r.timedOut ? "timeout" : `exit ${r.code}`}: ${last.slice(0, 120)}` };
}

/** Results of the workload boots, per VMM. */
export interface WorkloadSamples {
  ours: WorkloadResult[];
  qemu: WorkloadResult[] | null;
}

/** Run the workload `runs` times under microvm.ts and, when `qemu` is given, under QEMU (interleaved). */
export async function runWorkloads(
  opts: { dir: string; runs: number; qemu: string | null; progress?: (msg: string) => void },
): Promise<WorkloadSamples> {
  const res: WorkloadSamples = { ours: [], qemu: opts.qemu ? [] : null };
  for (let i = 0; i < opts.runs; i++) {
    const o = await runWorkload(oursVmm(), opts.dir);
    res.ours.push(o);
    opts.progress?.(`workload ${i + 1}/${opts.runs} microvm.ts: ${describe(o)}`);
    if (opts.qemu && res.qemu) {
      const q = await runWorkload(qemuVmm(opts.qemu), opts.dir);
      res.qemu.push(q);
      opts.progress?.(`workload ${i + 1}/${opts.runs} QEMU: ${describe(q)}`);
    }
  }
  return res;
}

function describe(r: WorkloadResult): string {
  if (!r.ok) return `FAILED (${r.failure})`;
  return `read ${r.readMBps.toFixed(1)} MB/s, write ${r.writeMBps.toFixed(1)} MB/s, awk ${
    r.awkItersPerS.toFixed(0)
  } it/s`;
}
