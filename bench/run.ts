/**
 * `deno task bench`: run every benchmark (devices, MIPS, boot, disk, compile check), print the tables
 * and write them with the date and machine to bench/results.md. QEMU (qemu-system-x86_64, Debian's
 * qemu-system-x86) is the yardstick when installed; without it only our numbers are printed.
 * Usage: deno run -A bench/run.ts [--runs N] [--only boot,mips,disk,net,usernet,devices,compile] [--no-qemu]
 *        [--out FILE|-] (default runs 2: about 5 minutes on a 2-core machine)
 * @module
 */
import { runBootBench } from "./boot.ts";
import { compileCheck } from "./compile_check.ts";
import { runDeviceBench } from "./devices.ts";
import { netSection, runNetBench } from "./net.ts";
import { runUserNetBench } from "./net_user.ts";
import { diskSection } from "./disk.ts";
import { runMipsBench } from "./mips.ts";
import { prepareGuestDir, qemuPath } from "./lib/guest.ts";
import { renderSection, type Section } from "./lib/stats.ts";
import { runWorkloads, type WorkloadSamples } from "./lib/workload.ts";

const ALL = ["devices", "mips", "boot", "disk", "net", "usernet", "compile"] as const;
type Part = typeof ALL[number];

/** Parsed command line of the runner. */
export interface BenchArgs {
  runs: number;
  only: Set<Part>;
  qemu: boolean;
  out: string;
}

/** Parse the runner's arguments; throws with a one-line message on a bad one. */
export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const a: BenchArgs = {
    runs: 2,
    only: new Set(ALL),
    qemu: true,
    out: new URL("./results.md", import.meta.url).pathname,
  };
  for (let i = 0; i < argv.length; i++) {
    const w = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${w} needs a value`);
      return v;
    };
    if (w === "--runs") {
      a.runs = Number(value());
      if (!Number.isInteger(a.runs) || a.runs < 1) throw new Error("--runs must be a positive integer");
    } else if (w === "--only") {
      const parts = value().split(",");
      for (const p of parts) {
        if (!(ALL as readonly string[]).includes(p)) {
          throw new Error(`unknown part '${p}' (${ALL.join(", ")})`);
        }
      }
      a.only = new Set(parts as Part[]);
    } else if (w === "--no-qemu") a.qemu = false;
    else if (w === "--out") a.out = value();
    else throw new Error(`unknown argument '${w}'`);
  }
  return a;
}

async function commandLine(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return new TextDecoder().decode(r.stdout).trim().split("\n")[0] ?? "";
  } catch {
    return "";
  }
}

function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}

/** Date, CPU, cores, memory, load, Deno and QEMU versions. */
async function machineHeader(qemu: string | null): Promise<string[]> {
  let cpu = "unknown CPU";
  let memGiB = NaN;
  try {
    cpu = /model name\s*:\s*(.*)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ?? cpu;
    memGiB = Number(/MemTotal:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1]) / 1048576;
  } catch {
    // not Linux
  }
  const load = loadAverage();
  return [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${cpu}, ${navigator.hardwareConcurrency} cores, ${memGiB.toFixed(1)} GiB RAM, ` +
    `${Deno.build.os}/${Deno.build.arch}, load average at start ${load}`,
    `- runtime: Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`,
    `- yardstick: ${qemu ? await commandLine(qemu, ["--version"]) : "QEMU not installed: skipped"}`,
  ];
}

/** Run the selected benchmarks; returns the markdown report. */
export async function runAll(a: BenchArgs, progress: (m: string) => void): Promise<string> {
  const qemu = a.qemu ? qemuPath() : null;
  if (a.qemu && !qemu) progress("QEMU not installed: skipped (apt-get install qemu-system-x86 to compare)");
  const header = await machineHeader(qemu);
  const sections: Section[] = [];
  const emit = (s: Section) => {
    sections.push(s);
    console.log(renderSection(s));
  };
  const t0 = performance.now();
  const needGuest = a.only.has("boot") || a.only.has("disk") || a.only.has("mips") || a.only.has("net") ||
    a.only.has("usernet");
  const dir = needGuest ? await prepareGuestDir() : undefined;
  try {
    if (a.only.has("devices")) emit(runDeviceBench({ runs: 3, progress }));
    let workloads: WorkloadSamples | undefined;
    if (dir && (a.only.has("disk") || a.only.has("mips"))) {
      workloads = await runWorkloads({ dir, runs: a.runs, qemu, progress });
    }
    if (a.only.has("mips")) {
      emit(
        await runMipsBench({
          runs: 3,
          ...(dir ? { dir } : {}),
          ...(workloads ? { workloads } : {}),
          progress,
        }),
      );
    }
    if (a.only.has("disk") && workloads) emit(diskSection(workloads));
    if (a.only.has("boot")) {
      emit(await runBootBench({ runs: a.runs, qemu, ...(dir ? { dir } : {}), progress }));
    }
    if (a.only.has("net") && dir) {
      // Needs root and /dev/net/tun; prints one SKIP line otherwise.
      emit(netSection(await runNetBench({ dir, runs: a.runs, mib: 32, smp: 1, qemu })));
    }
    if (a.only.has("usernet") && dir) {
      // -netdev user (libslirp) on both sides: no root needed.
      emit(await runUserNetBench({ dir, runs: a.runs, mib: 16, qemu, progress }));
    }
    if (a.only.has("compile")) {
      const c = await compileCheck();
      emit({
        title: "deno task compile",
        headers: ["check", "result"],
        rows: [["deno task compile", `${c.status}: ${c.message}`]],
        notes: c.warnings,
      });
    }
  } finally {
    if (dir) await Deno.remove(dir, { recursive: true });
  }
  const total = (performance.now() - t0) / 1000;
  return [
    "# microvm.ts benchmark results",
    "",
    ...header,
    `- command: deno task bench ${Deno.args.join(" ")}`.trimEnd() + ` (took ${total.toFixed(0)} s, ` +
    `load average at end ${loadAverage()})`,
    "",
    ...sections.map(renderSection),
  ].join("\n");
}

if (import.meta.main) {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(Deno.args);
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    Deno.exit(2);
  }
  const report = await runAll(args, (m) => console.error(`[bench] ${m}`));
  if (args.out !== "-") {
    await Deno.writeTextFile(args.out, report);
    console.error(`[bench] wrote ${args.out}`);
  }
}
