/**
 * `-netdev socket` (QEMU 7.2 net/socket.c): a virtual wire between emulators over the host network.
 * - listen=H:P / connect=H:P: TCP, each frame preceded by its length as a 4-byte big-endian number. A listener
 *   serves one peer at a time and listens again when it leaves; the link is down while no peer is connected.
 * - udp=H:P,localaddr=H:P: one UDP datagram per frame, sent to udp= from a socket bound to localaddr=.
 * - mcast=G:P[,localaddr=A]: one datagram per frame to a multicast group every member hears (loopback on).
 * Frames carry no vnet header. Receiving respects the device's canReceive(): a stream is not read further while
 * a frame waits; datagrams wait in a bounded queue.
 * @module
 */
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import type { NetBackend, NetReceiver } from "../types.ts";
import { UserError } from "../types.ts";

/** QEMU NET_BUFSIZE: the largest frame a socket netdev carries. */
export const NET_BUFSIZE = 4096 + 65536;
/** Milliseconds between delivery retries while the receiver has no room. */
export const SOCKET_RETRY_MS = 2;
/** Datagrams held while the receiver has no room (more are dropped, as a full socket buffer would). */
const DGRAM_BACKLOG = 256;
/** Bytes queued for a stream peer before frames are dropped. */
const STREAM_WRITE_LIMIT = 4 * 1024 * 1024;

/** Options of a socket netdev: exactly one of listen, connect, udp or mcast. */
export interface NetSocketOptions {
  listen?: string;
  connect?: string;
  udp?: string;
  mcast?: string;
  localaddr?: string;
  /** Called with a one-line message on run-time failures (peer refused, connection lost). Default: stderr. */
  onError?: (msg: string) => void;
}

/** Parse QEMU's "host:port" (empty host = any address). @throws UserError */
export function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  if (i < 0) throw new UserError(`host address '${s}' doesn't contain ':' separating host from port`);
  let host = s.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const ps = s.slice(i + 1);
  const port = Number(ps);
  if (!/^\d+$/.test(ps) || port > 65535) throw new UserError(`error parsing port in address '${s}'`);
  return { host, port };
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function defaultOnError(msg: string): void {
  const enc = new TextEncoder();
  try {
    Deno.stderr.writeSync(enc.encode(`microvm.ts: ${msg}\n`));
  } catch {
    // stderr gone: nothing to report to.
  }
}

/** A socket netdev as a NetBackend. */
export class NetSocketBackend implements NetBackend {
  /** Open per the options. @throws UserError on bad addresses or a failed bind */
  static open(o: NetSocketOptions): NetSocketBackend {
    return new NetSocketBackend(o);
  }

  readonly vnetHdr = false;
  readonly netdevType = "socket";
  readonly #onError: (msg: string) => void;
  #infoStr = "";
  #receiver: NetReceiver | null = null;
  #closed = false;
  // stream state
  #listener: Deno.Listener | null = null;
  #conn: Deno.Conn | null = null;
  #writeChain: Promise<void> = Promise.resolve();
  #queuedBytes = 0;
  #tasks: Promise<unknown>[] = [];
  #ready: Promise<void>;
  #sleepers = new Map<ReturnType<typeof setTimeout>, () => void>();
  // datagram state
  #dgram: dgram.Socket | null = null;
  #dgramDst: { host: string; port: number } | null = null;
  #dgramQueue: Uint8Array[] = [];
  #dgramPumping = false;
  #dropped = 0;

