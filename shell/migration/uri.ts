/**
 * Migration transports by URI, as QEMU spells them: `exec:CMD` (a shell command reading the stream on
 * stdin / writing it on stdout), `unix:PATH`, `tcp:HOST:PORT`, `file:PATH` (QEMU 8.2). The source
 * connects (or spawns); the destination listens (or spawns, or reads the file at once).
 * @module
 */
import { UserError } from "../../core/types.ts";
import type { ByteSource } from "../../core/snapshot/stream.ts";

/** Where a source writes its stream. */
export interface StreamSink {
  write(chunk: Uint8Array): Promise<void>;
  /** Flush and close; rejects when the peer failed (exec: non-zero exit). */
  close(): Promise<void>;
  /** Abort (migrate_cancel). */
  abort(): void;
}

/** Where a destination reads a stream from. */
export interface StreamSource extends ByteSource {
  close(): void;
}

type Parsed =
  | { kind: "exec"; cmd: string }
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: number }
  | { kind: "file"; path: string };

/** Parse a migration URI; throws UserError in QEMU's words for an unknown one. */
export function parseMigrationUri(uri: string): Parsed {
  if (uri.startsWith("exec:")) return { kind: "exec", cmd: uri.slice(5) };
  if (uri.startsWith("unix:")) return { kind: "unix", path: uri.slice(5) };
  if (uri.startsWith("file:")) return { kind: "file", path: uri.slice(5).replace(/,offset=.*$/, "") };
  if (uri.startsWith("tcp:")) {
    const m = uri.slice(4).match(/^(?:\[([^\]]*)\]|([^:]*)):(\d+)(?:,.*)?$/);
    if (!m) throw new UserError(`error parsing address '${uri.slice(4)}'`);
    return { kind: "tcp", host: m[1] ?? (m[2] || "0.0.0.0"), port: Number(m[3]) };
  }
  throw new UserError(`unknown migration protocol: ${uri}`);
}

function osError(e: unknown): string {
  return e instanceof Error ? e.message.replace(/\s*\(os error \d+\)$/, "") : String(e);
}

/** A sink over a WritableStream (child stdin, socket, file). */
function streamSink(
  ws: WritableStream<Uint8Array>,
  done: () => Promise<void>,
  abort: () => void,
): StreamSink {
  const w = ws.getWriter();
  return {
    async write(chunk) {
      await w.write(chunk);
    },
    async close() {
      await w.close();
      await done();
    },
    abort() {
      w.abort().catch(() => {});
      abort();
    },
  };
}

