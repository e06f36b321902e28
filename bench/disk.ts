/**
 * Disk benchmark: in-guest sequential read of a 64 MiB virtio-blk disk (the guest's own GUEST-BLK-READ,
 * `dd bs=1M`) and a 16 MiB `dd if=/dev/zero conv=fsync` write, in MB/s (10^6 bytes per second of guest
 * time), under microvm.ts and QEMU. The boots are the shared workload (bench/lib/workload.ts).
 * Usage: deno run -A bench/disk.ts [runs=2]
 * @module
 */
import { prepareGuestDir, qemuPath } from "./lib/guest.ts";
import { fmtRatio, fmtSummary, renderSection, type Section, summarize } from "./lib/stats.ts";
import { runWorkloads, type WorkloadResult, type WorkloadSamples, WRITE_BYTES } from "./lib/workload.ts";

function okValues(rs: readonly WorkloadResult[], f: (r: WorkloadResult) => number): number[] {
  return rs.filter((r) => r.ok).map(f);
}

/** The disk table from workload results. */
export function diskSection(w: WorkloadSamples): Section {
  const rows: string[][] = [];
  const tests: Array<[string, (r: WorkloadResult) => number]> = [
    ["sequential read 64 MiB (dd bs=1M)", (r) => r.readMBps],
    [`write ${WRITE_BYTES >> 20} MiB (dd bs=1M conv=fsync)`, (r) => r.writeMBps],
  ];
  for (const [name, f] of tests) {
    const ours = summarize(okValues(w.ours, f));
    rows.push([name, "microvm.ts", fmtSummary(ours, 1)]);
    if (w.qemu) {
      const q = summarize(okValues(w.qemu, f));
      rows.push([name, "QEMU 7.2", fmtSummary(q, 1)]);
      rows.push([name, "ratio QEMU/ours", fmtRatio(q.median, ours.median)]);
    }
  }
  const notes = [
    `MB/s of guest time (/proc/uptime), median / min / max of ${w.ours.length} boot(s); vmlinux + initramfs, ` +
    "smp 1, a zero-filled 64 MiB raw scratch image as /dev/vda (cache=writeback).",
    "Ratio rows are QEMU/ours (how many times faster QEMU is).",
  ];
  if (!w.qemu) notes.push("QEMU not installed: skipped");
  const failed = [...w.ours, ...(w.qemu ?? [])].filter((r) => !r.ok);
  for (const f of failed) notes.push(`a workload boot failed: ${f.failure}`);
  return { title: "Disk (virtio-blk, in-guest dd)", headers: ["test", "VMM", "MB/s"], rows, notes };
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 2);
  const dir = await prepareGuestDir();
  try {
    const w = await runWorkloads({ dir, runs, qemu: qemuPath(), progress: (m) => console.error(m) });
    console.log(renderSection(diskSection(w)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
