/**
 * The microvm.ts migration stream (format 1): a header naming the machine configuration, then sections,
 * each checksummed, ending with END. Every length and offset is 4-byte aligned, little-endian.
 *
 * ```
 * header   "MVMTSNAP" u32 version u32 len  JSON(len, space-padded to 4) u32 checksum(JSON)
 * section  u32 kind    u32 len  payload(len, multiple of 4)            u32 checksum(payload)
 *   RAM   (1) repeated: u32 firstPage u32 count, count × 4096 bytes     (backing-store pages, non-zero ones)
 *   ZERO  (2) repeated: u32 firstPage u32 count                          (pages that became zero: live rounds)
 *   STATE (3) JSON: clock, vCPUs, device tree keyed by id, run state
 *   END   (4) u32 number of sections before it
 * ```
 * A reader applies nothing it has not verified; a destination never runs a guest whose stream did not
 * reach a valid END (QEMU's destination likewise exits on a bad stream).
 * @module
 */
import { UserError } from "../types.ts";

export const STREAM_MAGIC = "MVMTSNAP";
export const STREAM_VERSION = 1;
export const SEC_RAM = 1, SEC_ZERO = 2, SEC_STATE = 3, SEC_END = 4;
export const PAGE = 4096;

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * 32-bit checksum of `b` (length a multiple of 4): FNV-style xor-multiply per little-endian word. Each step
 * is a bijection of the running value, so any single corrupted word changes the result; ~1 word/ns in V8.
 */
export function checksum32(b: Uint8Array): number {
  return checksumEnd(checksumUpdate(checksumStart(b.length), b));
}

/** Running state of checksum32 over a payload of `len` bytes that arrives in pieces. */
export function checksumStart(len: number): number {
  return (0x811c9dc5 ^ len) | 0;
}

/** Fold the bytes `b` (length a multiple of 4) into running state `h`; returns the new state. */
export function checksumUpdate(h: number, b: Uint8Array): number {
  const n = b.length >>> 2;
  if ((b.byteOffset & 3) === 0) {
    const w = new Int32Array(b.buffer, b.byteOffset, n);
    for (let i = 0; i < n; i++) h = Math.imul(h ^ w[i], 0x01000193) ^ (h >>> 15);
  } else {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < n; i++) h = Math.imul(h ^ dv.getInt32(i * 4, true), 0x01000193) ^ (h >>> 15);
  }
  return h;
}

/** The checksum of running state `h`. */
export function checksumEnd(h: number): number {
  return h >>> 0;
}

function pad4(s: string): Uint8Array {
  const b = enc.encode(s);
  const out = new Uint8Array((b.length + 3) & ~3).fill(0x20);
  out.set(b);
  return out;
}

/** Bytes of the stream header for `header` (JSON-able). */
export function encodeHeader(header: Record<string, unknown>): Uint8Array {
  const json = pad4(JSON.stringify(header));
  const out = new Uint8Array(16 + json.length + 4);
  const dv = new DataView(out.buffer);
  out.set(enc.encode(STREAM_MAGIC), 0);
  dv.setUint32(8, STREAM_VERSION, true);
  dv.setUint32(12, json.length, true);
  out.set(json, 16);
  dv.setUint32(16 + json.length, checksum32(json), true);
  return out;
}

/** Bytes of one section (payload length must be a multiple of 4). */
export function encodeSection(kind: number, payload: Uint8Array): Uint8Array {
  if (payload.length & 3) throw new RangeError("section payload must be 4-byte aligned");
  const out = new Uint8Array(12 + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, kind, true);
  dv.setUint32(4, payload.length, true);
  out.set(payload, 8);
  dv.setUint32(8 + payload.length, checksum32(payload), true);
  return out;
}

/** A STATE section from JSON text. */
export function encodeJsonSection(kind: number, text: string): Uint8Array {
  return encodeSection(kind, pad4(text));
}

/** JSON text of a STATE/header payload. */
export function payloadText(p: Uint8Array): string {
  return dec.decode(p).trimEnd();
}

/** A source of stream bytes: `read(n)` resolves to exactly n bytes, or fewer at end of stream. */
export interface ByteSource {
  read(n: number): Promise<Uint8Array>;
  /**
   * Optional: fill `dst` from the stream synchronously (a file), returning the bytes read (fewer only at
   * end of stream). Readers use it to put RAM pages straight into guest memory without a staging copy.
   */
  readInto?(dst: Uint8Array): number;
}

