/**
 * `fuzz --jobs N`: N Web Workers (shell/fuzz_worker.ts), each with its own machine and seed (seed + i),
 * sharing a corpus: an input one worker keeps is broadcast to the others, which run it and keep it when
 * it reaches coverage new to them. Findings are de-duplicated by key; progress and result aggregate all.
 * @module
 */
import { UserError } from "../core/types.ts";
import type { FuzzFinding, FuzzProgress, FuzzResult } from "../plugins/fuzz/engine.ts";
import type { Op } from "../plugins/fuzz/input.ts";
import type { FileCoverage } from "../plugins/fuzz/coverage.ts";
import type { FuzzWorkerOptions, FuzzWorkerResult } from "./fuzz_worker.ts";

/** Aggregate result of a parallel campaign, plus per-worker exchange counters. */
export interface ParallelResult extends FuzzResult {
  jobs: number;
  /** Per worker: inputs it published, received, and kept (new coverage there). */
  workers: { published: number; imported: number; importedKept: number; execs: number }[];
}

/** Run `jobs` workers with `opts` (worker i gets seed opts.seed + i; `opts.runs` is the total, split). */
export function fuzzParallel(
  opts: FuzzWorkerOptions,
  jobs: number,
  onProgress?: (p: FuzzProgress) => void,
): Promise<ParallelResult> {
  const start = performance.now();
  const workers: Worker[] = [];
  const last: FuzzProgress[] = [];
  const published: number[] = [];
  const results: FuzzWorkerResult[] = [];
  const findings = new Map<string, FuzzFinding>();
  const timeline: FuzzProgress[] = [];
  let done = 0;
  const aggregate = (): FuzzProgress => {
    const execs = last.reduce((n, p) => n + (p?.execs ?? 0), 0);
    const ms = performance.now() - start;
    return {
      execs,
      elapsedMs: ms,
      execsPerSec: ms > 0 ? execs / (ms / 1000) : 0,
      coverage: Math.max(0, ...last.map((p) => p?.coverage ?? 0)),
      corpus: last.reduce((n, p) => n + (p?.corpus ?? 0), 0),
      findings: Math.max(findings.size, ...last.map((p) => p?.findings ?? 0)),
    };
  };
  return new Promise((resolve, reject) => {
    for (let i = 0; i < jobs; i++) {
      const w = new Worker(new URL("./fuzz_worker.ts", import.meta.url), { type: "module" });
      workers.push(w);
      published.push(0);
      w.onerror = (e) => {
        e.preventDefault();
        for (const x of workers) x.terminate();
        reject(new Error(`fuzz worker ${i}: ${e.message}`));
      };
      w.onmessage = (e: MessageEvent) => {
        const m = e.data;
        if (m.type === "error") {
          for (const x of workers) x.terminate();
          reject(new UserError(m.message));
        } else if (m.type === "corpus") {
          published[i]++;
          for (let j = 0; j < jobs; j++) {
            if (j !== i) workers[j].postMessage({ type: "corpus", inputs: [m.input] });
          }
        } else if (m.type === "progress") {
          last[i] = m.p;
          const p = aggregate();
          timeline.push(p);
          onProgress?.(p);
        } else if (m.type === "done") {
          const r = m.r as FuzzWorkerResult;
          results[i] = r;
          last[i] = r.timeline[r.timeline.length - 1] ?? last[i];
          for (const f of r.findings) if (!findings.has(f.key)) findings.set(f.key, f);
          w.terminate();
          if (++done === jobs) resolve(merge());
        }
      };
      const runs = opts.runs === undefined
        ? {}
        : { runs: Math.floor(opts.runs / jobs) + (i < opts.runs % jobs ? 1 : 0) };
      w.postMessage({ type: "start", opts: { ...opts, seed: opts.seed + i, ...runs } });
    }
  });

  function merge(): ParallelResult {
    const features = new Set<string>();
    const corpus: Op[][] = [];
    const devOps = new Map<string, { ops: number; states: number }>();
    const files = new Map<string, FileCoverage>();
    let v8Blocks = 0;
    for (const r of results) {
      for (const f of r.features) features.add(f);
      corpus.push(...r.corpus);
      for (const d of r.devices) {
        const a = devOps.get(d.device) ?? { ops: 0, states: 0 };
        devOps.set(d.device, { ops: a.ops + d.ops, states: Math.max(a.states, d.states) });
      }
      // Per-file V8 coverage: the best worker's (block sets are not sent across threads).
      for (const f of r.v8Files) if ((files.get(f.file)?.share ?? -1) < f.share) files.set(f.file, f);
      v8Blocks = Math.max(v8Blocks, r.v8Blocks);
    }
    const elapsedMs = Math.max(...results.map((r) => r.elapsedMs));
    const final = aggregate();
    final.coverage = features.size;
    final.corpus = corpus.length;
    final.findings = findings.size;
    final.elapsedMs = elapsedMs;
    timeline.push(final);
    onProgress?.(final);
    return {
      execs: results.reduce((n, r) => n + r.execs, 0),
      elapsedMs,
      coverage: features.size,
      corpus,
      findings: [...findings.values()],
      timeline,
      devices: [...devOps].map(([device, d]) => ({ device, ...d })),
      targets: results[0].targets,
      v8: { blocks: v8Blocks, perFile: () => [...files.values()] },
      features: [...features],
      imported: results.reduce((n, r) => n + r.imported, 0),
      importedKept: results.reduce((n, r) => n + r.importedKept, 0),
      jobs,
      workers: results.map((r, i) => ({
        published: published[i],
        imported: r.imported,
        importedKept: r.importedKept,
        execs: r.execs,
      })),
    };
  }
}
