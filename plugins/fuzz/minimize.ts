/**
 * Reproducer minimization: delta debugging over ops (drop halves, then chunks, then single ops), then
 * simplification of what is left (shorter RAM writes, smaller clock steps), keeping the same finding.
 * @module
 */
import type { Op } from "./input.ts";
import { findingKey, replayOps } from "./exec.ts";
import type { FuzzMachine } from "./machine.ts";

/** Options of `minimize` / `reproduces`. */
export interface MinimizeOptions {
  /** Machine command line (default FUZZ_ARGV). */
  argv?: readonly string[];
  /** Most replays to try. Default 2000. */
  budget?: number;
  /** Called on each fresh machine before the replay (tests add deliberately buggy regions). */
  prepare?: (fm: FuzzMachine) => void;
}

/** Does `ops` still produce the finding `key`? */
export function reproduces(ops: readonly Op[], key: string, opts: MinimizeOptions = {}): boolean {
  return replayOps(ops, opts.argv, { hangMs: Infinity, ...(opts.prepare ? { prepare: opts.prepare } : {}) })
    .some((f) => findingKey(f) === key);
}

/**
 * Smallest op list found that still yields `key` (at most `budget` replays). Async so long minimizations
 * yield to the event loop between replays.
 */
export async function minimize(ops: readonly Op[], key: string, opts: MinimizeOptions = {}): Promise<Op[]> {
  const budget = opts.budget ?? 2000;
  let cur = ops.slice();
  let tries = 0;
  const ok = (c: Op[]) => {
    tries++;
    return reproduces(c, key, opts);
  };
  if (key.startsWith("hang|") || !ok(cur)) return cur;
  for (let chunk = Math.max(1, cur.length >> 1); chunk >= 1 && tries < budget; chunk >>= 1) {
    for (let i = 0; i < cur.length && tries < budget;) {
      const cand = cur.slice(0, i).concat(cur.slice(i + chunk));
      if (cand.length && ok(cand)) cur = cand;
      else i += chunk;
    }
    if (tries % 64 === 0) await Promise.resolve();
  }
  // Simplify: trim RAM writes from the end, shrink clock steps.
  for (let i = 0; i < cur.length && tries < budget; i++) {
    const o = cur[i];
    if (o.op === "mem") {
      let len = o.data.length;
      while (len > 1 && tries < budget) {
        const half = Math.ceil(len / 2);
        const cand = cur.slice();
        cand[i] = { op: "mem", addr: o.addr, data: o.data.slice(0, half) };
        if (!ok(cand)) break;
        cur = cand;
        len = half;
      }
    } else if (o.op === "step" && o.ns > 1) {
      const cand = cur.slice();
      cand[i] = { op: "step", ns: 1 };
      if (ok(cand)) cur = cand;
    }
  }
  return cur;
}
