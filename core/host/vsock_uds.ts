/**
 * Firecracker's host side of vsock (docs/vsock.md in firecracker): the VMM listens on a Unix socket; a host
 * process connects, writes `CONNECT <port>\n` and, once the guest accepts, reads `OK <local port>\n` and
 * then the stream. A guest connecting to host port P makes the VMM connect to `<path>_<P>`. Deno 2.9 asks
 * for --allow-net (besides --allow-read/--allow-write) to listen on or connect to a Unix socket.
 * @module
 */
import type { VsockBackend, VsockReceiver } from "../vsock.ts";

const READ_CHUNK = 64 * 1024;
/** Longest `CONNECT <port>\n` line accepted. */
const MAX_HANDSHAKE = 64;

interface HostConn {
  sock: Deno.UnixConn | null;
  writes: Uint8Array[];
  writing: boolean;
  closed: boolean;
  shutWrite: boolean;
  resume: (() => void) | null;
  /** Bytes read with the handshake line, delivered once accepted. */
  early: Uint8Array | null;
  /** The device forgot it: no more events; close once queued writes are flushed. */
  detached: boolean;
}

/** The Unix-socket vsock backend of one device. */
export class UdsVsockBackend implements VsockBackend {
  readonly path: string;
  #r: VsockReceiver | null = null;
  readonly #conns = new Map<number, HostConn>();
  #next = 1;
  #listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr> | null = null;
  #stopped = false;
  /** Async failures (tests). */
  errors = 0;

  constructor(path: string) {
    this.path = path;
  }

  /** Start listening on `path` (a stale socket file there is replaced, as Firecracker requires it absent). */
  listen(): void {
    try {
      if (Deno.lstatSync(this.path).isSocket) Deno.removeSync(this.path);
    } catch {
      // nothing there
    }
    this.#listener = Deno.listen({ transport: "unix", path: this.path });
    void this.#acceptLoop(this.#listener);
  }

  setReceiver(r: VsockReceiver | null): void {
    this.#r = r;
  }

