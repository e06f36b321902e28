/**
 * QMP's input side as QEMU 7.2 reads it (qobject/json-lexer.c, json-streamer.c, json-parser.c): a
 * byte-level lexer whose errors are reported and then resynchronised (skip to the next `{`, `}`, `[`,
 * `]`, control character or 0xFE/0xFF byte), a streamer that cuts the token stream into top-level values
 * with QEMU's limits (64 MiB of tokens, 2 Mi tokens, nesting depth 1024), and a parser with QEMU's error
 * messages (`JSON parse error, …`), duplicate keys refused. Input is consumed incrementally: memory is
 * bounded by the limits, never by what a client sends.
 * @module
 */

/** QEMU's json-streamer.c limits. */
export const MAX_TOKEN_SIZE = 64 << 20;
export const MAX_TOKEN_COUNT = 2 << 20;
export const MAX_NESTING = 1024;

type TokType = "{" | "}" | "[" | "]" | "," | ":" | "str" | "int" | "float" | "kw" | "err";
interface Token {
  type: TokType;
  /** The token's raw bytes (strings). */
  bytes: Uint8Array;
  /** The token's text (other tokens). */
  text: string;
  size: number;
}
const NO_BYTES = new Uint8Array(0);

const utf8Lax = new TextDecoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** One streamer result: a parsed value or an error message (both go to the QMP dispatcher). */
export type JsonMessage = { value: unknown } | { error: string };

const enum S {
  Start,
  Recovery,
  DqStr,
  DqEsc,
  SqStr,
  SqEsc,
  Zero,
  Int,
  Neg,
  Dot,
  Frac,
  ExpE,
  ExpSign,
  Exp,
  Keyword,
}

const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isLower = (b: number) => b >= 0x61 && b <= 0x7a;

/**
 * Bytes in, JSON messages out (through `emit`), exactly at the points where QEMU's streamer emits them.
 */
export class JsonStreamer {
  readonly #emit: (m: JsonMessage) => void;
  #state = S.Start;
  #tok = new TokenBuf();
  #tokens: Token[] = [];
  #brace = 0;
  #bracket = 0;
  #size = 0;

  constructor(emit: (m: JsonMessage) => void) {
    this.#emit = emit;
  }

  /** Feed raw bytes. */
  feed(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const st = this.#state;
      if (st === S.DqStr || st === S.SqStr) {
        // Fast path: copy the plain run of a string in one go.
        const q = st === S.DqStr ? 0x22 : 0x27;
        let j = i;
        for (; j < data.length; j++) {
          const b = data[j];
          if (b < 0x20 || b > 0xfd || b === 0x5c || b === q) break;
        }
        if (j > i) {
          this.#tok.append(data.subarray(i, j));
          if (this.#tok.length > MAX_TOKEN_SIZE) this.#tooBig();
          i = j;
          if (i === data.length) break;
        }
      }
      this.#char(data[i]);
    }
  }

  /** End of input (the client went away): drop any partial message, as QEMU's flush on close. */
  reset(): void {
    this.#state = S.Start;
    this.#tok.clear();
    this.#clear();
  }

