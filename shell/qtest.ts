/**
 * QEMU's qtest line protocol (softmmu/qtest.c in QEMU 7.2; client side tests/qtest/libqtest.c): one command per
 * "\n"-terminated line, words split on single spaces, one reply line per command ("OK", "OK 0x...", "FAIL ..."),
 * plus asynchronous "IRQ raise N" / "IRQ lower N" lines from an IRQ intercept.
 *
 * Where QEMU would g_assert() on a malformed line (and abort), this session answers "FAIL ..." and goes on:
 * client input never kills the machine.
 * @module
 */
import { UserError } from "../core/types.ts";
import type { IrqIntercept, MachineIface } from "./machine_iface.ts";

/** Options of `new QtestSession`. */
export interface QtestOptions {
  /** Where replies and IRQ lines go (one call per line, "\n" included). */
  send: (text: string) => void;
  /** -qtest-log: receives "[R +t] cmd" / "[S +t] reply" lines as QEMU logs them; omit for none. */
  log?: (line: string) => void;
}

function hex2nib(c: string): number {
  const v = parseInt(c, 16);
  return Number.isNaN(v) ? 0 : v;
}

/**
 * Parse an unsigned integer the way qemu_strtou64(…, base 0) does: "0x" hex, leading "0" octal, else decimal.
 * Returns null for anything else (QEMU would assert).
 */
export function parseQtestInt(s: string | undefined): bigint | null {
  if (s === undefined) return null;
  const t = s.trim();
  let neg = false;
  let body = t;
  if (body.startsWith("-")) {
    neg = true;
    body = body.slice(1);
  } else if (body.startsWith("+")) body = body.slice(1);
  let v: bigint;
  if (/^0[xX][0-9a-fA-F]+$/.test(body)) v = BigInt(body);
  else if (/^0[0-7]+$/.test(body)) v = BigInt("0o" + body.slice(1));
  else if (/^[0-9]+$/.test(body)) v = BigInt(body);
  else return null;
  return neg ? BigInt.asUintN(64, -v) : v;
}

function u64(v: bigint): string {
  return BigInt.asUintN(64, v).toString(16).padStart(16, "0");
}

/**
 * One qtest connection: feed it bytes/lines with `input()`, it answers through `send`.
 *
 * @example
 * ```ts ignore
 * const q = new QtestSession(machine, { send: (t) => chr.write(enc.encode(t)) });
 * q.input("outb 0x70 0x0a\ninb 0x71\n");
 * ```
 */
export class QtestSession {
  readonly #m: MachineIface;
  readonly #send: (text: string) => void;
  readonly #log: ((line: string) => void) | undefined;
  #buf = "";
  #intercept: { path: string; handle: IrqIntercept } | null = null;
  readonly #levels = new Map<number, boolean>();
  #t0 = 0;

  constructor(machine: MachineIface, opts: QtestOptions) {
    this.#m = machine;
    this.#send = opts.send;
    this.#log = opts.log;
  }

  /** The client connected (CHR_EVENT_OPENED): IRQ levels forgotten. */
  opened(): void {
    this.#levels.clear();
    this.#t0 = performance.now();
    this.#log?.(`[I ${this.#stamp()}] OPENED\n`);
  }

  /** The client went away: intercepts stay (as QEMU), log closed. */
  closed(): void {
    this.#log?.(`[I +${this.#stamp()}] CLOSED\n`);
  }

  /** Release the IRQ intercept (machine teardown). */
  dispose(): void {
    this.#intercept?.handle.release();
    this.#intercept = null;
  }