  private constructor(o: NetSocketOptions) {
    this.#onError = o.onError ?? defaultOnError;
    const modes = (["listen", "connect", "udp", "mcast"] as const).filter((k) => o[k] !== undefined);
    if (modes.length !== 1) {
      throw new UserError("exactly one of listen=, connect=, mcast= or udp= is required");
    }
    if (o.listen !== undefined) {
      const { host, port } = parseHostPort(o.listen);
      try {
        this.#listener = Deno.listen({ hostname: host === "" ? "0.0.0.0" : host, port, transport: "tcp" });
      } catch (e) {
        throw new UserError(`can't bind ip=${host === "" ? "0.0.0.0" : host} to socket: ${errText(e)}`);
      }
      this.#ready = Promise.resolve();
      this.#track(this.#acceptLoop());
    } else if (o.connect !== undefined) {
      const { host, port } = parseHostPort(o.connect);
      if (host === "") throw new UserError(`host address '${o.connect}' has no host`);
      this.#infoStr = `socket: connect to ${host}:${port}`;
      this.#ready = this.#track(this.#connect(host, port));
    } else if (o.udp !== undefined) {
      if (o.localaddr === undefined) throw new UserError("localaddr= is mandatory with udp=");
      const remote = parseHostPort(o.udp);
      const local = parseHostPort(o.localaddr);
      this.#dgramDst = { host: remote.host === "" ? "127.0.0.1" : remote.host, port: remote.port };
      this.#infoStr = `socket: udp=${remote.host}:${remote.port}`;
      this.#ready = this.#openDgram(local.host === "" ? "0.0.0.0" : local.host, local.port, null, null);
    } else {
      const g = parseHostPort(o.mcast!);
      if (!isMulticast(g.host)) {
        throw new UserError(`specified mcastaddr ${g.host} does not contain a multicast address`);
      }
      this.#dgramDst = { host: g.host, port: g.port };
      this.#infoStr = `socket: mcast=${g.host}:${g.port}`;
      this.#ready = this.#openDgram(g.host, g.port, g.host, o.localaddr ?? null);
    }
  }

  /** QEMU's info_str ("socket: connect to 127.0.0.1:1234", "" while a listener waits). */
  get infoStr(): string {
    return this.#infoStr;
  }

  /** Resolves once the socket is usable (connected, or bound). Rejects never; failures go to onError. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** The local TCP port of a listener (useful with listen=:0). */
  get listenPort(): number {
    const a = this.#listener?.addr;
    return a !== undefined && a.transport === "tcp" ? a.port : 0;
  }

  /** Frames dropped because no peer was connected or the write queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** True while a stream peer is connected (or always, for datagram modes). */
  get connected(): boolean {
    return this.#dgram !== null || this.#conn !== null;
  }

  #track<T>(p: Promise<T>): Promise<void> {
    const q = p.then(() => {}, (e) => {
      if (!this.#closed) this.#onError(`-netdev socket: ${errText(e)}`);
    });
    this.#tasks.push(q);
    return q;
  }

  // ------------------------------------------------------------------------------------------------- stream

  async #acceptLoop(): Promise<void> {
    const l = this.#listener!;
    while (!this.#closed) {
      let c: Deno.Conn;
      try {
        c = await l.accept();
      } catch (e) {
        if (this.#closed) return;
        throw e;
      }
      if (this.#closed) {
        c.close();
        return;
      }
      const ra = c.remoteAddr;
      this.#infoStr = ra.transport === "tcp" ? `socket: connection from ${ra.hostname}:${ra.port}` : "socket";
      await this.#serve(c);
      this.#infoStr = "";
    }
  }