/** Open the source side of `uri`. */
export async function openSink(uri: string): Promise<StreamSink> {
  const u = parseMigrationUri(uri);
  try {
    switch (u.kind) {
      case "exec": {
        const child = new Deno.Command("/bin/sh", { args: ["-c", u.cmd], stdin: "piped", stdout: "inherit" })
          .spawn();
        return streamSink(child.stdin, async () => {
          const st = await child.status;
          if (!st.success) throw new UserError(`exec: command exited with status ${st.code}`);
        }, () => {
          try {
            child.kill();
          } catch { /* already gone */ }
        });
      }
      case "file": {
        const f = await Deno.open(u.path, { write: true, create: true, truncate: true });
        return streamSink(f.writable, () => Promise.resolve(), () => {});
      }
      case "unix":
      case "tcp": {
        const conn = u.kind === "unix"
          ? await Deno.connect({ transport: "unix", path: u.path })
          : await Deno.connect({ hostname: u.host, port: u.port });
        if (u.kind === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
        return streamSink(conn.writable, () => Promise.resolve(), () => {
          try {
            conn.close();
          } catch { /* closed */ }
        });
      }
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`Failed to connect to '${uri}': ${osError(e)}`);
  }
}

/**
 * A file: stream read synchronously (a file never blocks for long): `readInto` lets the RAM loader read
 * pages straight into guest memory, so the stream is never staged whole.
 */
export class FileSource implements StreamSource {
  #f: Deno.FsFile | null;
  constructor(f: Deno.FsFile) {
    this.#f = f;
  }
  read(n: number): Promise<Uint8Array> {
    const b = new Uint8Array(n);
    return Promise.resolve(b.subarray(0, this.readInto(b)));
  }
  readInto(dst: Uint8Array): number {
    let pos = 0;
    while (pos < dst.length && this.#f) {
      let n: number | null;
      try {
        n = this.#f.readSync(dst.subarray(pos));
      } catch (e) {
        throw new UserError(`Failed to read migration stream: ${osError(e)}`);
      }
      if (n === null || n === 0) break;
      pos += n;
    }
    return pos;
  }
  close(): void {
    try {
      this.#f?.close();
    } catch { /* closed */ }
    this.#f = null;
  }
}

/** A ByteSource over a ReadableStream, buffering what arrives. */
class ReaderSource implements StreamSource {
  readonly #r: ReadableStreamDefaultReader<Uint8Array>;
  #buf: Uint8Array[] = [];
  #have = 0;
  #eof = false;
  constructor(rs: ReadableStream<Uint8Array>, readonly onClose: () => void) {
    this.#r = rs.getReader();
  }
  async read(n: number): Promise<Uint8Array> {
    while (this.#have < n && !this.#eof) {
      const { value, done } = await this.#r.read();
      if (done) this.#eof = true;
      else if (value.length) {
        this.#buf.push(value);
        this.#have += value.length;
      }
    }
    const take = Math.min(n, this.#have);
    // Aligned copy: checksums and RAM runs read whole words.
    const out = new Uint8Array(take);
    let pos = 0;
    while (pos < take) {
      const b = this.#buf[0];
      const k = Math.min(b.length, take - pos);
      out.set(b.subarray(0, k), pos);
      pos += k;
      if (k === b.length) this.#buf.shift();
      else this.#buf[0] = b.subarray(k);
    }
    this.#have -= take;
    return out;
  }
  close(): void {
    this.#r.cancel().catch(() => {});
    this.onClose();
  }
}

/** A listener waiting for a source (tcp:/unix:), opened at once so the source can connect. */
export interface IncomingListener {
  accept(): Promise<StreamSource>;
  close(): void;
}

/** Open the destination side of `uri`: file: and exec: read the stream; tcp:/unix: listen. */
export function openIncoming(uri: string): IncomingListener {
  const u = parseMigrationUri(uri);
  try {
    switch (u.kind) {
      case "file": {
        let f: Deno.FsFile;
        try {
          f = Deno.openSync(u.path, { read: true });
        } catch (e) {
          throw new UserError(`Failed to open '${u.path}': ${osError(e)}`);
        }
        const src = new FileSource(f);
        return { accept: () => Promise.resolve(src), close: () => src.close() };
      }
      case "exec": {
        const child = new Deno.Command("/bin/sh", { args: ["-c", u.cmd], stdin: "null", stdout: "piped" })
          .spawn();
        const src = new ReaderSource(child.stdout, () => {
          try {
            child.kill();
          } catch { /* exited */ }
        });
        return { accept: () => Promise.resolve(src), close: () => src.close() };
      }
      case "unix":
      case "tcp": {
        if (u.kind === "unix") {
          try {
            Deno.removeSync(u.path);
          } catch { /* not there */ }
        }
        const l = u.kind === "unix"
          ? Deno.listen({ transport: "unix", path: u.path })
          : Deno.listen({ hostname: u.host, port: u.port });
        return {
          async accept() {
            const conn = await l.accept();
            l.close();
            return new ReaderSource(conn.readable, () => {
              try {
                conn.close();
              } catch { /* closed */ }
            });
          },
          close() {
            try {
              l.close();
            } catch { /* closed */ }
          },
        };
      }
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`Failed to listen on '${uri}': ${osError(e)}`);
  }
}