  /** Bytes or text from the client; complete lines are executed in order. */
  input(data: string | Uint8Array): void {
    this.#buf += typeof data === "string" ? data : new TextDecoder("latin1").decode(data);
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl < 0) break;
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + 1);
      this.command(line);
    }
  }

  #stamp(): string {
    const t = (performance.now() - this.#t0) / 1000;
    return t.toFixed(6);
  }

  #reply(text: string): void {
    this.#log?.(`[S +${this.#stamp()}] ${text}`);
    this.#send(text);
  }

  /** Execute one command line (without "\n"); the reply goes through `send`. */
  command(line: string): void {
    const words = line.split(" ");
    this.#log?.(`[R +${this.#stamp()}] ${words.join(" ")}\n`);
    try {
      const r = this.#exec(words);
      if (r !== null) this.#reply(r + "\n");
    } catch (e) {
      const msg = e instanceof UserError ? e.message : (e instanceof Error ? e.message : String(e));
      this.#reply(`FAIL ${msg}\n`);
    }
  }

  #irq(n: number, level: boolean): void {
    if ((this.#levels.get(n) ?? false) === level) return;
    this.#levels.set(n, level);
    this.#reply(`IRQ ${level ? "raise" : "lower"} ${n}\n`);
  }

  /** Returns the reply line without "\n", or null when a reply was already sent. */
  #exec(w: string[]): string | null {
    const m = this.#m;
    const cmd = w[0];
    const num = (i: number, what = "argument"): bigint => {
      const v = parseQtestInt(w[i]);
      if (v === null) throw new UserError(`invalid ${what} '${w[i] ?? ""}'`);
      return v;
    };
    const addr = (i: number): number => {
      const v = num(i, "address");
      return Number(v);
    };
    switch (cmd) {
      case "irq_intercept_out":
      case "irq_intercept_in": {
        const path = w[1];
        if (path === undefined) throw new UserError("missing device path");
        const fn = cmd === "irq_intercept_in" ? m.interceptIrqIn : m.interceptIrqOut;
        if (!fn) return "FAIL Unknown device";
        if (this.#intercept) {
          return this.#intercept.path === path ? "OK" : "FAIL IRQ intercept already enabled";
        }
        let handle: IrqIntercept;
        try {
          handle = fn.call(m, path, (line, level) => this.#irq(line, level));
        } catch (e) {
          if (e instanceof UserError) return "FAIL Unknown device";
          throw e;
        }
        this.#intercept = { path, handle };
        return "OK";
      }
      case "set_irq_in": {
        if (w.length < 5) throw new UserError("set_irq_in needs PATH NAME NUM LEVEL");
        if (!m.setIrqIn) return "FAIL Unknown device";
        const name = w[2] === "unnamed-gpio-in" ? "" : w[2];
        const line = Number(num(3));
        const level = BigInt.asIntN(64, num(4)) !== 0n;
        try {
          m.setIrqIn(w[1], name, line, level);
        } catch (e) {
          if (e instanceof UserError) return "FAIL Unknown device";
          throw e;
        }
        return "OK";
      }
      case "outb":
      case "outw":
      case "outl": {
        const port = addr(1);
        const value = num(2);
        if (port > 0xffff) throw new UserError(`port '${w[1]}' out of range`);
        const size = cmd === "outb" ? 1 : cmd === "outw" ? 2 : 4;
        m.ioWrite(port, size, Number(BigInt.asUintN(size * 8, value)));
        return "OK";
      }
      case "inb":
      case "inw":
      case "inl": {
        const port = addr(1);
        if (port > 0xffff) throw new UserError(`port '${w[1]}' out of range`);
        const size = cmd === "inb" ? 1 : cmd === "inw" ? 2 : 4;
        const v = m.ioRead(port, size) >>> 0;
        return `OK 0x${v.toString(16).padStart(4, "0")}`;
      }
      case "writeb":
      case "writew":
      case "writel":
      case "writeq": {
        const a = addr(1);
        const v = num(2);
        if (cmd === "writeq") {
          const q = BigInt.asUintN(64, v);
          m.memWriteN(a, 4, Number(q & 0xffffffffn));
          m.memWriteN(a + 4, 4, Number(q >> 32n));
        } else {
          const size = cmd === "writeb" ? 1 : cmd === "writew" ? 2 : 4;
          m.memWriteN(a, size, Number(BigInt.asUintN(size * 8, v)));
        }
        return "OK";
      }
      case "readb":
      case "readw":
      case "readl":
      case "readq": {
        const a = addr(1);
        let v: bigint;
        if (cmd === "readq") {
          const lo = BigInt(m.memReadN(a, 4) >>> 0);
          const hi = BigInt(m.memReadN(a + 4, 4) >>> 0);
          v = (hi << 32n) | lo;
        } else {
          const size = cmd === "readb" ? 1 : cmd === "readw" ? 2 : 4;
          v = BigInt(m.memReadN(a, size) >>> 0);
        }
        return `OK 0x${u64(v)}`;
      }
      case "read": {
        const a = addr(1);
        const len = Number(num(2, "length"));
        if (len === 0) throw new UserError("invalid length '0'");
        const data = m.memRead(a, len);
        let s = "";
        for (const b of data) s += b.toString(16).padStart(2, "0");
        return `OK 0x${s}`;
      }
      case "b64read": {
        const a = addr(1);
        const len = Number(num(2, "length"));
        const data = len ? m.memRead(a, len) : new Uint8Array(0);
        let bin = "";
        for (const b of data) bin += String.fromCharCode(b);
        return `OK ${btoa(bin)}`;
      }
      case "write": {
        const a = addr(1);
        const len = Number(num(2, "length"));
        const hex = w[3];
        if (hex === undefined) throw new UserError("missing data");
        if (hex.length < 3) {
          this.#send("ERR invalid argument size\n");
          return null;
        }
        const data = new Uint8Array(len);
        for (let i = 0; i < len; i++) {
          if (i * 2 + 4 <= hex.length) data[i] = (hex2nib(hex[i * 2 + 2]) << 4) | hex2nib(hex[i * 2 + 3]);
        }
        m.memWrite(a, data);
        return "OK";
      }
      case "memset": {
        const a = addr(1);
        const len = Number(num(2, "length"));
        const pattern = Number(num(3) & 0xffn);
        if (len) m.memWrite(a, new Uint8Array(len).fill(pattern));
        return "OK";
      }
      case "b64write": {
        const a = addr(1);
        const len = Number(num(2, "length"));
        const b64 = w[3];
        if (b64 === undefined) throw new UserError("missing data");
        if (b64.length < 3) {
          this.#send("ERR invalid argument size\n");
          return null;
        }
        let bin: string;
        try {
          bin = atob(b64);
        } catch {
          bin = "";
        }
        if (bin.length !== len) {
          this.#log?.(`b64write: data length mismatch (told ${len}, found ${bin.length})\n`);
        }
        // QEMU writes `len` bytes from the decoded buffer; bytes past the decoded data are zero here.
        const data = new Uint8Array(len);
        for (let i = 0; i < Math.min(len, bin.length); i++) data[i] = bin.charCodeAt(i);
        m.memWrite(a, data);
        return "OK";
      }
      case "endianness":
        return "OK little";
      case "clock_step": {
        if (m.accel !== "qtest") return `FAIL Unknown command '${cmd}'`;
        const c = m.clock;
        let target: number;
        if (w[1] !== undefined && w[1] !== "") {
          const ns = BigInt.asIntN(64, num(1));
          target = c.now() + Number(ns);
        } else {
          const d = c.nextDeadline();
          // QEMU: no timer armed → deadline -1 → warp to now + -1 → loop does nothing.
          target = d === Infinity ? c.now() : Math.max(d, c.now());
        }
        if (target > c.now()) c.set(target);
        return `OK ${c.now()}`;
      }
      case "clock_set": {
        if (m.accel !== "qtest") return `FAIL Unknown command '${cmd}'`;
        const c = m.clock;
        const ns = Number(BigInt.asIntN(64, num(1)));
        if (ns > c.now()) c.set(ns);
        return `OK ${c.now()}`;
      }
      case "module_load":
        // No loadable modules in this build: module_load() returns false and QEMU answers a bare FAIL.
        return "FAIL";
      default:
        return `FAIL Unknown command '${cmd}'`;
    }
  }
}
