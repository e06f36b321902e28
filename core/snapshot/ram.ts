/**
 * Guest RAM in the migration stream: runs of non-zero 4 KiB pages of the backing store (RAM, then ROM
 * blobs), zero pages elided; a dirty log of pages written since it was last taken (the software CPU's
 * TLB write fills and store slow path, and device DMA through GuestRam, set it).
 * @module
 */
import { UserError } from "../types.ts";
import { encodeSection, PAGE, SEC_RAM, SEC_ZERO } from "./stream.ts";

/** True when backing page `page` of `w` (an Int32Array over the whole backing store) is all zero. */
export function pageIsZero(w: Int32Array, page: number): boolean {
  const s = page * (PAGE >> 2), e = s + (PAGE >> 2);
  for (let i = s; i < e; i++) if (w[i] !== 0) return false;
  return true;
}

/** An Int32Array over `u8` (copying nothing when aligned). */
export function words(u8: Uint8Array): Int32Array {
  if (u8.byteOffset & 3) throw new RangeError("backing store must be 4-byte aligned");
  return new Int32Array(u8.buffer, u8.byteOffset, u8.length >>> 2);
}

/** Bytes of page data per RAM section (the unit of bandwidth limiting and of stream buffering). */
export const RAM_SECTION_PAGES = 256;

/**
 * Encode the pages `pages` (ascending backing-page indices) of `u8` as RAM sections (non-zero pages) and,
 * when `sendZero`, ZERO sections (pages that are zero now). Calls `emit` per section; returns
 * { pages sent with data, zero pages }.
 */
export function encodePages(
  u8: Uint8Array,
  pages: Iterable<number>,
  opts: { sendZero: boolean; emit: (section: Uint8Array) => void },
): { data: number; zero: number } {
  const w = words(u8);
  let data = 0, zero = 0;
  let buf = new Uint8Array(RAM_SECTION_PAGES * (PAGE + 8));
  let dv = new DataView(buf.buffer);
  let pos = 0, inSection = 0;
  let runStart = -1, runCount = 0, runHdr = 0;
  const zeros: number[] = [];
  const flush = () => {
    if (runStart >= 0) dv.setUint32(runHdr + 4, runCount, true);
    runStart = -1;
    if (pos > 0) opts.emit(encodeSection(SEC_RAM, buf.subarray(0, pos)));
    buf = new Uint8Array(RAM_SECTION_PAGES * (PAGE + 8));
    dv = new DataView(buf.buffer);
    pos = 0;
    inSection = 0;
  };
  for (const p of pages) {
    if (pageIsZero(w, p)) {
      if (opts.sendZero) {
        const n = zeros.length;
        if (n && zeros[n - 2] + zeros[n - 1] === p) zeros[n - 1]++;
        else zeros.push(p, 1);
      }
      zero++;
      continue;
    }
    if (runStart >= 0 && runStart + runCount === p) {
      runCount++;
    } else {
      if (runStart >= 0) dv.setUint32(runHdr + 4, runCount, true);
      runStart = p;
      runCount = 1;
      runHdr = pos;
      dv.setUint32(pos, p, true);
      pos += 8;
    }
    buf.set(u8.subarray(p * PAGE, p * PAGE + PAGE), pos);
    pos += PAGE;
    data++;
    if (++inSection === RAM_SECTION_PAGES) flush();
  }
  flush();
  if (zeros.length) {
    for (let i = 0; i < zeros.length; i += 1024) {
      opts.emit(encodeSection(SEC_ZERO, new Uint8Array(new Uint32Array(zeros.slice(i, i + 1024)).buffer)));
    }
  }
  return { data, zero };
}

/** Every backing page, ascending (the first pre-copy round). */
export function* allPages(u8: Uint8Array): Generator<number> {
  const n = Math.floor(u8.length / PAGE);
  for (let p = 0; p < n; p++) yield p;
}

/** Apply a verified RAM or ZERO payload to `u8`; returns the pages written. Refuses runs past the end. */
export function applyPages(u8: Uint8Array, kind: number, payload: Uint8Array): number {
  const total = Math.floor(u8.length / PAGE);
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let pos = 0, pages = 0;
  while (pos + 8 <= payload.length) {
    const first = dv.getUint32(pos, true), count = dv.getUint32(pos + 4, true);
    pos += 8;
    if (first + count > total || count === 0) {
      throw new UserError(
        `Migration stream corrupted: pages ${first}+${count} outside guest memory (${total})`,
      );
    }
    if (kind === SEC_ZERO) {
      u8.fill(0, first * PAGE, (first + count) * PAGE);
    } else {
      const len = count * PAGE;
      if (pos + len > payload.length) {
        throw new UserError("Migration stream corrupted: RAM run overruns its section");
      }
      u8.set(payload.subarray(pos, pos + len), first * PAGE);
      pos += len;
    }
    pages += count;
  }
  if (pos !== payload.length) {
    throw new UserError("Migration stream corrupted: trailing bytes in a RAM section");
  }
  return pages;
}

/**
 * Per-page dirty flags over a backing store. Writers call `mark(byteOffset, len)`; `take()` returns the
 * dirty page indices and clears them.
 */
export class DirtyLog {
  readonly bits: Uint8Array;
  constructor(backingBytes: number) {
    this.bits = new Uint8Array(Math.ceil(backingBytes / PAGE));
  }
  mark(off: number, len: number): void {
    const b = this.bits;
    const e = Math.min(b.length, Math.ceil((off + Math.max(len, 1)) / PAGE));
    for (let p = Math.floor(off / PAGE); p < e; p++) b[p] = 1;
  }
  /** Number of dirty pages. */
  count(): number {
    let n = 0;
    for (let i = 0; i < this.bits.length; i++) n += this.bits[i];
    return n;
  }
  take(): number[] {
    const out: number[] = [];
    const b = this.bits;
    for (let i = 0; i < b.length; i++) {
      if (b[i]) {
        out.push(i);
        b[i] = 0;
      }
    }
    return out;
  }
}
