/**
 * The fuzzing loop (QEMU generic-fuzz without libFuzzer): generate or mutate an op sequence, run it on a
 * fresh machine, keep it when it reaches new coverage, minimize and record every new finding.
 * @module
 */
import { Prng } from "../_prng.ts";
import type { Op } from "./input.ts";
import { buildFuzzMachine, type Finding, FUZZ_ARGV, type FuzzMachine, resetFuzzMachine } from "./machine.ts";
import { type FuzzSnapshot, restoreFuzzSnapshot, takeFuzzSnapshot } from "./snapshot.ts";
import { findingKey, runOps } from "./exec.ts";
import { devicesById, stateFeature, V8Coverage } from "./coverage.ts";
import { OpGen, selectTargets, type Target } from "./gen.ts";
import { minimize } from "./minimize.ts";

/** Inputs per V8 coverage take. */
const V8_BATCH = 16;

/** Coverage feedback kind. */
export type CoverageKind = "v8" | "state";

/** Options of `new Fuzzer`. */
export interface FuzzOptions {
  /** `--target` names ([] or ["all"]: everything). */
  targets: readonly string[];
  seed: number;
  /** Stop after this many executions. */
  runs?: number;
  /** Stop after this many seconds (host time). */
  timeSec?: number;
  coverage: CoverageKind;
  /** Longest input in ops. Default 96. */
  maxOps?: number;
  /** Per-op host time budget (ms) before a "hang". Default 250. */
  hangMs?: number;
  /** Machine command line (default FUZZ_ARGV). */
  argv?: readonly string[];
  /** Inputs to start from (corpus directory, seeds). */
  seeds?: readonly Op[][];
  /** Progress callback, about once per `progressMs`. */
  onProgress?: (p: FuzzProgress) => void;
  progressMs?: number;
  /** Host clock in ms (default performance.now). */
  now?: () => number;
  /** Minimize findings before reporting (default true). */
  minimize?: boolean;
  /** A new machine per input instead of a reset one (slower; default false). */
  fresh?: boolean;
  /** How the reused machine is reset between inputs: from an in-memory snapshot (default) or by system_reset. */
  reset?: "snapshot" | "system";
  /** Called when an input of this run (not an imported one) joins the corpus (parallel workers publish it). */
  onCorpus?: (input: Op[]) => void;
  /** Called every `exchangeEvery` execs (default 32): inputs other workers found, to run and maybe keep. */
  exchange?: () => Promise<Op[][]>;
  exchangeEvery?: number;
  /** Called on each new machine (tests add deliberately buggy regions). */
  prepare?: (fm: FuzzMachine) => void;
}

/** A progress sample (also the points of the coverage-over-time plot). */
export interface FuzzProgress {
  execs: number;
  elapsedMs: number;
  execsPerSec: number;
  /** Features covered (blocks with v8, device-state signatures with state). */
  coverage: number;
  corpus: number;
  findings: number;
}

/** A distinct finding with its minimized input. */
export interface FuzzFinding {
  finding: Finding;
  key: string;
  ops: Op[];
  /** Ops before minimization. */
  originalOps: number;
}

/** Per-device counters. */
export interface DeviceStats {
  device: string;
  /** Accesses generated towards it. */
  ops: number;
  /** Distinct device-state signatures seen (state feedback only, else 0). */
  states: number;
}

/** Outcome of a campaign. */
export interface FuzzResult {
  execs: number;
  elapsedMs: number;
  coverage: number;
  corpus: Op[][];
  findings: FuzzFinding[];
  timeline: FuzzProgress[];
  devices: DeviceStats[];
  targets: Target[];
  /** V8 block coverage of devices/ over the campaign (per-file table; the common yardstick). */
  v8: Pick<V8Coverage, "blocks" | "perFile">;
  /** Coverage features (block or state signatures) reached. */
  features: string[];
  /** Inputs received through `exchange`, and how many of them reached coverage new here (joined the corpus). */
  imported: number;
  importedKept: number;
}