/** A ByteSource over bytes already in memory (file: and exec: restores read the whole stream at once). */
export class BufferSource implements ByteSource {
  #pos = 0;
  constructor(readonly bytes: Uint8Array) {}
  read(n: number): Promise<Uint8Array> {
    return Promise.resolve(this.readSync(n));
  }
  readInto(dst: Uint8Array): number {
    const b = this.readSync(dst.length);
    dst.set(b);
    return b.length;
  }
  readSync(n: number): Uint8Array {
    const out = this.bytes.subarray(this.#pos, Math.min(this.bytes.length, this.#pos + n));
    this.#pos += out.length;
    return out;
  }
}

/** Largest section a reader accepts (guards allocations against a corrupted length). */
export const MAX_SECTION = 64 * 1024 * 1024;

/** Reads and verifies a stream; every problem is one UserError line. */
export class StreamReader {
  readonly #src: ByteSource;
  count = 0;
  bytes = 0;
  constructor(src: ByteSource) {
    this.#src = src;
  }

  async #exact(n: number, what: string): Promise<Uint8Array> {
    const b = await this.#src.read(n);
    if (b.length !== n) {
      throw new UserError(`Migration stream truncated: ${what} ended after ${b.length} of ${n} bytes`);
    }
    this.bytes += n;
    return b;
  }

  /** The header JSON, after magic, version and checksum checks. */
  async header(): Promise<Record<string, unknown>> {
    const h = await this.#exact(16, "header");
    if (dec.decode(h.subarray(0, 8)) !== STREAM_MAGIC) {
      throw new UserError("Not a microvm.ts migration stream: bad magic");
    }
    const dv = new DataView(h.buffer, h.byteOffset, 16);
    const ver = dv.getUint32(8, true);
    if (ver !== STREAM_VERSION) {
      throw new UserError(`Unsupported migration stream version ${ver} (this build reads ${STREAM_VERSION})`);
    }
    const len = dv.getUint32(12, true);
    if (len & 3 || len > MAX_SECTION) throw new UserError(`Migration stream corrupted: header length ${len}`);
    const body = await this.#exact(len + 4, "header");
    const json = body.subarray(0, len);
    const sum = new DataView(body.buffer, body.byteOffset + len, 4).getUint32(0, true);
    if (checksum32(json) !== sum) throw new UserError("Migration stream corrupted: header checksum mismatch");
    try {
      return JSON.parse(payloadText(json));
    } catch {
      throw new UserError("Migration stream corrupted: header is not JSON");
    }
  }

  /** The next section's kind and payload length (checked); its payload and checksum follow in the source. */
  async sectionHeader(): Promise<{ kind: number; len: number }> {
    const h = await this.#exact(8, `section ${this.count}`);
    const dv = new DataView(h.buffer, h.byteOffset, 8);
    const kind = dv.getUint32(0, true), len = dv.getUint32(4, true);
    if (kind < SEC_RAM || kind > SEC_END || len & 3 || len > MAX_SECTION) {
      throw new UserError(
        `Migration stream corrupted: section ${this.count} has kind ${kind}, length ${len}`,
      );
    }
    return { kind, len };
  }

  /** Read exactly dst.length payload bytes into `dst` (the source's readInto, else a copy). */
  async readInto(dst: Uint8Array): Promise<void> {
    const n = this.#src.readInto ? this.#src.readInto(dst) : await this.#copyInto(dst);
    if (n !== dst.length) {
      throw new UserError(
        `Migration stream truncated: section ${this.count} ended after ${n} of ${dst.length} bytes`,
      );
    }
    this.bytes += n;
  }

  async #copyInto(dst: Uint8Array): Promise<number> {
    const b = await this.#src.read(dst.length);
    dst.set(b);
    return b.length;
  }

  /** True when the source can fill guest memory directly (readInto). */
  get direct(): boolean {
    return this.#src.readInto !== undefined;
  }

  /** Read the section's stored checksum and compare it with `sum` (checksumEnd of what was read). */
  async endSection(sum: number): Promise<void> {
    const b = await this.#exact(4, `section ${this.count}`);
    if (new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) !== sum) {
      throw new UserError(`Migration stream corrupted: checksum mismatch in section ${this.count}`);
    }
    this.count++;
  }

  /** The next verified section (kind and payload). */
  async section(): Promise<{ kind: number; payload: Uint8Array }> {
    const { kind, len } = await this.sectionHeader();
    return { kind, payload: await this.payload(len) };
  }

  /** The verified payload of a section whose header was just read. */
  async payload(len: number): Promise<Uint8Array> {
    const body = await this.#exact(len + 4, `section ${this.count}`);
    const payload = body.subarray(0, len);
    const sum = new DataView(body.buffer, body.byteOffset + len, 4).getUint32(0, true);
    if (checksum32(payload) !== sum) {
      throw new UserError(`Migration stream corrupted: checksum mismatch in section ${this.count}`);
    }
    this.count++;
    return payload;
  }
}