  async #connect(host: string, port: number): Promise<void> {
    let c: Deno.Conn;
    try {
      c = await Deno.connect({ hostname: host, port, transport: "tcp" });
    } catch (e) {
      throw new Error(`can't connect socket to ${host}:${port}: ${errText(e)}`);
    }
    if (this.#closed) {
      c.close();
      return;
    }
    // Serve in the background: `ready` means connected.
    this.#track(this.#serve(c));
  }

  /** Read length-prefixed frames from one connection until it ends. */
  async #serve(c: Deno.Conn): Promise<void> {
    try {
      (c as Deno.TcpConn).setNoDelay?.(true);
    } catch {
      // not TCP
    }
    this.#conn = c;
    this.#queuedBytes = 0;
    let buf = new Uint8Array(65536);
    let have = 0;
    const chunk = new Uint8Array(65536);
    try {
      for (;;) {
        // Deliver every whole frame buffered so far.
        let off = 0;
        while (have - off >= 4) {
          const len = ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
          if (len > NET_BUFSIZE) throw new Error(`frame of ${len} bytes exceeds ${NET_BUFSIZE}`);
          if (have - off - 4 < len) break;
          const frame = buf.subarray(off + 4, off + 4 + len);
          if (!(await this.#waitRoom())) return;
          this.#receiver?.receive(frame);
          off += 4 + len;
        }
        if (off > 0) {
          buf.copyWithin(0, off, have);
          have -= off;
        }
        const n = await c.read(chunk);
        if (n === null || this.#closed) return;
        if (have + n > buf.length) {
          const nb = new Uint8Array(Math.max(buf.length * 2, have + n));
          nb.set(buf.subarray(0, have));
          buf = nb;
        }
        buf.set(chunk.subarray(0, n), have);
        have += n;
      }
    } catch (e) {
      if (!this.#closed) this.#onError(`-netdev socket: connection lost: ${errText(e)}`);
    } finally {
      if (this.#conn === c) this.#conn = null;
      try {
        c.close();
      } catch {
        // already closed
      }
    }
  }

  /** Wait until the receiver can take a frame; false if the backend closed meanwhile. */
  async #waitRoom(): Promise<boolean> {
    while (!this.#closed) {
      const r = this.#receiver;
      if (r !== null && r.canReceive()) return true;
      await this.#sleep();
    }
    return false;
  }

  #sleep(): Promise<void> {
    return new Promise<void>((res) => {
      const t = setTimeout(() => {
        this.#sleepers.delete(t);
        res();
      }, SOCKET_RETRY_MS);
      this.#sleepers.set(t, res);
    });
  }

  // ----------------------------------------------------------------------------------------------- datagram

  #openDgram(host: string, port: number, group: string | null, localaddr: string | null): Promise<void> {
    const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
    this.#dgram = s;
    s.on(
      "message",
      (msg: Buffer) => this.#onDatagram(new Uint8Array(msg.buffer, msg.byteOffset, msg.length)),
    );
    s.on("error", (e: Error) => {
      if (!this.#closed) this.#onError(`-netdev socket: ${e.message}`);
    });
    return new Promise<void>((res) => {
      s.bind({ address: host, port }, () => {
        if (group !== null) {
          try {
            s.addMembership(group, localaddr ?? undefined);
            s.setMulticastLoopback(true);
            if (localaddr !== null) s.setMulticastInterface(localaddr);
          } catch (e) {
            this.#onError(`-netdev socket: can't add socket to multicast group ${group}: ${errText(e)}`);
          }
        }
        res();
      });
    });
  }

  #onDatagram(frame: Uint8Array): void {
    if (this.#closed || frame.length === 0 || frame.length > NET_BUFSIZE) return;
    const r = this.#receiver;
    if (this.#dgramQueue.length === 0 && r !== null && r.canReceive()) {
      r.receive(frame);
      return;
    }
    if (this.#dgramQueue.length >= DGRAM_BACKLOG) {
      this.#dropped++;
      return;
    }
    this.#dgramQueue.push(frame.slice());
    if (!this.#dgramPumping) {
      this.#dgramPumping = true;
      this.#track(this.#pumpDgram());
    }
  }

  async #pumpDgram(): Promise<void> {
    try {
      while (this.#dgramQueue.length > 0) {
        if (!(await this.#waitRoom())) return;
        this.#receiver!.receive(this.#dgramQueue.shift()!);
      }
    } finally {
      this.#dgramPumping = false;
    }
  }

  // ------------------------------------------------------------------------------------------------- common

  send(frame: Uint8Array): boolean {
    if (this.#closed || frame.length > NET_BUFSIZE) return false;
    if (this.#dgram !== null) {
      const d = this.#dgramDst!;
      this.#dgram.send(Buffer.from(frame), d.port, d.host);
      return true;
    }
    const c = this.#conn;
    if (c === null || this.#queuedBytes + frame.length + 4 > STREAM_WRITE_LIMIT) {
      this.#dropped++;
      return false;
    }
    const out = new Uint8Array(4 + frame.length);
    new DataView(out.buffer).setUint32(0, frame.length, false);
    out.set(frame, 4);
    this.#queuedBytes += out.length;
    this.#writeChain = this.#writeChain.then(async () => {
      try {
        let off = 0;
        while (off < out.length && this.#conn === c) off += await c.write(out.subarray(off));
      } catch {
        // The reader notices the broken connection and reports it.
      } finally {
        this.#queuedBytes -= out.length;
      }
    });
    return true;
  }

  setReceiver(r: NetReceiver | null): void {
    this.#receiver = r;
  }

  /** Close sockets; `closed` resolves when every background task has finished. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [t, res] of this.#sleepers) {
      clearTimeout(t);
      res();
    }
    this.#sleepers.clear();
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
    this.#conn = null;
    this.#dgram?.close();
    this.#dgramQueue = [];
  }

  /** Resolves when all background work stopped (after close). */
  get closed(): Promise<void> {
    return Promise.all([...this.#tasks, this.#writeChain]).then(() => {});
  }
}

function isMulticast(host: string): boolean {
  const m = /^(\d+)\.\d+\.\d+\.\d+$/.exec(host);
  return m !== null && Number(m[1]) >= 224 && Number(m[1]) <= 239;
}
