/**
 * Running one input on a fuzz machine: ops go through the same dispatch as the CPU's accesses; findings
 * (device exceptions, broken invariants, slow ops) land in `fm.findings`.
 * @module
 */
import type { Op } from "./input.ts";
import { buildFuzzMachine, type Finding, type FuzzMachine } from "./machine.ts";
import { devicesById } from "./coverage.ts";

/** Options of `runOps`. */
export interface RunOptions {
  /** An op taking longer than this (host ms) is a "hang" finding. Default 250. */
  hangMs?: number;
  /** Host clock in ms (default performance.now). */
  now?: () => number;
  /** Called after each op with its index (coverage signatures). */
  afterOp?: (fm: FuzzMachine, op: Op, index: number) => void;
  /** Called on a fresh machine before replaying (`replayOps`). */
  prepare?: (fm: FuzzMachine) => void;
  /** A device whose saveState() grows past this many JSON chars is an "unbounded growth" finding. Default 4 MiB. */
  maxStateChars?: number;
}

/** Run `ops` on `fm`; returns the findings of this run. */
export function runOps(fm: FuzzMachine, ops: readonly Op[], opts: RunOptions = {}): Finding[] {
  const hangMs = opts.hangMs ?? 250;
  const now = opts.now ?? (() => performance.now());
  const vm = fm.vm;
  fm.findings.length = 0;
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i];
    fm.opIndex = i;
    const t0 = now();
    try {
      switch (o.op) {
        case "out":
          vm.io.write(o.addr, o.size, o.value);
          break;
        case "in":
          vm.io.read(o.addr, o.size);
          break;
        case "write":
          vm.memory.write(o.addr, o.size, o.value);
          break;
        case "read":
          vm.memory.read(o.addr, o.size);
          break;
        case "mem":
          if (!vm.ram.write(o.addr, o.data)) {
            for (let k = 0; k < o.data.length; k++) vm.memory.write(o.addr + k, 1, o.data[k]);
          }
          break;
        case "step":
          if (o.ns < 0) fm.clock.warp();
          else fm.clock.step(o.ns);
          break;
      }
    } catch (err) {
      // Dispatch catches device errors; what reaches here escaped the clock or the RAM API.
      fm.findings.push({
        kind: "crash",
        device: o.op === "step" ? "clock" : "dispatch",
        message: `${o.op} threw: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
        op: i,
      });
    }
    const dt = now() - t0;
    if (dt > hangMs) {
      fm.findings.push({
        kind: "hang",
        device: o.op,
        message: `op took ${Math.round(dt)} ms (budget ${hangMs} ms)`,
        op: i,
      });
    }
    opts.afterOp?.(fm, o, i);
    if (fm.findings.length) break;
  }
  if (fm.findings.length === 0) checkState(fm, opts.maxStateChars ?? 4 << 20, ops.length - 1);
  return fm.findings.slice();
}

function json(v: unknown): string {
  return JSON.stringify(
    v,
    (_k, x) =>
      typeof x === "bigint" ? `${x}n` : ArrayBuffer.isView(x) ? Array.from(x as Uint8Array).join(",") : x,
  ) ?? "";
}

/** Per machine: device states (id + JSON) whose saveState/loadState round trip was already found clean. */
const checked = new WeakMap<FuzzMachine, Set<string>>();

/**
 * Invariants over every device's state after an input: saveState() stays bounded (no unbounded growth),
 * and a reachable state survives a snapshot round trip: loadState(saveState()) accepts it and changes
 * nothing (a refused or altered state means a snapshot taken now could not be restored).
 */
function checkState(fm: FuzzMachine, limit: number, op: number): void {
  let ok = checked.get(fm);
  if (!ok || ok.size > 4096) checked.set(fm, ok = new Set());
  for (const [id, d] of devicesById(fm)) {
    let before: string;
    let state: unknown;
    try {
      state = d.saveState();
      before = json(state);
    } catch (err) {
      fm.findings.push({
        kind: "crash",
        device: id,
        message: `saveState threw: ${(err as Error).message}`,
        op,
      });
      return;
    }
    if (before.length > limit) {
      fm.findings.push({
        kind: "invariant",
        device: id,
        message: `saveState() is ${before.length} chars: unbounded growth`,
        op,
      });
      continue;
    }
    const dev = d as { loadState?: (s: unknown) => void; saveState(): unknown };
    if (!dev.loadState) continue;
    // A state already seen to round-trip cleanly gives the same answer again: skip the clone and reload.
    const seenKey = `${id}\0${before}`;
    if (ok.has(seenKey)) continue;
    try {
      dev.loadState(structuredClone(state));
    } catch (err) {
      fm.findings.push({
        kind: "invariant",
        device: id,
        message: `loadState refuses its own saveState(): ${(err as Error).message}`,
        op,
      });
      continue;
    }
    const after = json(dev.saveState());
    if (after === before) {
      if (before.length < 1 << 16) ok.add(seenKey);
    } else {
      let i = 0;
      while (i < before.length && before[i] === after[i]) i++;
      fm.findings.push({
        kind: "invariant",
        device: id,
        message: `saveState/loadState round trip changes the state near "${
          before.slice(Math.max(0, i - 30), i + 20)
        }"`,
        op,
      });
    }
  }
}

/** Build a fresh machine and run `ops` on it. */
export function replayOps(ops: readonly Op[], argv?: readonly string[], opts: RunOptions = {}): Finding[] {
  const fm = argv ? buildFuzzMachine(argv) : buildFuzzMachine();
  opts.prepare?.(fm);
  return runOps(fm, ops, opts);
}

/** A finding's identity for de-duplication: kind, device and message with numbers blurred. */
export function findingKey(f: Finding): string {
  return `${f.kind}|${f.device}|${
    f.message.replace(/0x[0-9a-f]+|\d+/gi, "N").replace(/^(read|write) \S+ N size N: /, "")
  }`;
}
