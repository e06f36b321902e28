/**
 * Boot-time benchmark: wall time from process start to the first kernel console line, to the guest's
 * GUEST-INIT-OK and to process exit, plus peak RSS, for the default guest's boot set-ups, under
 * microvm.ts and (when installed) QEMU 7.2 with TCG. Like guest/README.md's boot-time table.
 * Usage: deno run -A bench/boot.ts [runs=2]
 * @module
 */
import {
  type GuestLine,
  hvcLine,
  oursVmm,
  prepareGuestDir,
  qemuPath,
  qemuVmm,
  serialLine,
  type Vmm,
} from "./lib/guest.ts";
import { type TimedRun, timedRun } from "./lib/proc.ts";
import { fmt, fmtRatio, fmtSummary, renderSection, type Section, summarize } from "./lib/stats.ts";

/** One boot set-up of the table. */
export interface BootVariant {
  name: string;
  /** Arguments per VMM, or null when that VMM cannot run it (then `skipNote` says why). */
  line: (vmm: Vmm) => string[] | null;
  /** Marker of the first kernel line ("" = the first output byte). */
  kernelMark: string;
  skipNote?: string;
}

function serial(name: string, g: GuestLine): BootVariant {
  return { name, line: (v) => serialLine(v, g), kernelMark: "Linux version" };
}

/** The set-ups measured by default. */
export const BOOT_VARIANTS: readonly BootVariant[] = [
  serial("vmlinux + initramfs, smp 1", { kernel: "vmlinux", smp: 1, initramfs: true }),
  serial("vmlinux + initramfs, smp 2", { kernel: "vmlinux", smp: 2, initramfs: true }),
  serial("vmlinux + rootfs, smp 2", { kernel: "vmlinux", smp: 2, initramfs: false }),
  serial("bzImage + initramfs, smp 1", { kernel: "bzImage", smp: 1, initramfs: true }),
  serial("bzImage + initramfs, smp 2", { kernel: "bzImage", smp: 2, initramfs: true }),
  {
    name: "legacy off, hvc0 + rootfs, smp 2",
    line: (v) => v.name === "QEMU" ? null : hvcLine(v, 2),
    kernelMark: "",
    skipNote:
      "QEMU hangs on this line under TCG (no TSC-deadline timer, no kvm-clock: KVM-only, guest/README.md)",
  },
];

/** Samples of one (variant, VMM) pair. */
export interface BootSamples {
  kernelMs: number[];
  initMs: number[];
  exitMs: number[];
  rssMiB: number[];
  failures: string[];
}

function emptySamples(): BootSamples {
  return { kernelMs: [], initMs: [], exitMs: [], rssMiB: [], failures: [] };
}

/** Boot once and add the run's numbers to `s`. */
export async function bootOnce(
  vmm: Vmm,
  args: string[],
  opts: { cwd: string; kernelMark: string; timeoutMs?: number },
): Promise<TimedRun> {
  return await timedRun(vmm.cmd, args, {
    cwd: opts.cwd,
    marks: { kernel: opts.kernelMark, init: "GUEST-INIT-OK", reboot: "GUEST-REBOOT" },
    lastLine: "GUEST-REBOOT",
    timeoutMs: opts.timeoutMs ?? 180_000,
  });
}

function record(s: BootSamples, r: TimedRun): void {
  const ok = r.code === 0 && r.marks.init !== undefined && r.marks.reboot !== undefined;
  if (!ok) {
    const why = r.timedOut ? "timeout" : `exit ${r.code}`;
    const last = r.out.trim().split("\n").slice(-1)[0] ?? "";
    s.failures.push(`${why}: ${last.slice(0, 120)}`);
    return;
  }
  s.kernelMs.push(r.marks.kernel ?? NaN);
  s.initMs.push(r.marks.init);
  s.exitMs.push(r.exitMs);
  s.rssMiB.push(r.peakRssKiB / 1024);
}

/** Options of runBootBench. */
export interface BootBenchOptions {
  runs: number;
  /** QEMU binary, or null to skip the comparison. */
  qemu: string | null;
  /** Scratch directory from prepareGuestDir (made when absent). */
  dir?: string;
  variants?: readonly BootVariant[];
  progress?: (msg: string) => void;
}

