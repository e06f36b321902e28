/**
 * Software vCPU state for snapshots and migration, by field name: every own field of a `Cpu` that holds
 * architectural state (numbers, booleans, bigints, strings, typed arrays, plain arrays, Maps of them) is
 * saved under its name, whatever other files add to `Cpu` later (x87, AVX, new MSRs); caches and wiring
 * are listed in CPU_STATE_SKIP. Loading refuses an unknown, missing or mis-sized field and leaves the vCPU
 * untouched, then drops every derived cache (TLB, fetch page, block translations).
 * @module
 */
import { StateError } from "../types.ts";
import type { Cpu } from "./cpu.ts";

/** Record version: bump when a field changes meaning (a new or removed field is caught by name). */
export const CPU_STATE_VERSION = 1;

/**
 * Own fields of Cpu that are not state: wiring, caches rebuilt after load, debug hooks. A new field that
 * is neither plain data nor listed here makes `saveCpuState` throw (and core/cpu/state_test.ts fail).
 */
export const CPU_STATE_SKIP: ReadonlySet<string> = new Set([
  "board",
  "phys",
  "u8",
  "dv",
  "lapic",
  "index",
  "cpuidModel",
  "log",
  "sseViews",
  "simdCtx",
  "dirty",
  "tlbTag",
  "tlbOff",
  "tlbPerm",
  "tlbLarge",
  "segChk",
  "fp",
  "fpEnd",
  "fpActive",
  "fpLin",
  "fpBase",
  "ipSlow",
  "startIp",
  "brk",
  "atBranch",
  // JIT wiring and caches (core/cpu/jit.ts): rebuilt after a load.
  "tlbGen",
  "codePages",
  "jitIndex",
  "jitAfter",
  "smc",
  "onCodeWrite",
]);

/** One vCPU's saved state: version plus named fields. */
export interface CpuStateRecord {
  version: number;
  fields: Record<string, unknown>;
}

function plain(v: unknown, path: string): unknown {
  if (v === null) return null;
  switch (typeof v) {
    case "number":
    case "boolean":
    case "bigint":
    case "string":
      return v;
  }
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return (v as Uint8Array).slice();
  if (Array.isArray(v)) return v.map((x, i) => plain(x, `${path}[${i}]`));
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, plain(x, `${path}.${String(k)}`)]));
  if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) o[k] = plain(x, `${path}.${k}`);
    return o;
  }
  throw new StateError(
    `Cannot save vCPU field "${path}": not plain data (add it to CPU_STATE_SKIP if it is a cache)`,
  );
}

/** Save every state field of `c`. */
export function saveCpuState(c: Cpu): CpuStateRecord {
  const fields: Record<string, unknown> = {};
  for (const k of Object.keys(c)) {
    if (CPU_STATE_SKIP.has(k)) continue;
    const v = (c as unknown as Record<string, unknown>)[k];
    if (typeof v === "function") continue;
    fields[k] = plain(v, k);
  }
  return { version: CPU_STATE_VERSION, fields };
}

function shapeError(path: string, why: string): StateError {
  return new StateError(`Invalid vCPU state: field "${path}" ${why}`);
}

/** Check that `v` (from a stream) has the shape of `cur` (the live field); returns the value to assign. */
function conform(cur: unknown, v: unknown, path: string): unknown {
  if (cur === null) {
    if (v !== null) throw shapeError(path, "must be null");
    return v;
  }
  if (ArrayBuffer.isView(cur)) {
    const ta = cur as Uint8Array;
    if (!ArrayBuffer.isView(v) || v.constructor !== ta.constructor) {
      throw shapeError(path, `must be a ${ta.constructor.name}`);
    }
    if ((v as Uint8Array).length !== ta.length) {
      throw shapeError(path, `has ${(v as Uint8Array).length} elements, expected ${ta.length}`);
    }
    return v;
  }
  if (Array.isArray(cur)) {
    if (!Array.isArray(v)) throw shapeError(path, "must be an array");
    // Element shapes follow the first live element (nested register files keep one shape).
    if (cur.length > 0) v.forEach((x, i) => conform(cur[Math.min(i, cur.length - 1)], x, `${path}[${i}]`));
    return v;
  }
  if (cur instanceof Map) {
    if (!(v instanceof Map)) throw shapeError(path, "must be a map");
    return v;
  }
  if (typeof cur === "object") {
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw shapeError(path, "must be an object");
    const a = Object.keys(cur as object).sort().join(), b = Object.keys(v as object).sort().join();
    if (a !== b) throw shapeError(path, `has members ${b}, expected ${a}`);
    for (const k of Object.keys(cur as object)) {
      conform((cur as Record<string, unknown>)[k], (v as Record<string, unknown>)[k], `${path}.${k}`);
    }
    return v;
  }
  if (typeof v !== typeof cur) throw shapeError(path, `must be a ${typeof cur}`);
  if (typeof v === "number" && !Number.isFinite(v) && !Number.isNaN(cur as number)) {
    throw shapeError(path, "is not finite");
  }
  return v;
}

/**
 * Load `rec` into `c`: every field is checked against the live one first (nothing is assigned when one
 * is unknown, missing or of another type or size), then assigned, then caches are dropped.
 */
export function loadCpuState(c: Cpu, rec: unknown): void {
  if (rec === null || typeof rec !== "object") throw new StateError("Invalid vCPU state: not an object");
  const r = rec as Partial<CpuStateRecord>;
  if (r.version !== CPU_STATE_VERSION) {
    throw new StateError(`Invalid vCPU state: unsupported version "${String(r.version)}"`);
  }
  const fields = r.fields;
  if (fields === null || typeof fields !== "object") throw new StateError("Invalid vCPU state: no fields");
  const live = saveCpuState(c).fields;
  for (const k of Object.keys(fields)) {
    if (!(k in live)) throw new StateError(`Invalid vCPU state: unknown field "${k}"`);
  }
  const vals = new Map<string, unknown>();
  for (const k of Object.keys(live)) {
    if (!(k in fields)) throw new StateError(`Invalid vCPU state: missing field "${k}"`);
    vals.set(k, conform(live[k], (fields as Record<string, unknown>)[k], k));
  }
  const o = c as unknown as Record<string, unknown>;
  for (const [k, v] of vals) {
    const cur = o[k];
    if (ArrayBuffer.isView(cur)) (cur as Uint8Array).set(v as Uint8Array);
    else if (cur instanceof Map) {
      cur.clear();
      for (const [mk, mv] of v as Map<unknown, unknown>) cur.set(mk, mv);
    } else o[k] = v;
  }
  c.atBranch = true;
  c.brk = false;
  c.updateMode();
  c.flushTlb(); // TLB and fetch page (step() restarts fetching at rip); block caches: SoftCpuAccelerator.loadState
}
