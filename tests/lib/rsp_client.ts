/**
 * A minimal GDB remote-protocol client for protocol-level tests: sends packets (or raw bytes), reads the
 * stub's `+`/`-` acknowledgements and packets, acknowledges what it receives.
 * @module
 */

const enc = new TextEncoder();

/** `$payload#cs` for a text payload (latin-1). */
export function frame(payload: string): string {
  let sum = 0;
  for (let i = 0; i < payload.length; i++) sum += payload.charCodeAt(i);
  return `$${payload}#${(sum & 0xff).toString(16).padStart(2, "0")}`;
}

/** Hex of a UTF-8 string. */
export function hexOf(s: string): string {
  return Array.from(enc.encode(s), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** UTF-8 text of hex. */
export function textOfHex(h: string): string {
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return new TextDecoder().decode(b);
}

/** One connection to a gdbstub. */
export class RspClient {
  readonly conn: Deno.Conn;
  #buf = "";
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
    void this.#pump();
  }

  static async connect(path: string): Promise<RspClient> {
    return new RspClient(await Deno.connect({ transport: "unix", path }));
  }

  async #pump(): Promise<void> {
    const b = new Uint8Array(65536);
    for (;;) {
      let n: number | null = null;
      try {
        n = await this.conn.read(b);
      } catch {
        n = null;
      }
      if (n === null) break;
      for (let i = 0; i < n; i++) this.#buf += String.fromCharCode(b[i]);
      for (const w of this.#waiters.splice(0)) w();
    }
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w();
  }

  /** True once the stub closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  async #wait(pred: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (this.#closed) return false;
      const left = end - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
    return true;
  }

  /** Write raw bytes (a latin-1 string). */
  async raw(s: string): Promise<void> {
    const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
    await this.conn.write(b);
  }

  /** Everything received and not yet consumed (then cleared). */
  take(): string {
    const s = this.#buf;
    this.#buf = "";
    return s;
  }

  /** Wait for a single `+`/`-` acknowledgement byte. */
  async ack(ms = 10_000): Promise<string> {
    if (!await this.#wait(() => this.#buf.length > 0, ms)) throw new Error("no acknowledgement");
    const c = this.#buf[0];
    this.#buf = this.#buf.slice(1);
    return c;
  }

  /** Wait for the next packet; returns its (unescaped-as-sent) payload, after checking its checksum. */
  async packet(ms = 30_000, ack = true): Promise<string> {
    const re = /\$([^#]*)#([0-9a-f]{2})/;
    if (!await this.#wait(() => re.test(this.#buf), ms)) {
      throw new Error(`no packet within ${ms} ms (have ${JSON.stringify(this.#buf)})`);
    }
    const m = re.exec(this.#buf)!;
    const junk = this.#buf.slice(0, m.index);
    if (junk.replaceAll("+", "") !== "") {
      throw new Error(`unexpected bytes before packet: ${JSON.stringify(junk)}`);
    }
    this.#buf = this.#buf.slice(m.index + m[0].length);
    let sum = 0;
    for (let i = 0; i < m[1].length; i++) sum += m[1].charCodeAt(i);
    if ((sum & 0xff) !== parseInt(m[2], 16)) throw new Error(`bad checksum on ${m[0]}`);
    if (ack) await this.raw("+");
    return m[1];
  }

  /** Send a packet, expect "+", return the reply packet. */
  async cmd(payload: string, ms = 30_000): Promise<string> {
    if (Deno.env.get("RSP_DEBUG")) console.error(`-> ${payload.slice(0, 80)}`);
    await this.raw(frame(payload));
    const a = await this.ack();
    if (a !== "+") throw new Error(`expected + for ${payload}, got ${a}`);
    return await this.packet(ms);
  }

  /** Send a packet and return what arrives within `ms` (for commands that must not reply). */
  async quiet(payload: string, ms = 300): Promise<string> {
    await this.raw(frame(payload));
    await new Promise((r) => setTimeout(r, ms));
    return this.take();
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}
