/**
 * The GDB remote serial protocol's framing as QEMU's gdbstub reads and writes it: `$data#cs` packets with
 * `}` escapes and `*` run-length counts, `+`/`-` acknowledgements, Ctrl-C (0x03) between packets, a
 * 4096-byte packet buffer (an overrun drops the packet without a reply), and hex/binary helpers.
 * @module
 */

/** QEMU's MAX_PACKET_LENGTH: the packet buffer and the PacketSize advertised in qSupported (0x1000). */
export const MAX_PACKET_LENGTH = 4096;

/** What the reader hands up. */
export type ReaderEvent =
  | { kind: "packet"; data: Uint8Array }
  | { kind: "interrupt" }
  | { kind: "ack" }
  | { kind: "nack" }
  /** A packet whose checksum did not match (answered with "-"). */
  | { kind: "bad-checksum" };

const enum St {
  Idle,
  Line,
  LineEsc,
  LineRle,
  Sum1,
  Sum2,
}

function hexVal(ch: number): number {
  if (ch >= 0x30 && ch <= 0x39) return ch - 0x30;
  if (ch >= 0x61 && ch <= 0x66) return ch - 0x61 + 10;
  if (ch >= 0x41 && ch <= 0x46) return ch - 0x41 + 10;
  return -1;
}

/** Incremental packet reader (QEMU gdb_read_byte's state machine, from RS_IDLE on). */
export class PacketReader {
  #st = St.Idle;
  readonly #buf = new Uint8Array(MAX_PACKET_LENGTH);
  #len = 0;
  #sum = 0;
  #csum = 0;

  /** Feed bytes; returns the events they complete, in order. */
  feed(data: Uint8Array): ReaderEvent[] {
    const out: ReaderEvent[] = [];
    for (const ch of data) {
      const ev = this.#byte(ch);
      if (ev) out.push(ev);
    }
    return out;
  }

  #byte(ch: number): ReaderEvent | null {
    switch (this.#st) {
      case St.Idle:
        if (ch === 0x24) { // '$'
          this.#len = 0;
          this.#sum = 0;
          this.#st = St.Line;
        } else if (ch === 0x03) return { kind: "interrupt" };
        else if (ch === 0x2b) return { kind: "ack" };
        else if (ch === 0x2d) return { kind: "nack" };
        return null;
      case St.Line:
        if (ch === 0x7d) { // '}'
          this.#st = St.LineEsc;
          this.#sum += ch;
        } else if (ch === 0x2a) { // '*'
          this.#st = St.LineRle;
          this.#sum += ch;
        } else if (ch === 0x23) this.#st = St.Sum1; // '#'
        else if (this.#len >= this.#buf.length - 1) this.#st = St.Idle; // overrun: dropped
        else {
          this.#buf[this.#len++] = ch;
          this.#sum += ch;
        }
        return null;
      case St.LineEsc:
        if (ch === 0x23) this.#st = St.Sum1;
        else if (this.#len >= this.#buf.length - 1) this.#st = St.Idle;
        else {
          this.#buf[this.#len++] = ch ^ 0x20;
          this.#sum += ch;
          this.#st = St.Line;
        }
        return null;
      case St.LineRle:
        if (ch < 0x20 || ch === 0x23 || ch === 0x24 || ch > 126) {
          this.#st = St.Line; // invalid run-length count: ignored
        } else {
          const repeat = ch - 0x20 + 3;
          if (this.#len < 1 || this.#len + repeat >= this.#buf.length - 1) this.#st = St.Idle;
          else {
            this.#buf.fill(this.#buf[this.#len - 1], this.#len, this.#len + repeat);
            this.#len += repeat;
            this.#sum += ch;
            this.#st = St.Line;
          }
        }
        return null;
      case St.Sum1: {
        const v = hexVal(ch);
        if (v < 0) {
          this.#st = St.Line; // QEMU goes back to collecting the line
          return null;
        }
        this.#csum = v << 4;
        this.#st = St.Sum2;
        return null;
      }
      case St.Sum2: {
        const v = hexVal(ch);
        if (v < 0) {
          this.#st = St.Line;
          return null;
        }
        this.#csum |= v;
        this.#st = St.Idle;
        if (this.#csum !== (this.#sum & 0xff)) return { kind: "bad-checksum" };
        return { kind: "packet", data: this.#buf.slice(0, this.#len) };
      }
    }
    return null;
  }
}

const HEX = "0123456789abcdef";
const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

/** Frame `payload` (already escaped where needed) as `$payload#cs`. */
export function framePacket(payload: Uint8Array): Uint8Array {
  let sum = 0;
  for (const b of payload) sum += b;
  const out = new Uint8Array(payload.length + 4);
  out[0] = 0x24;
  out.set(payload, 1);
  out[payload.length + 1] = 0x23;
  out[payload.length + 2] = HEX.charCodeAt((sum >> 4) & 15);
  out[payload.length + 3] = HEX.charCodeAt(sum & 15);
  return out;
}

/** Escape binary data for a packet (`#`, `$`, `*`, `}` → `}` then byte ^ 0x20), as QEMU's memtox. */
export function escapeBinary(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (const b of data) {
    if (b === 0x23 || b === 0x24 || b === 0x2a || b === 0x7d) out.push(0x7d, b ^ 0x20);
    else out.push(b);
  }
  return new Uint8Array(out);
}

/** Bytes → lower-case hex. */
export function toHex(data: Uint8Array): string {
  let s = "";
  for (const b of data) s += HEX[b >> 4] + HEX[b & 15];
  return s;
}

/** Hex → bytes (stops at the first non-hex pair; an odd tail is ignored). */
export function fromHex(s: string): Uint8Array {
  const n = s.length >> 1;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const hi = hexVal(s.charCodeAt(2 * i)), lo = hexVal(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return out.subarray(0, i);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Latin-1 text of packet bytes (binary-safe). */
export function bytesToText(b: Uint8Array): string {
  return dec.decode(b);
}

/** Latin-1 bytes of a reply text (every char < 256). */
export function textToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** UTF-8 bytes (monitor output). */
export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}
