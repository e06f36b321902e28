/**
 * Guest instruction throughput of the software CPU (`-accel tcg`):
 * 1. micro loops (ALU, load/store, call/ret) in 64-bit long mode on the stand-alone harness board
 *    (core/cpu/harness.ts), with the JIT on and off (`-accel tcg,jit=off`): retired instructions (`icount`) per
 *    wall second, median of N timed runs after one calibration run;
 * 2. a whole boot of vmlinux + initramfs run in this process (shell/vm.ts buildVm, serial to a file):
 *    instructions per wall second and per process CPU second (idle HLT time included / excluded);
 * 3. a guest-side CPU-bound loop (busybox awk, from the shared workload boots) compared with QEMU.
 * Usage: deno run -A bench/mips.ts [runs=3]
 * @module
 */
import { linux64EntryState } from "../core/boot/bzimage.ts";
import { makeHarnessBoard } from "../core/cpu/harness.ts";
import { SoftCpuAccelerator } from "../core/cpu/mod.ts";
import { buildVm } from "../shell/vm.ts";
import { isCliAction, parseCommandLine } from "../shell/cli/mod.ts";
import { MICROVM_DEVICES } from "../devices/microvm.ts";
import { prepareGuestDir, qemuPath, serialLine } from "./lib/guest.ts";
import { fmt, fmtRatio, fmtSummary, renderSection, type Section, summarize } from "./lib/stats.ts";
import { runWorkloads, type WorkloadSamples } from "./lib/workload.ts";

/** Guest-physical address the loops are loaded at. */
const CODE_GPA = 0x100000;

/** A micro loop: `prologue` sets ECX to the iteration count (imm32 at `countAt`), the loop ends with UD2. */
export interface MicroLoop {
  name: string;
  code: number[];
  /** Byte offset of the imm32 iteration count. */
  countAt: number;
  /** Instructions retired per iteration. */
  perIteration: number;
}

/** The loops; each ends in UD2, which triple-faults (the boot IDT is empty) and stops the run. */
export const MICRO_LOOPS: readonly MicroLoop[] = [
  {
    name: "ALU (add/xor/inc/lea/dec/jnz)",
    code: [
      0xb9,
      0,
      0,
      0,
      0, // mov ecx, N
      0x48,
      0x01,
      0xd8, // L: add rax, rbx
      0x48,
      0x31,
      0xc2, // xor rdx, rax
      0x48,
      0xff,
      0xc3, // inc rbx
      0x48,
      0x8d,
      0x74,
      0x46,
      0x01, // lea rsi, [rsi+rax*2+1]
      0xff,
      0xc9, // dec ecx
      0x75,
      0xee, // jnz L
      0x0f,
      0x0b, // ud2
    ],
    countAt: 1,
    perIteration: 6,
  },
  {
    name: "load/store (64 KiB ring)",
    code: [
      0xb9,
      0,
      0,
      0,
      0, // mov ecx, N
      0xbb,
      0x00,
      0x00,
      0x20,
      0x00, // mov ebx, 0x200000
      0x31,
      0xff, // xor edi, edi
      0x48,
      0x8b,
      0x04,
      0x3b, // L: mov rax, [rbx+rdi]
      0x48,
      0x01,
      0xc8, // add rax, rcx
      0x48,
      0x89,
      0x44,
      0x3b,
      0x08, // mov [rbx+rdi+8], rax
      0x83,
      0xc7,
      0x10, // add edi, 16
      0x81,
      0xe7,
      0xf0,
      0xff,
      0x00,
      0x00, // and edi, 0xfff0
      0xff,
      0xc9, // dec ecx
      0x75,
      0xe7, // jnz L
      0x0f,
      0x0b, // ud2
    ],
    countAt: 1,
    perIteration: 7,
  },
  {
    name: "call/ret + push/pop",
    code: [
      0xb9,
      0,
      0,
      0,
      0, // mov ecx, N
      0xe8,
      0x06,
      0x00,
      0x00,
      0x00, // L: call F
      0xff,
      0xc9, // dec ecx
      0x75,
      0xf7, // jnz L
      0x0f,
      0x0b, // ud2
      0x53, // F: push rbx
      0x48,
      0x89,
      0xcb, // mov rbx, rcx
      0x83,
      0xe3,
      0x03, // and ebx, 3
      0x5b, // pop rbx
      0xc3, // ret
    ],
    countAt: 1,
    perIteration: 8,
  },
];