/** Run the boot benchmark and return its table. */
export async function runBootBench(opts: BootBenchOptions): Promise<Section> {
  const own = opts.dir === undefined;
  const dir = opts.dir ?? await prepareGuestDir();
  try {
    return await bootTable(opts, dir);
  } finally {
    if (own) await Deno.remove(dir, { recursive: true });
  }
}

async function bootTable(opts: BootBenchOptions, dir: string): Promise<Section> {
  const variants = opts.variants ?? BOOT_VARIANTS;
  const vmms: Vmm[] = [oursVmm(), ...(opts.qemu ? [qemuVmm(opts.qemu)] : [])];
  const samples = new Map<string, BootSamples>();
  const key = (v: BootVariant, m: Vmm) => `${v.name}\u0000${m.name}`;
  for (let run = 0; run < opts.runs; run++) {
    for (const v of variants) {
      for (const m of vmms) {
        const args = v.line(m);
        if (!args) continue;
        const r = await bootOnce(m, args, { cwd: dir, kernelMark: v.kernelMark });
        let s = samples.get(key(v, m));
        if (!s) samples.set(key(v, m), s = emptySamples());
        record(s, r);
        opts.progress?.(
          `boot ${run + 1}/${opts.runs} ${v.name} ${m.name}: ` +
            (r.code === 0 ? `init ${fmt(r.marks.init ?? NaN)} ms, exit ${fmt(r.exitMs)} ms` : "FAILED"),
        );
      }
    }
  }
  const rows: string[][] = [];
  const notes: string[] = [
    `Wall ms from spawn, median / min / max of ${opts.runs} run(s); peak RSS = VmHWM of the VMM process (MiB).`,
    "Ratio rows are ours/QEMU (lower is better for us). `deno run` start-up (about 0.1-0.3 s) is in our numbers.",
    "Kernel line = `Linux version`; on hvc0 the console only appears when virtio-console is up (first output byte).",
  ];
  if (!opts.qemu) notes.push("QEMU not installed: skipped");
  for (const v of variants) {
    const mine = samples.get(key(v, vmms[0]));
    const theirs = opts.qemu ? samples.get(key(v, vmms[1])) : undefined;
    const line = (who: string, s: BootSamples | undefined) => {
      if (!s) return;
      rows.push([
        v.name,
        who,
        fmtSummary(summarize(s.kernelMs)),
        fmtSummary(summarize(s.initMs)),
        fmtSummary(summarize(s.exitMs)),
        fmt(summarize(s.rssMiB).median),
        `${s.kernelMs.length}/${s.kernelMs.length + s.failures.length}`,
      ]);
      for (const f of new Set(s.failures)) notes.push(`${v.name} (${who}) failed: ${f}`);
    };
    line("microvm.ts", mine);
    if (opts.qemu) {
      if (theirs) {
        line("QEMU 7.2", theirs);
        if (mine) {
          const r = (a: number[], b: number[]) => fmtRatio(summarize(a).median, summarize(b).median);
          rows.push([
            v.name,
            "ratio ours/QEMU",
            r(mine.kernelMs, theirs.kernelMs),
            r(mine.initMs, theirs.initMs),
            r(mine.exitMs, theirs.exitMs),
            r(mine.rssMiB, theirs.rssMiB),
            "",
          ]);
        }
      } else if (v.skipNote) {
        rows.push([v.name, "QEMU 7.2", "skipped", "skipped", "skipped", "", ""]);
        notes.push(`${v.name}: ${v.skipNote}.`);
      }
    }
  }
  return {
    title: "Boot time (TCG, -m 512m)",
    headers: ["variant", "VMM", "kernel line ms", "GUEST-INIT-OK ms", "exit ms", "peak RSS MiB", "ok"],
    rows,
    notes,
  };
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 2);
  const section = await runBootBench({ runs, qemu: qemuPath(), progress: (m) => console.error(m) });
  console.log(renderSection(section));
}
