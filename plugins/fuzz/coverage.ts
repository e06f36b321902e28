/**
 * Coverage feedback for the fuzzer, two kinds:
 * - "v8": V8 precise block coverage of devices/ through node:inspector (what `deno coverage` uses). Each
 *   take resets the counters; a block is covered in an exec when the innermost reported range holding it
 *   has a non-zero count (V8 drops nested ranges whose count equals their parent's).
 * - "state": signatures of device state — a hash of each touched device's `saveState()` after each op.
 * @module
 */
import { Session } from "node:inspector";
import type { FuzzMachine } from "./machine.ts";

interface V8Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface V8Function {
  functionName: string;
  ranges: V8Range[];
}
interface V8Script {
  url: string;
  functions: V8Function[];
}

/** Per source file: blocks covered and a rough share of its code chars covered. */
export interface FileCoverage {
  file: string;
  blocks: number;
  blocksSeen: number;
  /** Covered share of the file's code characters (comments and blanks left out), 0..1. */
  share: number;
}

/** V8 block coverage of files whose URL contains `filter`. */
export class V8Coverage {
  readonly #session = new Session();
  readonly #filter: string;
  /** Known block ranges per "url#fnStart". */
  readonly #blocks = new Map<string, Map<string, [number, number]>>();
  /** Covered characters per URL (union over all takes). */
  readonly #covered = new Map<string, Uint8Array>();
  readonly #coveredBlocks = new Set<string>();
  #started = false;

  constructor(filter = "/devices/") {
    this.#filter = filter;
  }

