/**
 * A small TCP peer for guest network tests, run as its own process inside a test's network namespace:
 *
 * ```sh
 * ip netns exec NS deno run --allow-net tests/lib/tcp_peer.ts --host 192.168.100.1 \
 *   --send 7001:1048576:42 --recv 7002
 * ```
 *
 * Each `--send PORT:BYTES[:SEED]` listener accepts one connection, writes BYTES deterministic pseudo-random
 * bytes (`payload`), shuts down its write side and waits for the peer to close; each `--recv PORT` listener
 * accepts one connection and reads until EOF, then closes. `--no-hash` skips SHA-256 (benchmarks).
 * Every event is one JSON line on stdout (`PeerEvent`): "ready" once all ports listen, then one line per
 * finished transfer with its byte count, SHA-256 and timing; the process exits when all are done.
 * @module
 */

/** Something the peer reports, one JSON object per stdout line. */
export type PeerEvent =
  | { event: "ready"; host: string; ports: number[] }
  | {
    event: "send" | "recv";
    port: number;
    bytes: number;
    /** Lower-case hex SHA-256 of the bytes moved ("" with --no-hash). */
    sha256: string;
    /** Milliseconds from accept to the end of the transfer (send: the later of "all written" and the peer's EOF). */
    ms: number;
    /** recv: ms from accept to the first byte; send: ms from accept until every byte was written. */
    firstMs: number;
    /** send only: the peer closed its side before every byte was written. */
    peerClosedEarly?: boolean;
    /** recv only: ms from accept at which each further MiB had arrived (to see a rate change over time). */
    mibMs?: number[];
  }
  | { event: "error"; port: number; message: string };

/** A transfer the peer serves. */
export type PeerJob =
  | { kind: "send"; port: number; bytes: number; seed: number }
  | { kind: "recv"; port: number };

/** Deterministic pseudo-random bytes (xorshift32 from `seed`), so both ends can name the same file. */
export function payload(bytes: number, seed = 1): Uint8Array {
  const out = new Uint8Array(bytes);
  const words = new Uint32Array(out.buffer, 0, bytes >>> 2);
  let x = (seed | 0) || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Lower-case hex SHA-256 of `data`. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Parse the peer's command line (`--host H`, `--send P:N[:SEED]`, `--recv P`, `--no-hash`). */
export function parsePeerArgs(argv: readonly string[]): { host: string; jobs: PeerJob[]; hash: boolean } {
  let host = "0.0.0.0";
  let hash = true;
  const jobs: PeerJob[] = [];
  const num = (s: string | undefined, what: string): number => {
    const n = Number(s);
    if (s === undefined || s === "" || !Number.isSafeInteger(n) || n < 0) {
      throw new Error(`Invalid ${what}: "${s}"`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--host") host = argv[++i] ?? host;
    else if (a === "--no-hash") hash = false;
    else if (a === "--recv") jobs.push({ kind: "recv", port: num(argv[++i], "port") });
    else if (a === "--send") {
      const [p, n, s] = (argv[++i] ?? "").split(":");
      jobs.push({
        kind: "send",
        port: num(p, "port"),
        bytes: num(n, "byte count"),
        seed: s ? num(s, "seed") : 1,
      });
    } else throw new Error(`Unknown argument "${a}"`);
  }
  if (jobs.length === 0) throw new Error("Nothing to do: give --send PORT:BYTES[:SEED] or --recv PORT");
  return { host, jobs, hash };
}

/** The events in a peer's output (lines that are not JSON are ignored). */
export function parsePeerEvents(out: string): PeerEvent[] {
  const evs: PeerEvent[] = [];
  for (const line of out.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      evs.push(JSON.parse(line) as PeerEvent);
    } catch {
      continue; // a partial line
    }
  }
  return evs;
}

async function serveSend(conn: Deno.Conn, job: Extract<PeerJob, { kind: "send" }>, hash: boolean) {
  const t0 = performance.now();
  const data = payload(job.bytes, job.seed);
  const sha = hash ? sha256Hex(data) : Promise.resolve("");
  let eofAt = NaN;
  // Drain whatever the other side sends (nothing, normally) so its EOF is seen while we write.
  const drain = (async () => {
    const buf = new Uint8Array(65536);
    try {
      while ((await conn.read(buf)) !== null) { /* discard */ }
    } catch (e) {
      if (!(e instanceof Deno.errors.ConnectionReset)) throw e;
    }
    eofAt = performance.now();
  })();
  let off = 0;
  try {
    while (off < data.length) {
      off += await conn.write(data.subarray(off, Math.min(data.length, off + (1 << 20))));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset)) throw e;
  }
  const writtenAt = performance.now();
  const early = eofAt < writtenAt;
  try {
    await conn.closeWrite();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotConnected)) throw e;
  }
  await drain;
  conn.close();
  return {
    event: "send" as const,
    port: job.port,
    bytes: off,
    sha256: await sha,
    ms: Math.max(eofAt, writtenAt) - t0,
    firstMs: writtenAt - t0,
    peerClosedEarly: early,
  };
}

async function serveRecv(conn: Deno.Conn, port: number, hash: boolean) {
  const t0 = performance.now();
  let first = NaN;
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const mibMs: number[] = [];
  const buf = new Uint8Array(1 << 16);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (bytes === 0) first = performance.now();
      bytes += n;
      if (bytes >= (mibMs.length + 1) * (1 << 20)) mibMs.push(performance.now() - t0);
      if (hash) chunks.push(buf.slice(0, n));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.ConnectionReset)) throw e;
  }
  const end = performance.now();
  conn.close();
  let sha = "";
  if (hash) {
    const all = new Uint8Array(bytes);
    let o = 0;
    for (const c of chunks) all.set(c, (o += c.length) - c.length);
    sha = await sha256Hex(all);
  }
  return { event: "recv" as const, port, bytes, sha256: sha, ms: end - t0, firstMs: first - t0, mibMs };
}

/**
 * Serve `jobs` on `host`, one connection each, calling `report` with every event; resolves when all are done.
 * Listeners are bound before "ready" is reported.
 */
export async function servePeer(
  host: string,
  jobs: readonly PeerJob[],
  opts: { hash?: boolean; report: (e: PeerEvent) => void },
): Promise<void> {
  const hash = opts.hash ?? true;
  const listeners = jobs.map((j) => Deno.listen({ hostname: host, port: j.port, transport: "tcp" }));
  opts.report({ event: "ready", host, ports: jobs.map((j) => j.port) });
  await Promise.all(jobs.map(async (job, i) => {
    const l = listeners[i];
    try {
      const conn = await l.accept();
      l.close();
      opts.report(
        job.kind === "send" ? await serveSend(conn, job, hash) : await serveRecv(conn, job.port, hash),
      );
    } catch (e) {
      opts.report({ event: "error", port: job.port, message: e instanceof Error ? e.message : String(e) });
      try {
        l.close();
      } catch (e2) {
        if (!(e2 instanceof Deno.errors.BadResource)) throw e2;
      }
    }
  }));
}

if (import.meta.main) {
  const { host, jobs, hash } = parsePeerArgs(Deno.args);
  await servePeer(host, jobs, { hash, report: (e) => console.log(JSON.stringify(e)) });
}
