/**
 * A QMP client for tests and benchmarks that drive a VMM process over its unix socket: one connection per VM,
 * kept open, events skipped; plus the migration poll both the migration test and bench/restore.ts use.
 * @module
 */
const enc = new TextEncoder(), dec = new TextDecoder();

/** One QMP connection per VM, kept open (events skipped). */
export class Qmp {
  #buf = "";
  constructor(
    readonly path: string,
    readonly conn: Deno.UnixConn,
    readonly r: ReadableStreamDefaultReader<Uint8Array>,
  ) {}

  /** Connect, retrying until the greeting arrives (the monitor may not be up yet). */
  static async open(path: string, ms = 120_000): Promise<Qmp> {
    const t = Date.now();
    for (;;) {
      let conn: Deno.UnixConn | null = null;
      try {
        conn = await Deno.connect({ transport: "unix", path });
        const q = new Qmp(path, conn, conn.readable.getReader());
        await q.#line(10_000);
        await q.cmd("qmp_capabilities");
        return q;
      } catch (e) {
        try {
          conn?.close();
        } catch { /* closed */ }
        if (Date.now() - t > ms) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async #line(ms: number): Promise<string> {
    while (!this.#buf.includes("\n")) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const { value, done } = await Promise.race([
        this.r.read(),
        new Promise<never>((_, rej) =>
          timer = setTimeout(() => rej(new Error(`QMP timeout on ${this.path}`)), ms)
        ),
      ]).finally(() => clearTimeout(timer));
      if (done) throw new Error(`QMP closed on ${this.path}`);
      this.#buf += dec.decode(value);
    }
    const i = this.#buf.indexOf("\n");
    const l = this.#buf.slice(0, i);
    this.#buf = this.#buf.slice(i + 1);
    return l;
  }

  /** Run one command; returns its `return` member (throws on an error reply). */
  async cmd(execute: string, args?: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.conn.write(
      enc.encode(JSON.stringify(args ? { execute, arguments: args } : { execute }) + "\n"),
    );
    for (;;) {
      const l = await this.#line(60_000);
      if (l.includes('"event"')) continue;
      const j = JSON.parse(l);
      if (j.error) throw new Error(`${execute}: ${j.error.desc}`);
      return j.return;
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** Poll query-migrate until it completes (throws when it fails or after `ms`). */
export async function waitMigration(q: Qmp, ms: number): Promise<Record<string, unknown>> {
  const t = Date.now();
  for (;;) {
    const ret = await q.cmd("query-migrate");
    if (ret.status === "completed") return ret;
    if (ret.status === "failed" || Date.now() - t > ms) throw new Error(`migration: ${JSON.stringify(ret)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