  #clear(): void {
    this.#tokens = [];
    this.#brace = 0;
    this.#bracket = 0;
    this.#size = 0;
  }

  #char(b: number): void {
    for (;;) {
      const st = this.#state;
      switch (st) {
        case S.Recovery:
          if (b < 0x20 && b !== 0x09 || b >= 0xfe || b === 0x5b || b === 0x5d || b === 0x7b || b === 0x7d) {
            this.#state = S.Start;
            continue; // lookahead: the byte starts afresh
          }
          return;
        case S.Start:
          this.#tok.clear();
          if (b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a) return;
          if (b === 0x7b || b === 0x7d || b === 0x5b || b === 0x5d || b === 0x2c || b === 0x3a) {
            const c = String.fromCharCode(b);
            this.#token(c as TokType, NO_BYTES, c, 1);
            return;
          }
          this.#tok.push(b);
          if (b === 0x22) this.#state = S.DqStr;
          else if (b === 0x27) this.#state = S.SqStr;
          else if (b === 0x30) this.#state = S.Zero;
          else if (b >= 0x31 && b <= 0x39) this.#state = S.Int;
          else if (b === 0x2d) this.#state = S.Neg;
          else if (isLower(b)) this.#state = S.Keyword;
          else this.#error();
          return;
        case S.DqStr:
        case S.SqStr: {
          if (b < 0x20 || b > 0xfd) return this.#pushError(b);
          this.#push(b);
          const q = st === S.DqStr ? 0x22 : 0x27;
          if (b === 0x5c) this.#state = st === S.DqStr ? S.DqEsc : S.SqEsc;
          else if (b === q) this.#finish("str");
          return;
        }
        case S.DqEsc:
        case S.SqEsc:
          if (b < 0x20 || b > 0xfd) return this.#pushError(b);
          this.#push(b);
          this.#state = st === S.DqEsc ? S.DqStr : S.SqStr;
          return;
        case S.Neg:
          if (b === 0x30) {
            this.#push(b);
            this.#state = S.Zero;
          } else if (isDigit(b)) {
            this.#push(b);
            this.#state = S.Int;
          } else this.#pushError(b);
          return;
        case S.Zero:
        case S.Int:
          if (isDigit(b) && st === S.Int) this.#push(b);
          else if (isDigit(b)) this.#pushError(b);
          else if (b === 0x2e) {
            this.#push(b);
            this.#state = S.Dot;
          } else if (b === 0x65 || b === 0x45) {
            this.#push(b);
            this.#state = S.ExpE;
          } else {
            this.#finish("int");
            continue;
          }
          return;
        case S.Dot:
          if (!isDigit(b)) return this.#pushError(b);
          this.#push(b);
          this.#state = S.Frac;
          return;
        case S.Frac:
          if (isDigit(b)) this.#push(b);
          else if (b === 0x65 || b === 0x45) {
            this.#push(b);
            this.#state = S.ExpE;
          } else {
            this.#finish("float");
            continue;
          }
          return;
        case S.ExpE:
          if (b === 0x2b || b === 0x2d) {
            this.#push(b);
            this.#state = S.ExpSign;
          } else if (isDigit(b)) {
            this.#push(b);
            this.#state = S.Exp;
          } else this.#pushError(b);
          return;
        case S.ExpSign:
          if (!isDigit(b)) return this.#pushError(b);
          this.#push(b);
          this.#state = S.Exp;
          return;
        case S.Exp:
          if (isDigit(b)) this.#push(b);
          else {
            this.#finish("float");
            continue;
          }
          return;
        case S.Keyword:
          if (isLower(b)) this.#push(b);
          else {
            this.#finish("kw");
            continue;
          }
          return;
      }
    }
  }

  #push(b: number): void {
    this.#tok.push(b);
    // A single token may not grow without bound (json-lexer.c): hand it on as it is.
    if (this.#tok.length > MAX_TOKEN_SIZE) this.#tooBig();
  }

  #tooBig(): void {
    this.#tok.clear();
    this.#state = S.Start;
    this.#out({ error: "JSON token size limit exceeded" });
  }

  #pushError(b: number): void {
    this.#tok.push(b);
    this.#error();
  }

  #error(): void {
    this.#token("err", NO_BYTES, utf8Lax.decode(this.#tok.view()), this.#tok.length);
    this.#tok.clear();
    this.#state = S.Recovery;
  }

  #finish(type: TokType): void {
    const t = this.#tok;
    const bytes = type === "str" ? t.bytes() : NO_BYTES;
    const text = type === "str" ? "" : t.length < 64 ? t.short() : utf8Lax.decode(t.view());
    const size = t.length;
    t.clear();
    this.#state = S.Start;
    this.#token(type, bytes, text, size);
  }

  /** json_message_process_token. */
  #token(type: TokType, bytes: Uint8Array, text: string, size: number): void {
    switch (type) {
      case "{":
        this.#brace++;
        break;
      case "}":
        this.#brace--;
        break;
      case "[":
        this.#bracket++;
        break;
      case "]":
        this.#bracket--;
        break;
      case "err":
        return this.#out({ error: `JSON parse error, stray '${text}'` });
    }
    if (this.#size + size + 1 > MAX_TOKEN_SIZE) {
      return this.#out({ error: "JSON token size limit exceeded" });
    }
    if (this.#tokens.length + 1 > MAX_TOKEN_COUNT) {
      return this.#out({ error: "JSON token count limit exceeded" });
    }
    if (this.#brace + this.#bracket > MAX_NESTING) {
      return this.#out({ error: "JSON nesting depth limit exceeded" });
    }
    this.#tokens.push({ type, bytes, text, size });
    this.#size += size;
    if ((this.#brace > 0 || this.#bracket > 0) && this.#brace >= 0 && this.#bracket >= 0) return;
    const tokens = this.#tokens;
    this.#clear();
    this.#emit(parseTokens(tokens));
  }

  #out(m: JsonMessage): void {
    this.#clear();
    this.#emit(m);
  }
}

