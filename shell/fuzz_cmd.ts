/**
 * The `fuzz` subcommand: `microvm.ts fuzz --target DEV|all --seed N --runs N|--time S --corpus DIR
 * --crashes DIR [--coverage v8|state] [--report DIR]`, `fuzz --replay FILE`, `fuzz --minimize FILE`.
 * Exit status: 0 with no finding, 1 with one (or on a usage error, printed as one line).
 * @module
 */
import { UserError } from "../core/types.ts";
import { type CoverageKind, Fuzzer, type FuzzFinding, type FuzzProgress } from "../plugins/fuzz/engine.ts";
import { findingKey, replayOps } from "../plugins/fuzz/exec.ts";
import { type Op, parseQtest, toQtest } from "../plugins/fuzz/input.ts";
import { minimize } from "../plugins/fuzz/minimize.ts";
import { coverageSvg, textReport } from "../plugins/fuzz/report.ts";
import { hashState } from "../plugins/fuzz/coverage.ts";
import { type Finding, FUZZ_ARGV_MODERN } from "../plugins/fuzz/machine.ts";
import "./fuzz_argv.ts"; // the fuzzer's command-line parser
import { fuzzParallel } from "./fuzz_par.ts";

const enc = new TextEncoder();

/** Parsed `fuzz` options. */
export interface FuzzCmdOptions {
  targets: string[];
  seed: number;
  runs?: number;
  timeSec?: number;
  corpus?: string;
  crashes?: string;
  replay?: string;
  minimize?: string;
  coverage: CoverageKind;
  maxOps: number;
  report?: string;
  fresh: boolean;
  quiet: boolean;
  /** Virtio-mmio version 2 transports (-global virtio-mmio.force-legacy=false). */
  modern: boolean;
  hangMs: number;
  /** Parallel workers sharing a corpus (1: today's single-thread, deterministic run). */
  jobs: number;
}

/** Usage text of `fuzz --help`. */
export const FUZZ_USAGE = `usage: microvm.ts fuzz [options]
  --target DEV[,DEV]  device ids, region names, virtio types (virtio-blk) or all (default all)
  --seed N            PRNG seed (default 1)
  --runs N            stop after N inputs
  --time S            stop after S seconds (default 60 when --runs is not given)
  --corpus DIR        seed inputs from DIR/*.qtest and save the corpus there
  --crashes DIR       write minimized reproducers as DIR/<device>/NNN-what.qtest
  --coverage v8|state feedback: V8 block coverage of devices/ (default) or device-state signatures
  --max-ops N         longest input (default 96)
  --report DIR        write coverage.svg and report.txt
  --fresh             a new machine per input (default: reset one)
  --modern            virtio-mmio version 2 transports (default: legacy, as QEMU's microvm)
  --hang-ms N         host ms one op may take before it counts as a hang (default 1000)
  --jobs N            N worker threads with a shared corpus, seeds N..N+jobs-1 (default: cores;
                      1: single thread, deterministic for a seed)
  --quiet             no progress line and no report on stdout
  --replay FILE       run a reproducer; exit 1 if it still finds something
  --minimize FILE     print a smaller reproducer for FILE's first finding
`;

function num(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || v === "" || !Number.isFinite(n) || n < 0) {
    throw new UserError(`fuzz: ${flag} expects a non-negative number, got "${v ?? ""}"`);
  }
  return n;
}