  async #acceptLoop(l: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>): Promise<void> {
    for (;;) {
      let sock: Deno.UnixConn;
      try {
        sock = await l.accept();
      } catch {
        return;
      }
      void this.#handshake(sock);
    }
  }

  async #handshake(sock: Deno.UnixConn): Promise<void> {
    const buf = new Uint8Array(MAX_HANDSHAKE);
    let len = 0;
    try {
      while (len < MAX_HANDSHAKE) {
        const n = await sock.read(buf.subarray(len));
        if (n === null) break;
        len += n;
        const nl = buf.subarray(0, len).indexOf(0x0a);
        if (nl < 0) continue;
        const m = /^CONNECT (\d{1,10})$/.exec(new TextDecoder().decode(buf.subarray(0, nl)));
        const port = m ? Number(m[1]) : -1;
        if (port < 0 || port > 0xffffffff) break;
        const id = this.#next++;
        this.#conns.set(id, {
          sock,
          writes: [],
          writing: false,
          closed: false,
          shutWrite: false,
          resume: null,
          early: nl + 1 < len ? buf.slice(nl + 1, len) : null,
          detached: false,
        });
        this.#r?.incoming(id, port);
        return;
      }
    } catch {
      // peer went away during the handshake
    }
    try {
      sock.close();
    } catch {
      // already closed
    }
  }

  connect(port: number): number {
    const id = this.#next++;
    const c: HostConn = {
      sock: null,
      writes: [],
      writing: false,
      closed: false,
      shutWrite: false,
      resume: null,
      early: null,
      detached: false,
    };
    this.#conns.set(id, c);
    Deno.connect({ transport: "unix", path: `${this.path}_${port}` }).then(
      (sock) => {
        if (c.closed || c.detached || this.#stopped) {
          sock.close();
          return;
        }
        c.sock = sock;
        this.#r?.connected(id);
        void this.#readLoop(id, c);
        this.#pump(id, c);
      },
      () => {
        if (c.closed || c.detached) return;
        this.#conns.delete(id);
        this.#r?.refused(id);
      },
    );
    return id;
  }

  accepted(conn: number, hostPort: number): void {
    const c = this.#conns.get(conn);
    if (!c || !c.sock) return;
    c.writes.unshift(new TextEncoder().encode(`OK ${hostPort}\n`));
    this.#pump(conn, c, true);
    if (c.early) {
      const early = c.early;
      c.early = null;
      this.#r?.data(conn, early);
    }
    void this.#readLoop(conn, c);
  }

  send(conn: number, bytes: Uint8Array): void {
    const c = this.#conns.get(conn);
    if (!c || c.closed) return;
    c.writes.push(bytes.slice());
    this.#pump(conn, c);
  }

  /** Write queued bytes in order; `control` writes (the OK line) do not count towards fwd_cnt. */
  #pump(id: number, c: HostConn, control = false): void {
    if (c.writing || !c.sock || c.closed) return;
    const sock = c.sock;
    c.writing = true;
    let skip = control ? c.writes[0].length : 0;
    void (async () => {
      try {
        while (c.writes.length > 0 && !c.closed) {
          const chunk = c.writes[0];
          let off = 0;
          while (off < chunk.length) off += await sock.write(chunk.subarray(off));
          c.writes.shift();
          const counted = Math.max(0, chunk.length - skip);
          skip = Math.max(0, skip - chunk.length);
          if (counted > 0 && !c.detached) this.#r?.written(id, counted);
        }
        if (c.detached) this.#closeSock(c);
        else if (c.shutWrite && !c.closed) await sock.closeWrite().catch(() => {});
      } catch {
        this.errors++;
        if (c.detached) this.#closeSock(c);
        else this.#fail(id, c);
      } finally {
        c.writing = false;
      }
    })();
  }

  async #readLoop(id: number, c: HostConn): Promise<void> {
    const sock = c.sock!;
    for (;;) {
      if (c.closed || c.detached) return;
      if (this.#r && !this.#r.wantMore(id)) {
        await new Promise<void>((res) => c.resume = res);
        continue;
      }
      const buf = new Uint8Array(READ_CHUNK);
      let n: number | null;
      try {
        n = await sock.read(buf);
      } catch {
        if (!c.closed) this.#fail(id, c);
        return;
      }
      if (c.closed || c.detached) return;
      if (n === null) {
        this.#r?.closed(id, false);
        return;
      }
      this.#r?.data(id, buf.subarray(0, n));
    }
  }

  #fail(id: number, c: HostConn): void {
    if (c.closed || c.detached) return;
    this.#conns.delete(id);
    c.detached = true;
    this.#closeSock(c);
    this.#r?.closed(id, true);
  }

  #closeSock(c: HostConn): void {
    if (c.closed) return;
    c.closed = true;
    c.resume?.();
    try {
      c.sock?.close();
    } catch {
      // already closed
    }
  }

  shutdownWrite(conn: number): void {
    const c = this.#conns.get(conn);
    if (!c || c.closed) return;
    c.shutWrite = true;
    if (!c.writing && c.sock) this.#pump(conn, c);
  }

  /** Forget `conn`; bytes already handed to `send` still reach the host before the socket closes. */
  close(conn: number): void {
    const c = this.#conns.get(conn);
    if (!c) return;
    this.#conns.delete(conn);
    c.detached = true;
    c.resume?.();
    if (!c.writing || !c.sock) this.#closeSock(c);
  }

  resume(conn: number): void {
    const c = this.#conns.get(conn);
    const r = c?.resume;
    if (c && r) {
      c.resume = null;
      r();
    }
  }

  shutdown(): void {
    this.#stopped = true;
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
    for (const c of this.#conns.values()) this.#closeSock(c);
    this.#conns.clear();
    try {
      Deno.removeSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** Open the vsock backend of a virtio-vsock-device (listening at `path`). */
export function openUdsVsock(path: string): UdsVsockBackend {
  const b = new UdsVsockBackend(path);
  b.listen();
  return b;
}