/** The fuzzer. `await new Fuzzer(opts).run()`. */
export class Fuzzer {
  readonly #o: FuzzOptions;
  readonly #rng: Prng;
  readonly #now: () => number;
  readonly #features = new Set<string>();
  readonly #corpus: Op[][] = [];
  readonly #findings = new Map<string, FuzzFinding>();
  readonly #timeline: FuzzProgress[] = [];
  readonly #devOps = new Map<string, number>();
  readonly #devStates = new Map<string, Set<string>>();
  #v8!: V8Coverage;
  #gen!: OpGen;
  #targets: Target[] = [];
  #owner = new Map<number, string>();

  constructor(opts: FuzzOptions) {
    this.#o = opts;
    this.#rng = new Prng(opts.seed);
    this.#now = opts.now ?? (() => performance.now());
  }

  #pool: FuzzMachine | null = null;
  #snap: FuzzSnapshot | null = null;

  #build(): FuzzMachine {
    if (this.#o.fresh || this.#pool === null) {
      this.#pool = buildFuzzMachine(this.#o.argv ?? FUZZ_ARGV);
      this.#o.prepare?.(this.#pool);
      // Every later input starts from this snapshot (only what an input changed is put back).
      if (!this.#o.fresh && this.#o.reset !== "system") this.#snap = takeFuzzSnapshot(this.#pool);
      return this.#pool;
    }
    if (this.#snap) restoreFuzzSnapshot(this.#pool, this.#snap);
    else resetFuzzMachine(this.#pool);
    return this.#pool;
  }

  /** Run the campaign. */
  async run(): Promise<FuzzResult> {
    const o = this.#o;
    const probe = this.#build();
    this.#targets = selectTargets(probe, o.targets);
    this.#gen = new OpGen(this.#targets, this.#rng, probe.vm.ram.size);
    for (const t of this.#targets) this.#devOps.set(t.device, 0);
    // V8 block coverage always runs: it is the feedback in "v8" mode and the common yardstick otherwise.
    this.#v8 = new V8Coverage();
    await this.#v8.start();
    await this.#v8.take();
    const maxOps = o.maxOps ?? 96;
    const start = this.#now();
    const runs = o.runs ?? Infinity;
    const deadline = o.timeSec !== undefined ? start + o.timeSec * 1000 : Infinity;
    const progressMs = o.progressMs ?? 1000;
    let lastProgress = start;
    let execs = 0;
    const pending = [...(o.seeds ?? [])];
    const every = o.exchangeEvery ?? 32;
    while (execs < runs && this.#now() < deadline) {
      if (o.exchange && execs % every === 0) {
        for (const inp of await o.exchange()) {
          this.#imports.add(inp);
          this.#imported++;
          pending.push(inp);
        }
      }
      let input: Op[];
      if (pending.length) input = pending.shift()!;
      else if (this.#corpus.length === 0 || this.#rng.chance(0.1)) {
        input = this.#gen.input(4 + this.#rng.below(24));
      } else {
        const parent = this.#pickParent();
        const other = this.#corpus.length > 1 ? this.#rng.pick(this.#corpus) : null;
        input = this.#gen.mutate(parent, other, maxOps);
      }
      await this.#exec(input, true);
      execs++;
      if (this.#batch.length >= V8_BATCH) await this.#flushBatch();
      const t = this.#now();
      if (t - lastProgress >= progressMs) {
        lastProgress = t;
        const p = this.#progress(execs, t - start);
        this.#timeline.push(p);
        o.onProgress?.(p);
      }
    }
    await this.#flushBatch();
    const elapsed = this.#now() - start;
    if (o.coverage !== "v8") await this.#v8.take();
    await this.#v8.stop();
    const last = this.#progress(execs, elapsed);
    this.#timeline.push(last);
    o.onProgress?.(last);
    return {
      execs,
      elapsedMs: elapsed,
      coverage: this.#features.size,
      corpus: this.#corpus,
      findings: [...this.#findings.values()],
      timeline: this.#timeline,
      devices: [...this.#devOps].map(([device, ops]) => ({
        device,
        ops,
        states: this.#devStates.get(device)?.size ?? 0,
      })),
      targets: this.#targets,
      v8: this.#v8,
      features: [...this.#features],
      imported: this.#imported,
      importedKept: this.#importedKept,
    };
  }

  /** Newer corpus entries are picked more often (they hold the latest coverage). */
  #pickParent(): Op[] {
    const n = this.#corpus.length;
    const i = this.#rng.chance(0.5) ? n - 1 - this.#rng.below(Math.min(n, 8)) : this.#rng.below(n);
    return this.#corpus[i];
  }

  #progress(execs: number, ms: number): FuzzProgress {
    return {
      execs,
      elapsedMs: ms,
      execsPerSec: ms > 0 ? execs / (ms / 1000) : 0,
      coverage: this.#features.size,
      corpus: this.#corpus.length,
      findings: this.#findings.size,
    };
  }

  #ownerOf(fm: FuzzMachine, op: Op): string | null {
    if (op.op === "mem" || op.op === "step") return null;
    const space = op.op === "out" || op.op === "in" ? 0 : 1;
    for (const t of this.#targets) {
      if ((t.space === "io" ? 0 : 1) === space && op.addr >= t.start && op.addr < t.start + t.size) {
        return t.device;
      }
    }
    void fm;
    return null;
  }

  /** Add `feats` to the coverage; `input` joins the corpus when one was new and `keep` holds. */
  #consider(input: Op[], feats: readonly string[], keep: boolean): boolean {
    let fresh = false;
    for (const f of feats) {
      if (!this.#features.has(f)) {
        this.#features.add(f);
        fresh = true;
      }
    }
    if (fresh && keep) {
      this.#corpus.push(input);
      if (this.#imports.has(input)) this.#importedKept++;
      else this.#o.onCorpus?.(input);
    }
    return fresh;
  }

  readonly #imports = new WeakSet<Op[]>();
  #imported = 0;
  #importedKept = 0;

  /** Inputs run since the last V8 coverage take ("v8" feedback). */
  #batch: { input: Op[]; keep: boolean }[] = [];

  /**
   * Take V8 coverage for the batch; when it holds a new block, re-run the batch's inputs one take each
   * (runs are deterministic from the snapshot) so that exactly the inputs that reached new blocks join
   * the corpus, as with one take per input.
   */
  async #flushBatch(): Promise<void> {
    if (this.#o.coverage !== "v8" || this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    const feats = await this.#v8.take();
    if (!feats.some((f) => !this.#features.has(f))) return;
    if (batch.length === 1) {
      this.#consider(batch[0].input, feats, batch[0].keep);
      return;
    }
    for (const { input, keep } of batch) {
      runOps(this.#build(), input, { hangMs: Infinity, now: this.#now });
      this.#consider(input, await this.#v8.take(), keep);
    }
    this.#consider(batch[0].input, feats, false);
  }

  async #exec(input: Op[], record: boolean): Promise<void> {
    const fm = this.#build();
    const feats: string[] = [];
    const state = this.#o.coverage === "state";
    const devs = state ? devicesById(fm) : null;
    const findings = runOps(fm, input, {
      hangMs: this.#o.hangMs ?? 250,
      now: this.#now,
      afterOp: (m, op) => {
        const owner = this.#ownerOf(m, op);
        if (owner !== null && record) this.#devOps.set(owner, (this.#devOps.get(owner) ?? 0) + 1);
        if (!devs) return;
        const touched = owner !== null ? [owner] : op.op === "step" ? [...devs.keys()] : [];
        for (const id of touched) {
          const d = devs.get(id);
          if (!d) continue;
          const f = stateFeature(id, d);
          feats.push(f);
          let s = this.#devStates.get(id);
          if (!s) this.#devStates.set(id, s = new Set());
          s.add(f);
        }
      },
    });
    if (this.#o.coverage === "v8") {
      // One coverage take per batch of inputs (a take walks every script V8 has: most of an exec's cost).
      this.#batch.push({ input, keep: findings.length === 0 });
    }
    this.#consider(input, feats, findings.length === 0);
    for (const f of findings) {
      const key = findingKey(f);
      if (this.#findings.has(key)) continue;
      const ops = this.#o.minimize === false
        ? input.slice(0, f.op + 1)
        : await minimize(input.slice(0, f.op + 1), key, {
          ...(this.#o.argv ? { argv: this.#o.argv } : {}),
          ...(this.#o.prepare ? { prepare: this.#o.prepare } : {}),
        });
      this.#findings.set(key, { finding: f, key, ops, originalOps: input.length });
    }
  }
}