/** Parse the arguments after `fuzz`. */
export function parseFuzzArgs(argv: readonly string[]): FuzzCmdOptions | "help" {
  const o: FuzzCmdOptions = {
    targets: [],
    seed: 1,
    coverage: "v8",
    maxOps: 96,
    fresh: false,
    quiet: false,
    modern: false,
    hangMs: 1000,
    jobs: Math.max(1, navigator.hardwareConcurrency || 1),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf("=");
    const flag = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith("--") && eq > 0 ? a.slice(eq + 1) : undefined;
    const val = () => inline ?? argv[++i];
    switch (flag) {
      case "-h":
      case "--help":
        return "help";
      case "--target":
        o.targets.push(...(val() ?? "").split(",").filter((s) => s));
        break;
      case "--seed":
        o.seed = num(flag, val());
        break;
      case "--runs":
        o.runs = num(flag, val());
        break;
      case "--time":
        o.timeSec = num(flag, val());
        break;
      case "--corpus":
        o.corpus = val();
        break;
      case "--crashes":
        o.crashes = val();
        break;
      case "--replay":
        o.replay = val();
        break;
      case "--minimize":
        o.minimize = val();
        break;
      case "--coverage": {
        const v = val();
        if (v !== "v8" && v !== "state") {
          throw new UserError(`fuzz: --coverage expects v8 or state, got "${v ?? ""}"`);
        }
        o.coverage = v;
        break;
      }
      case "--max-ops":
        o.maxOps = Math.max(1, num(flag, val()));
        break;
      case "--report":
        o.report = val();
        break;
      case "--fresh":
        o.fresh = true;
        break;
      case "--modern":
        o.modern = true;
        break;
      case "--hang-ms":
        o.hangMs = Math.max(1, num(flag, val()));
        break;
      case "--jobs":
        o.jobs = Math.max(1, Math.floor(num(flag, val())));
        break;
      case "--quiet":
        o.quiet = true;
        break;
      default:
        throw new UserError(`fuzz: unknown option "${a}" (see fuzz --help)`);
    }
    for (const k of ["corpus", "crashes", "replay", "minimize", "report"] as const) {
      if (k in o && o[k] === undefined) throw new UserError(`fuzz: --${k} expects a path`);
    }
  }
  if (o.runs === undefined && o.timeSec === undefined) o.timeSec = 60;
  return o;
}

function readScript(path: string) {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UserError(`fuzz: cannot read "${path}": ${(e as Error).message}`);
  }
  return parseQtest(text);
}

function describe(f: Finding): string {
  return `${f.kind} in ${f.device} at op ${f.op + 1}: ${f.message}`;
}

/** Directory name for a finding's device: the virtio type for transports, else the device id. */
function deviceDir(device: string, virtio: Map<string, string>): string {
  return (virtio.get(device) || device).replace(/-device$/, "").replace(/[^A-Za-z0-9_.-]/g, "_");
}

function slug(f: Finding): string {
  const m = f.message.replace(/^(read|write) \S+ 0x[0-9a-f]+ size \d: /, "");
  return `${f.kind}-${m.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40)}`;
}

/** Write one reproducer as DIR/<device>/NNN-what.qtest; returns its path. */
export function writeReproducer(
  dir: string,
  ff: FuzzFinding,
  opts: { virtio: Map<string, string>; how: string; argv?: readonly string[] },
): string {
  const sub = `${dir}/${deviceDir(ff.finding.device, opts.virtio)}`;
  Deno.mkdirSync(sub, { recursive: true });
  let n = 1;
  for (const e of Deno.readDirSync(sub)) {
    const m = /^(\d+)-/.exec(e.name);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  const path = `${sub}/${String(n).padStart(3, "0")}-${slug(ff.finding)}.qtest`;
  const text = toQtest(ff.ops, {
    comments: [
      `symptom: ${describe(ff.finding)}`,
      `found by: ${opts.how}; minimized from ${ff.originalOps} to ${ff.ops.length} ops`,
      `replay: deno run -A main.ts fuzz --replay ${path}`,
    ],
    ...(opts.argv ? { argv: opts.argv } : {}),
  });
  Deno.writeTextFileSync(path, text);
  return path;
}

function loadCorpus(dir: string): Op[][] {
  const out: Op[][] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return out;
  }
  for (const e of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...loadCorpus(p));
    else if (e.name.endsWith(".qtest")) out.push(readScript(p).ops);
  }
  return out;
}

