/**
 * One `fuzz --jobs N` worker: a whole fuzz machine and Fuzzer in a Web Worker. Messages:
 * in  {type:"start", opts: FuzzWorkerOptions}, {type:"corpus", inputs: Op[][]} (other workers' finds);
 * out {type:"corpus", input}, {type:"progress", p}, {type:"finding", f}, {type:"done", r: FuzzWorkerResult}.
 * @module
 */
import "./fuzz_argv.ts"; // the fuzzer's command-line parser (plugins/ may not import shell/)
import { type CoverageKind, Fuzzer, type FuzzFinding, type FuzzProgress } from "../plugins/fuzz/engine.ts";
import type { Op } from "../plugins/fuzz/input.ts";
import { UserError } from "../core/types.ts";
import type { FuzzMachine } from "../plugins/fuzz/machine.ts";
import type { FileCoverage } from "../plugins/fuzz/coverage.ts";
import type { Target } from "../plugins/fuzz/gen.ts";

/** What the main thread sends to start a worker (structured-clonable). */
export interface FuzzWorkerOptions {
  targets: string[];
  seed: number;
  runs?: number;
  timeSec?: number;
  coverage: CoverageKind;
  maxOps: number;
  hangMs: number;
  fresh: boolean;
  argv?: readonly string[];
  seeds: Op[][];
  /** URL of a module exporting `prepare(fm)` (tests add deliberately buggy regions). */
  prepareModule?: string;
  progressMs?: number;
}

/** A worker's result (FuzzResult less what cannot cross a thread). */
export interface FuzzWorkerResult {
  execs: number;
  elapsedMs: number;
  features: string[];
  corpus: Op[][];
  findings: FuzzFinding[];
  timeline: FuzzProgress[];
  devices: { device: string; ops: number; states: number }[];
  v8Blocks: number;
  v8Files: FileCoverage[];
  imported: number;
  importedKept: number;
  targets: Target[];
}

// deno-lint-ignore no-explicit-any
const self = globalThis as any;
let inbox: Op[][] = [];

self.onmessage = async (e: MessageEvent) => {
  const m = e.data;
  if (m.type === "corpus") {
    inbox.push(...(m.inputs as Op[][]));
    return;
  }
  if (m.type !== "start") return;
  try {
    await start(m.opts as FuzzWorkerOptions);
  } catch (err) {
    // A user error (an unknown --target) comes back as one line; anything else as a worker error.
    if (!(err instanceof UserError)) throw err;
    self.postMessage({ type: "error", message: err.message });
    self.close();
  }
};

async function start(o: FuzzWorkerOptions): Promise<void> {
  const prepare = o.prepareModule
    ? (await import(o.prepareModule)).prepare as (fm: FuzzMachine) => void
    : undefined;
  const r = await new Fuzzer({
    targets: o.targets,
    seed: o.seed,
    ...(o.runs !== undefined ? { runs: o.runs } : {}),
    ...(o.timeSec !== undefined ? { timeSec: o.timeSec } : {}),
    coverage: o.coverage,
    maxOps: o.maxOps,
    hangMs: o.hangMs,
    fresh: o.fresh,
    ...(o.argv ? { argv: o.argv } : {}),
    seeds: o.seeds,
    ...(prepare ? { prepare } : {}),
    ...(o.progressMs !== undefined ? { progressMs: o.progressMs } : {}),
    onProgress: (p) => self.postMessage({ type: "progress", p }),
    onCorpus: (input) => self.postMessage({ type: "corpus", input }),
    // A macrotask turn lets the other workers' inputs arrive.
    exchange: async () => {
      await new Promise((res) => setTimeout(res, 0));
      const got = inbox;
      inbox = [];
      return got;
    },
  }).run();
  const res: FuzzWorkerResult = {
    execs: r.execs,
    elapsedMs: r.elapsedMs,
    features: r.features,
    corpus: r.corpus,
    findings: r.findings,
    timeline: r.timeline,
    devices: r.devices,
    v8Blocks: r.v8.blocks,
    v8Files: r.v8.perFile(),
    imported: r.imported,
    importedKept: r.importedKept,
    targets: r.targets,
  };
  self.postMessage({ type: "done", r: res });
  self.close();
}