/** The bytes of the token being lexed (grown by doubling; kept between tokens). */
class TokenBuf {
  #b = new Uint8Array(256);
  length = 0;
  push(v: number): void {
    if (this.length === this.#b.length) {
      const n = new Uint8Array(this.#b.length * 2);
      n.set(this.#b);
      this.#b = n;
    }
    this.#b[this.length++] = v;
  }
  append(bytes: Uint8Array): void {
    if (this.length + bytes.length > this.#b.length) {
      const n = new Uint8Array(Math.max(this.#b.length * 2, this.length + bytes.length));
      n.set(this.#b.subarray(0, this.length));
      this.#b = n;
    }
    this.#b.set(bytes, this.length);
    this.length += bytes.length;
  }
  clear(): void {
    this.length = 0;
    if (this.#b.length > 1 << 16) this.#b = new Uint8Array(256);
  }
  view(): Uint8Array {
    return this.#b.subarray(0, this.length);
  }
  /** A short token's text (ASCII). */
  short(): string {
    let s = "";
    for (let i = 0; i < this.length; i++) s += String.fromCharCode(this.#b[i]);
    return s;
  }
  /** A copy of the bytes. */
  bytes(): Uint8Array {
    return this.#b.slice(0, this.length);
  }
}

class ParseError extends Error {}

/** json_parser_parse over one message's tokens. */
function parseTokens(tokens: Token[]): JsonMessage {
  let pos = 0;
  const fail = (msg: string): never => {
    throw new ParseError(`JSON parse error, ${msg}`);
  };
  const value = (): unknown => {
    const t = tokens[pos++];
    if (!t) return fail("premature EOI");
    switch (t.type) {
      case "{": {
        const obj: Record<string, unknown> = {};
        const seen = new Set<string>();
        if (tokens[pos]?.type === "}") {
          pos++;
          return obj;
        }
        for (;;) {
          const k = tokens[pos];
          if (!k) return fail("premature EOI");
          if (k.type !== "str") return fail("key is not a string in object");
          pos++;
          const key = decodeString(k.bytes);
          const colon = tokens[pos++];
          if (!colon) return fail("premature EOI");
          if (colon.type !== ":") return fail("missing : in object pair");
          if (!tokens[pos]) return fail("premature EOI");
          const v = value();
          if (seen.has(key)) return fail("duplicate key");
          seen.add(key);
          Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
          const sep = tokens[pos++];
          if (!sep) return fail("premature EOI");
          if (sep.type === "}") return obj;
          if (sep.type !== ",") return fail("expected separator in dict");
        }
      }
      // falls through (unreachable)
      case "[": {
        const arr: unknown[] = [];
        if (tokens[pos]?.type === "]") {
          pos++;
          return arr;
        }
        for (;;) {
          if (!tokens[pos]) return fail("premature EOI");
          arr.push(value());
          const sep = tokens[pos++];
          if (!sep) return fail("premature EOI");
          if (sep.type === "]") return arr;
          if (sep.type !== ",") return fail("expected separator in list");
        }
      }
      // falls through (unreachable)
      case "str":
        return decodeString(t.bytes);
      case "int":
      case "float":
        return Number(t.text);
      case "kw": {
        const w = t.text;
        if (w === "true") return true;
        if (w === "false") return false;
        if (w === "null") return null;
        return fail(`invalid keyword '${w}'`);
      }
      default:
        return fail("expecting value");
    }
  };
  try {
    const v = value();
    if (pos < tokens.length) fail("expecting value");
    return { value: v };
  } catch (e) {
    if (e instanceof ParseError) return { error: e.message };
    if (e instanceof RangeError) return { error: "JSON nesting depth limit exceeded" };
    throw e;
  }
}

/** parse_string: escapes and UTF-8 validated with QEMU's messages. `raw` has its quotes. */
function decodeString(raw: Uint8Array): string {
  const bytes = raw.subarray(1, raw.length - 1);
  const err = (m: string): never => {
    throw new ParseError(`JSON parse error, ${m}`);
  };
  const run = (a: number, b: number): string => {
    try {
      return utf8Strict.decode(bytes.subarray(a, b));
    } catch {
      return err("invalid UTF-8 sequence in string");
    }
  };
  const hex4 = (i: number): number => {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = bytes[i + k];
      const d = c === undefined ? -1 : parseInt(String.fromCharCode(c), 16);
      if (!(d >= 0)) return err("invalid hex escape sequence in string");
      v = v * 16 + d;
    }
    return v;
  };
  const simple: Record<string, string> = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    b: "\b",
    f: "\f",
    n: "\n",
    r: "\r",
    t: "\t",
  };
  const parts: string[] = [];
  let i = 0;
  for (;;) {
    const bs = bytes.indexOf(0x5c, i);
    parts.push(run(i, bs < 0 ? bytes.length : bs));
    if (bs < 0) break;
    const e = String.fromCharCode(bytes[bs + 1]);
    i = bs + 2;
    if (e in simple) {
      parts.push(simple[e]);
      continue;
    }
    if (e !== "u") err("invalid escape sequence in string");
    let cp = hex4(i);
    i += 4;
    if (cp >= 0xd800 && cp <= 0xdbff && bytes[i] === 0x5c && bytes[i + 1] === 0x75) {
      const lo = hex4(i + 2);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i += 6;
      }
    }
    if (cp >= 0xd800 && cp <= 0xdfff) {
      err(`\\u${cp.toString(16).toUpperCase()} is not a valid Unicode character`);
    }
    parts.push(String.fromCodePoint(cp));
  }
  return parts.join("");
}

/**
 * A string as QEMU's JSON writer (qobject/qjson.c) prints it: `"`, `\` and the usual control escapes,
 * other characters below 0x20 and everything from 0x7F up as `\uXXXX` (surrogate pairs beyond the BMP),
 * invalid UTF-8 (lone surrogates here) as `\uFFFD`.
 */
export function qemuJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case "\\":
        out += "\\\\";
        continue;
      case "\b":
        out += "\\b";
        continue;
      case "\f":
        out += "\\f";
        continue;
      case "\n":
        out += "\\n";
        continue;
      case "\r":
        out += "\\r";
        continue;
      case "\t":
        out += "\\t";
        continue;
    }
    const hex = (v: number) => "\\u" + v.toString(16).toUpperCase().padStart(4, "0");
    if (cp >= 0xd800 && cp <= 0xdfff) out += "\\uFFFD";
    else if (cp > 0xffff) {
      const v = cp - 0x10000;
      out += hex(0xd800 + (v >> 10)) + hex(0xdc00 + (v & 0x3ff));
    } else if (cp < 0x20 || cp >= 0x7f) out += hex(cp);
    else out += ch;
  }
  return out + '"';
}