/** One run of a micro loop: instructions retired and wall seconds. */
export interface LoopRun {
  instructions: number;
  seconds: number;
  exit: string;
}

/** Run `loop` for `iterations` on a fresh harness board and software CPU. */
export async function runMicroLoop(
  loop: MicroLoop,
  iterations: number,
  translate: boolean,
): Promise<LoopRun> {
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20 });
  const code = new Uint8Array(loop.code);
  new DataView(code.buffer).setUint32(loop.countAt, iterations >>> 0, true);
  ram.write(CODE_GPA, code);
  const entry = linux64EntryState(ram, CODE_GPA);
  const accel = new SoftCpuAccelerator({ jit: translate });
  accel.init(board, entry);
  const t0 = performance.now();
  const exit = await accel.run();
  const seconds = (performance.now() - t0) / 1000;
  const instructions = accel.icount;
  accel.destroy();
  return { instructions, seconds, exit: exit.kind === "shutdown" ? exit.reason : exit.kind };
}

/** Process CPU seconds (user + system) of this process, from /proc/self/stat. */
function processCpuSeconds(): number {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Result of a whole in-process boot. */
export interface WholeBoot {
  instructions: number;
  wallS: number;
  cpuS: number;
  ok: boolean;
}

/** Boot vmlinux + initramfs (smp 1) in this process with the serial console in `dir`/serial.log. */
export async function wholeBoot(dir: string): Promise<WholeBoot> {
  const args = serialLine({ name: "microvm.ts", cmd: "", prefix: [] }, {
    kernel: "vmlinux",
    smp: 1,
    initramfs: true,
  })
    .map((a) => a === "stdio" ? `file:${dir}/serial.log` : a)
    .map((a) => a === "vmlinux" || a === "initramfs.cpio.gz" ? `${dir}/${a}` : a);
  const cfg = parseCommandLine(args, "microvm.ts", { devices: MICROVM_DEVICES });
  if (isCliAction(cfg)) throw new Error("whole-boot command line did not parse to a VM");
  const runner = await buildVm(cfg);
  const cpu0 = processCpuSeconds();
  const t0 = performance.now();
  const code = await runner.run();
  const wallS = (performance.now() - t0) / 1000;
  const cpuS = processCpuSeconds() - cpu0;
  const accel = runner.accel as SoftCpuAccelerator | null;
  const instructions = accel?.icount ?? NaN;
  runner.close();
  const log = await Deno.readTextFile(`${dir}/serial.log`).catch(() => "");
  return { instructions, wallS, cpuS, ok: code === 0 && log.includes("GUEST-REBOOT") };
}

/** Options of runMipsBench. */
export interface MipsBenchOptions {
  /** Timed runs per micro loop. */
  runs: number;
  /** Target seconds per timed micro-loop run (default 0.5). */
  targetS?: number;
  /** Scratch directory from prepareGuestDir; the whole-boot row is skipped without one. */
  dir?: string;
  /** Workload boots (guest awk loop); that row is skipped without them. */
  workloads?: WorkloadSamples;
  progress?: (msg: string) => void;
}

/** Run the MIPS benchmark and return its table. */
export async function runMipsBench(opts: MipsBenchOptions): Promise<Section> {
  const rows: string[][] = [];
  const notes: string[] = [];
  const target = opts.targetS ?? 0.5;
  for (const loop of MICRO_LOOPS) {
    for (const translate of [true, false]) {
      const probe = await runMicroLoop(loop, 200_000, translate);
      const expect = 200_000 * loop.perIteration;
      if (probe.exit !== "triple-fault" || Math.abs(probe.instructions - expect) > expect * 0.01) {
        notes.push(
          `${loop.name}: calibration run ended with ${probe.exit} after ${probe.instructions} instructions`,
        );
      }
      const rate = probe.instructions / Math.max(probe.seconds, 1e-3);
      const iters = Math.max(10_000, Math.min(0x7fffffff, Math.round(rate * target / loop.perIteration)));
      const mips: number[] = [];
      for (let i = 0; i < opts.runs; i++) {
        const r = await runMicroLoop(loop, iters, translate);
        mips.push(r.instructions / r.seconds / 1e6);
      }
      const s = summarize(mips);
      rows.push([
        `${loop.name}, JIT ${translate ? "on" : "off"}`,
        "microvm.ts",
        fmtSummary(s, 1),
        `${(iters * loop.perIteration / 1e6).toFixed(1)} M instr/run`,
      ]);
      opts.progress?.(`mips ${loop.name} jit=${translate}: ${fmt(s.median, 1)} MIPS`);
    }
  }
  if (opts.dir) {
    const b = await wholeBoot(opts.dir);
    const m = b.instructions / b.wallS / 1e6;
    const c = b.instructions / b.cpuS / 1e6;
    rows.push([
      "whole boot vmlinux + initramfs, smp 1 (per wall s)",
      "microvm.ts",
      fmt(m, 1),
      `${(b.instructions / 1e6).toFixed(0)} M instr in ${b.wallS.toFixed(1)} s`,
    ]);
    rows.push([
      "whole boot vmlinux + initramfs, smp 1 (per CPU s)",
      "microvm.ts",
      fmt(c, 1),
      `process CPU ${b.cpuS.toFixed(1)} s (HLT idle excluded)`,
    ]);
    if (!b.ok) notes.push("the in-process whole boot did not reach GUEST-REBOOT cleanly");
    opts.progress?.(`mips whole boot: ${fmt(m, 1)} MIPS wall, ${fmt(c, 1)} MIPS CPU`);
  }
  const w = opts.workloads;
  if (w) {
    const rate = (rs: typeof w.ours) => summarize(rs.filter((r) => r.ok).map((r) => r.awkItersPerS));
    const ours = rate(w.ours);
    rows.push(["guest busybox awk loop (iterations/s)", "microvm.ts", fmtSummary(ours, 0), ""]);
    if (w.qemu) {
      const q = rate(w.qemu);
      rows.push(["guest busybox awk loop (iterations/s)", "QEMU 7.2", fmtSummary(q, 0), ""]);
      rows.push([
        "guest busybox awk loop (iterations/s)",
        "ratio QEMU/ours",
        fmtRatio(q.median, ours.median),
        "",
      ]);
    } else notes.push("QEMU not installed: skipped");
  }
  notes.unshift(
    `Micro loops: median / min / max MIPS of ${opts.runs} run(s) of about ${target} s each, 64-bit long mode, ` +
      "harness board (no devices), a fresh software CPU per run (JIT caches start cold; blocks are compiled after core/cpu/jit.ts JIT_HOT visits).",
    "Whole boot: retired instructions / time in this process; per wall s includes HLT idle, per CPU s does not " +
      "(process CPU includes the JS engine's compiler and GC threads).",
    "awk loop: busybox awk in the guest timed with /proc/uptime (10x fewer iterations under microvm.ts); " +
      "QEMU's TCG exposes no instruction count, so QEMU appears only in this row.",
  );
  return {
    title: "Guest instruction throughput (software CPU)",
    headers: ["workload", "VMM", "MIPS (or rate)", "size"],
    rows,
    notes,
  };
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 3);
  const dir = await prepareGuestDir();
  try {
    const progress = (m: string) => console.error(m);
    const workloads = await runWorkloads({ dir, runs: 1, qemu: qemuPath(), progress });
    console.log(renderSection(await runMipsBench({ runs, dir, workloads, progress })));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