  #post<T>(method: string, params?: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.#session.post(
        method,
        params ?? {},
        (err: Error | null, res?: object) => err ? reject(err) : resolve(res as T),
      );
    });
  }

  /** Start collecting (idempotent). */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#session.connect();
    await this.#post("Profiler.enable");
    await this.#post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });
    this.#started = true;
  }

  /** Stop and disconnect. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    await this.#post("Profiler.stopPreciseCoverage");
    this.#session.disconnect();
    this.#started = false;
  }

  /** Take (and reset) the counters: block features covered since the last take. */
  async take(): Promise<string[]> {
    const r = await this.#post<{ result: V8Script[] }>("Profiler.takePreciseCoverage");
    const out: string[] = [];
    for (const s of r.result) {
      if (!s.url.includes(this.#filter)) continue;
      for (const f of s.functions) this.#function(s.url, f, out);
    }
    return out;
  }

  #function(url: string, f: V8Function, out: string[]): void {
    const rs = f.ranges;
    if (rs.length === 0) return;
    const key = `${url}#${rs[0].startOffset}`;
    let known = this.#blocks.get(key);
    if (!known) this.#blocks.set(key, known = new Map());
    for (const r of rs) known.set(`${r.startOffset}:${r.endOffset}`, [r.startOffset, r.endOffset]);
    let cov = this.#covered.get(url);
    for (const [start, end] of known.values()) {
      // Innermost reported range holding `start`..`end`.
      let count = 0;
      let best = Infinity;
      for (const r of rs) {
        if (r.startOffset <= start && end <= r.endOffset && r.endOffset - r.startOffset < best) {
          best = r.endOffset - r.startOffset;
          count = r.count;
        }
      }
      if (best === Infinity || count === 0) continue;
      const feat = `${url}:${start}:${end}`;
      out.push(feat);
      if (!this.#coveredBlocks.has(feat)) {
        this.#coveredBlocks.add(feat);
        if (!cov) this.#covered.set(url, cov = new Uint8Array(Math.max(end, 1 << 16)));
        if (cov.length < end) {
          const n = new Uint8Array(end * 2);
          n.set(cov);
          this.#covered.set(url, cov = n);
        }
        // Mark chars of this block that no inner known range claims as uncovered.
        cov.fill(1, start, end);
      }
    }
    // Re-clear inner ranges reported uncovered in this take (they were filled by their parent).
    if (cov) {
      for (const r of rs) {
        if (r.count === 0 && !this.#coveredBlocks.has(`${url}:${r.startOffset}:${r.endOffset}`)) {
          cov.fill(0, r.startOffset, Math.min(r.endOffset, cov.length));
        }
      }
    }
  }

  /** Coverage per file, read from disk to count code characters. */
  perFile(): FileCoverage[] {
    const out: FileCoverage[] = [];
    const seen = new Map<string, number>();
    const hit = new Map<string, number>();
    for (const [key, blocks] of this.#blocks) {
      const url = key.slice(0, key.lastIndexOf("#"));
      seen.set(url, (seen.get(url) ?? 0) + blocks.size);
    }
    for (const b of this.#coveredBlocks) {
      const url = b.slice(0, b.lastIndexOf(":", b.lastIndexOf(":") - 1));
      hit.set(url, (hit.get(url) ?? 0) + 1);
    }
    for (const [url, n] of seen) {
      let src = "";
      try {
        src = Deno.readTextFileSync(new URL(url));
      } catch {
        // not a file URL: share stays 0
      }
      const code = codeMask(src);
      const cov = this.#covered.get(url);
      let total = 0;
      let c = 0;
      for (let i = 0; i < code.length; i++) {
        if (!code[i]) continue;
        total++;
        if (cov && i < cov.length && cov[i]) c++;
      }
      const file = url.replace(/^.*?\/devices\//, "devices/");
      out.push({ file, blocks: hit.get(url) ?? 0, blocksSeen: n, share: total ? c / total : 0 });
    }
    return out.sort((a, b) => a.file < b.file ? -1 : 1);
  }

  /** Total distinct covered blocks. */
  get blocks(): number {
    return this.#coveredBlocks.size;
  }
}

/** 1 for characters that are code: not whitespace, not in comments. Offsets match V8's (UTF-16). */
export function codeMask(src: string): Uint8Array {
  const m = new Uint8Array(src.length);
  let i = 0;
  while (i < src.length) {
    if (src.startsWith("/*", i)) {
      const e = src.indexOf("*/", i + 2);
      i = e < 0 ? src.length : e + 2;
      continue;
    }
    if (src.startsWith("//", i)) {
      const e = src.indexOf("\n", i);
      i = e < 0 ? src.length : e;
      continue;
    }
    const ch = src.charCodeAt(i);
    if (ch > 32) m[i] = 1;
    i++;
  }
  return m;
}

const keyHash = new Map<string, number>();

/** FNV-1a over a plain-data value (numbers, strings, arrays, typed arrays, objects, bigint). */
export function hashState(v: unknown, h = 0x811c9dc5): number {
  const mix = (x: number) => {
    h = Math.imul(h ^ (x & 0xff), 0x01000193);
    h = Math.imul(h ^ ((x >>> 8) & 0xff), 0x01000193);
    h = Math.imul(h ^ ((x >>> 16) & 0xff), 0x01000193);
    h = Math.imul(h ^ (x >>> 24), 0x01000193);
  };
  const walk = (x: unknown): void => {
    switch (typeof x) {
      case "number":
        // Register-sized values exactly; big ones (times, counters, addresses) only by magnitude, so
        // a running clock does not make every state new.
        if (x >= 0 && x <= 0xffff && Number.isInteger(x)) mix(x);
        else mix(0x10000 + (x < 0 ? 64 : 0) + Math.min(63, Math.floor(Math.log2(Math.abs(x) + 1))));
        return;
      case "boolean":
        mix(x ? 3 : 2);
        return;
      case "string":
        for (let i = 0; i < x.length; i++) mix(x.charCodeAt(i));
        return;
      case "bigint":
        walk(x.toString());
        return;
      case "undefined":
        mix(7);
        return;
      case "object":
        if (x === null) {
          mix(5);
          return;
        }
        if (ArrayBuffer.isView(x)) {
          const u = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
          // Zero bytes add nothing: skip them a 32-bit word at a time where the view is aligned.
          const words = (x.byteOffset & 3) === 0
            ? new Uint32Array(x.buffer, x.byteOffset, u.length >>> 2)
            : null;
          for (let i = 0; i < u.length; i++) {
            if (words && (i & 3) === 0 && i + 4 <= u.length && words[i >>> 2] === 0) {
              i += 3;
              continue;
            }
            if (u[i]) mix(i * 256 + u[i]);
          }
          mix(u.length);
          return;
        }
        if (Array.isArray(x)) {
          mix(x.length);
          for (const e of x) walk(e);
          return;
        }
        for (const k of Object.keys(x as object)) {
          // Keys by a cached hash of their own (state objects repeat the same few names on every op).
          let kh = keyHash.get(k);
          if (kh === undefined) {
            if (keyHash.size > 1 << 16) keyHash.clear();
            keyHash.set(k, kh = hashState(k));
          }
          mix(kh);
          walk((x as Record<string, unknown>)[k]);
        }
        return;
      default:
        return;
    }
  };
  walk(v);
  return h >>> 0;
}

/** Devices of a fuzz machine by id (board devices and virtio transports). */
export function devicesById(fm: FuzzMachine): Map<string, { saveState(): unknown }> {
  const m = new Map<string, { saveState(): unknown }>();
  for (const d of fm.vm.devices) m.set(d.id, d);
  for (const t of fm.vm.transports) m.set(t.id, t);
  return m;
}

/** State features: `id:hash` of a device's saveState(). */
export function stateFeature(id: string, dev: { saveState(): unknown }): string {
  return `${id}:${hashState(dev.saveState()).toString(16)}`;
}