/** Run the `fuzz` subcommand; resolves to the exit status. */
export async function fuzzMain(argv: readonly string[]): Promise<number> {
  const out = (s: string) => Deno.stdout.writeSync(enc.encode(s));
  const err = (s: string) => Deno.stderr.writeSync(enc.encode(s));
  try {
    const o = parseFuzzArgs(argv);
    if (o === "help") {
      out(FUZZ_USAGE);
      return 0;
    }
    if (o.replay !== undefined) {
      const s = readScript(o.replay);
      const found = replayOps(s.ops, s.argv);
      if (found.length === 0) {
        out(`${o.replay}: ${s.ops.length} ops, no finding\n`);
        return 0;
      }
      for (const f of found) out(`${o.replay}: ${describe(f)}\n`);
      return 1;
    }
    if (o.minimize !== undefined) {
      const s = readScript(o.minimize);
      const found = replayOps(s.ops, s.argv, { hangMs: Infinity });
      if (found.length === 0) {
        throw new UserError(`fuzz: "${o.minimize}" does not reproduce anything to minimize`);
      }
      const key = findingKey(found[0]);
      const ops = await minimize(s.ops.slice(0, found[0].op + 1), key, s.argv ? { argv: s.argv } : {});
      out(toQtest(ops, {
        comments: [`symptom: ${describe(found[0])}`, `minimized from ${s.ops.length} to ${ops.length} ops`],
        ...(s.argv ? { argv: s.argv } : {}),
      }));
      return 1;
    }
    const seeds = o.corpus ? loadCorpus(o.corpus) : [];
    const tty = Deno.stderr.isTerminal();
    const onProgress = (p: FuzzProgress) => {
      if (o.quiet) return;
      const line =
        `#${p.execs} ${p.execsPerSec.toFixed(0)} execs/s  cov ${p.coverage}  corpus ${p.corpus}  ` +
        `findings ${p.findings}  ${(p.elapsedMs / 1000).toFixed(0)} s`;
      err(tty ? `\r${line}\x1b[K` : line + "\n");
    };
    const mArgv = o.modern ? FUZZ_ARGV_MODERN : undefined;
    const jobs = o.replay === undefined ? o.jobs : 1;
    const r = jobs > 1
      ? await fuzzParallel(
        {
          targets: o.targets,
          seed: o.seed,
          ...(o.runs !== undefined ? { runs: o.runs } : {}), // the total over all workers
          ...(o.timeSec !== undefined ? { timeSec: o.timeSec } : {}),
          coverage: o.coverage,
          maxOps: o.maxOps,
          hangMs: o.hangMs,
          fresh: o.fresh,
          ...(mArgv ? { argv: mArgv } : {}),
          seeds,
        },
        jobs,
        onProgress,
      )
      : await new Fuzzer({
        targets: o.targets,
        seed: o.seed,
        ...(o.runs !== undefined ? { runs: o.runs } : {}),
        ...(o.timeSec !== undefined ? { timeSec: o.timeSec } : {}),
        coverage: o.coverage,
        maxOps: o.maxOps,
        seeds,
        onProgress,
        fresh: o.fresh,
        hangMs: o.hangMs,
        ...(mArgv ? { argv: mArgv } : {}),
      }).run();
    if (tty && !o.quiet) err("\n");
    const virtio = new Map(r.targets.filter((t) => t.virtio).map((t) => [t.device, t.virtio!]));
    const how =
      `microvm.ts fuzz --target ${o.targets.join(",") || "all"} --seed ${o.seed} --coverage ${o.coverage}` +
      (o.modern ? " --modern" : "");
    for (const f of r.findings) {
      out(`FINDING ${describe(f.finding)}\n`);
      if (o.crashes) {
        out(
          `  reproducer: ${
            writeReproducer(o.crashes, f, { virtio, how, ...(o.modern ? { argv: FUZZ_ARGV_MODERN } : {}) })
          }\n`,
        );
      } else out(toQtest(f.ops).replace(/^/gm, "  "));
    }
    if (o.corpus) {
      Deno.mkdirSync(o.corpus, { recursive: true });
      for (const c of r.corpus) {
        Deno.writeTextFileSync(
          `${o.corpus}/${hashState(toQtest(c)).toString(16).padStart(8, "0")}.qtest`,
          toQtest(c),
        );
      }
    }
    const rep = textReport(r, { coverage: o.coverage, seed: o.seed });
    if (!o.quiet) out(rep);
    if (o.report) {
      Deno.mkdirSync(o.report, { recursive: true });
      Deno.writeTextFileSync(`${o.report}/report.txt`, rep);
      Deno.writeTextFileSync(
        `${o.report}/coverage.svg`,
        coverageSvg(r.timeline, `microvm.ts fuzz: ${o.coverage} feedback, seed ${o.seed}`),
      );
    }
    return r.findings.length ? 1 : 0;
  } catch (e) {
    if (e instanceof UserError) {
      err(`microvm.ts: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) Deno.exit(await fuzzMain(Deno.args));
