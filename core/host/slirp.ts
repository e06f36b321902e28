/**
 * `-netdev user`: QEMU's user-mode network on libslirp (the library QEMU 7.2 links, Debian libslirp0) through
 * Deno FFI. No root, no tap: the guest's TCP/UDP become ordinary host sockets owned by libslirp.
 *
 * Threads and the event loop: every libslirp call (slirp_input, slirp_pollfds_fill/poll, hostfwd) happens on
 * the JS thread, so its callbacks (send_packet, timers, add_poll/get_revents) run synchronously there. Only
 * poll(2) runs off-thread, as a nonblocking FFI call on Deno's blocking pool over the descriptors libslirp
 * asked for plus an eventfd; the JS thread keeps running the vCPU (the software CPU and the KVM loop yield to
 * the event loop every few ms) and picks up the result between slices, as the tap backend does. Guest frames
 * are handed to slirp_input at once; when that may have created sockets, the eventfd wakes the poll so the
 * next round includes them. The poll timeout is libslirp's (TCP timers), at most POLL_MAX_MS.
 *
 * Backpressure: frames for the guest go straight to the NIC while it can take them; otherwise they wait in a
 * queue bounded by TO_GUEST_MAX_BYTES (more are dropped, as a full NIC queue drops, and TCP retransmits), and
 * while the queue is non-empty libslirp is not polled, so host sockets are not read (their kernel buffers
 * then push back on the peer).
 * @module
 */
import type { NetBackend, NetReceiver } from "../types.ts";
import { UserError } from "../types.ts";
import {
  configVersionFor,
  encodeSlirpConfig,
  inAddrArg,
  LIBC_SYMBOLS,
  type LibcLib,
  LIBSLIRP_SONAME,
  pollToSlirp,
  SLIRP_CB,
  SLIRP_SYMBOLS,
  type SlirpLib,
  slirpToPoll,
} from "./_slirp_ffi.ts";
import { buildDnsReply, parseDnsQuery, resolveQuery } from "./_slirp_dns.ts";
import { type HostFwd, inetAton, parseHostFwd, parseHostFwdKey, type SlirpSettings } from "./slirp_config.ts";

/** The line a host without libslirp gets. */
export const LIBSLIRP_MISSING = "-netdev user: libslirp not found (install the libslirp0 package)";
/** Longest poll(2) wait, ms. */
export const POLL_MAX_MS = 1000;
/** Poll rounds served in a row without yielding to the event loop. */
const SYNC_ROUNDS = 8;
/** Retry interval while the NIC cannot take queued frames, ms. */
export const RETRY_MS = 2;
/** Bytes of frames held for a NIC that cannot take them. */
export const TO_GUEST_MAX_BYTES = 4 * 1024 * 1024;
/** DNS lookups in flight at once (more queries are dropped; the guest's resolver retries). */
const DNS_MAX_INFLIGHT = 32;
const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;
const POLLIN = 0x1;

/** Options of a user-mode network beyond its settings. */
export interface SlirpOptions {
  /** libslirp's guest_error messages (QEMU prints them with -d guest_errors). */
  onGuestError?: (msg: string) => void;
  /** Load this file instead of libslirp.so.0 (tests). */
  libraryPath?: string;
}

/** What the backend keeps of an UnsafeCallback: its code pointer, and close(). */
interface Closable {
  readonly pointer: Deno.PointerObject;
  close(): void;
}

/** libslirp's SlirpTimerCb. */
const TIMER_CB = { parameters: ["pointer"], result: "void" } as const;

/** Frame counters of a user-mode network. */
export interface SlirpStats {
  toGuest: number;
  fromGuest: number;
  /** Frames for the guest dropped because the queue was full. */
  dropped: number;
  guestErrors: number;
  dnsAnswered: number;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A libslirp instance as a NetBackend (raw Ethernet frames, no vnet header). */
export class SlirpBackend implements NetBackend {
  /**
   * Load libslirp and start a stack with `s` (hostfwd/guestfwd rules included).
   * @throws UserError when the library is missing or a rule cannot be set up (QEMU's wording)
   */
  static open(s: SlirpSettings, o: SlirpOptions = {}): SlirpBackend {
    let lib: SlirpLib;
    try {
      lib = Deno.dlopen(o.libraryPath ?? LIBSLIRP_SONAME, SLIRP_SYMBOLS);
    } catch (e) {
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
        throw new UserError("-netdev user: loading libslirp needs --allow-ffi");
      }
      throw new UserError(LIBSLIRP_MISSING);
    }
    let libc: LibcLib;
    try {
      libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
    } catch (e) {
      lib.close();
      throw new UserError(`-netdev user: cannot load libc: ${errText(e)}`);
    }
    try {
      return new SlirpBackend(lib, libc, s, o);
    } catch (e) {
      lib.close();
      libc.close();
      throw e;
    }
  }

  readonly vnetHdr = false;
  readonly netdevType = "user";
  readonly infoStr: string;
  readonly settings: SlirpSettings;
  /** libslirp's version string ("4.7.0"). */
  readonly version: string;
  readonly #lib: SlirpLib;
  readonly #libc: LibcLib;
  readonly #slirp: Deno.PointerValue;
  readonly #wakeFd: number;
  readonly #callbacks: Closable[] = [];
  readonly #onGuestError: (msg: string) => void;
  #addPoll: Closable;
  #getRevents: Closable;
  #pollBuf = new Uint8Array(8 * 64);
  #pollView = new DataView(this.#pollBuf.buffer);
  #nfds = 0;
  #timeoutBuf = new Uint32Array(1);
  #receiver: NetReceiver | null = null;
  #toGuest: Uint8Array[] = [];
  #toGuestBytes = 0;
  #closed = false;
  #woken = false;
  #pumping: Promise<void> | null = null;
  #sleep: { t: ReturnType<typeof setTimeout>; res: () => void } | null = null;
  #timers = new Map<
    number,
    { cb: Deno.PointerValue; opaque: Deno.PointerValue; t: ReturnType<typeof setTimeout> | null }
  >();
  #nextTimer = 1;
  #dnsInflight = 0;
  #guestFwdConns: Deno.TcpConn[] = [];
  #stats: SlirpStats = { toGuest: 0, fromGuest: 0, dropped: 0, guestErrors: 0, dnsAnswered: 0 };
  readonly #t0 = performance.now();

  private constructor(lib: SlirpLib, libc: LibcLib, s: SlirpSettings, o: SlirpOptions) {
    this.#lib = lib;
    this.#libc = libc;
    this.settings = s;
    this.infoStr = s.infoStr;
    this.#onGuestError = o.onGuestError ?? (() => {});
    const vp = lib.symbols.slirp_version_string();
    this.version = vp === null ? "0" : Deno.UnsafePointerView.getCString(vp);
    if (!/^4\./.test(this.version)) {
      throw new UserError(`-netdev user: libslirp ${this.version} is not supported (need 4.x)`);
    }
    this.#wakeFd = libc.symbols.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wakeFd < 0) throw new UserError("-netdev user: eventfd failed");
    // From here on, failures release what the constructor made; open() closes the libraries.

    const cb = new Uint8Array(SLIRP_CB.size);
    const cbv = new DataView(cb.buffer);
    const put = (off: number, c: Closable) => {
      this.#callbacks.push(c);
      cbv.setBigUint64(off, BigInt(Deno.UnsafePointer.value(c.pointer)), true);
    };
    put(
      SLIRP_CB.send_packet,
      new Deno.UnsafeCallback(
        { parameters: ["pointer", "usize", "pointer"], result: "isize" } as const,
        (buf, len) => BigInt(this.#sendPacket(buf, Number(len))),
      ),
    );
    put(
      SLIRP_CB.guest_error,
      new Deno.UnsafeCallback({ parameters: ["pointer", "pointer"], result: "void" } as const, (msg) => {
        this.#stats.guestErrors++;
        this.#onGuestError(msg === null ? "" : Deno.UnsafePointerView.getCString(msg));
      }),
    );
    put(
      SLIRP_CB.clock_get_ns,
      new Deno.UnsafeCallback({ parameters: ["pointer"], result: "i64" } as const, () => this.#nowNs()),
    );
    put(
      SLIRP_CB.timer_new,
      new Deno.UnsafeCallback(
        { parameters: ["function", "pointer", "pointer"], result: "pointer" } as const,
        (fn, opaque) => {
          const id = this.#nextTimer++;
          this.#timers.set(id, { cb: fn, opaque, t: null });
          return Deno.UnsafePointer.create(BigInt(id));
        },
      ),
    );
    put(
      SLIRP_CB.timer_free,
      new Deno.UnsafeCallback({ parameters: ["pointer", "pointer"], result: "void" } as const, (tp) => {
        const id = Number(Deno.UnsafePointer.value(tp));
        const t = this.#timers.get(id);
        if (t?.t != null) clearTimeout(t.t);
        this.#timers.delete(id);
      }),
    );
    put(
      SLIRP_CB.timer_mod,
      new Deno.UnsafeCallback(
        { parameters: ["pointer", "i64", "pointer"], result: "void" } as const,
        (tp, expireMs) => this.#timerMod(Number(Deno.UnsafePointer.value(tp)), Number(expireMs)),
      ),
    );
    const noopFd = new Deno.UnsafeCallback(
      { parameters: ["i32", "pointer"], result: "void" } as const,
      () => {},
    );
    put(SLIRP_CB.register_poll_fd, noopFd);
    cbv.setBigUint64(SLIRP_CB.unregister_poll_fd, BigInt(Deno.UnsafePointer.value(noopFd.pointer)), true);
    put(
      SLIRP_CB.notify,
      new Deno.UnsafeCallback({ parameters: ["pointer"], result: "void" } as const, () => this.#wake()),
    );
    this.#addPoll = new Deno.UnsafeCallback(
      { parameters: ["i32", "i32", "pointer"], result: "i32" } as const,
      (fd, events) => this.#addPollFd(fd, events),
    );
    this.#getRevents = new Deno.UnsafeCallback(
      { parameters: ["i32", "pointer"], result: "i32" } as const,
      (idx) => this.#revents(idx),
    );
    this.#callbacks.push(this.#addPoll, this.#getRevents);

    const cfg = encodeSlirpConfig(s, configVersionFor(this.version));
    this.#slirp = lib.symbols.slirp_new(cfg.bytes, cb, null);
    void cfg.keep;
    if (this.#slirp === null) {
      this.#releaseCallbacks();
      throw new UserError("-netdev user: libslirp could not start (slirp_new failed)");
    }
    try {
      for (const f of s.hostfwd) this.#addHostFwd(f);
      for (const g of s.guestfwd) this.#addGuestFwd(g);
    } catch (e) {
      lib.symbols.slirp_cleanup(this.#slirp);
      this.#releaseCallbacks();
      throw e;
    }
  }

  // ------------------------------------------------------------------------------------------ forwarding

  #addHostFwd(f: HostFwd): void {
    const host = f.hostAddr === "" ? 0 : inAddrArg(inetAton(f.hostAddr)!);
    const guest = f.guestAddr === "" ? 0 : inAddrArg(inetAton(f.guestAddr)!);
    const r = this.#lib.symbols.slirp_add_hostfwd(
      this.#slirp,
      f.udp ? 1 : 0,
      host,
      f.hostPort,
      guest,
      f.guestPort,
    );
    if (r < 0) throw new UserError(`Could not set up host forwarding rule '${f.text}'`);
    this.#wake();
  }

  /** HMP hostfwd_add: a rule in QEMU's syntax. @throws UserError with QEMU's message */
  hostfwdAdd(rule: string): void {
    if (this.#closed) throw new UserError("-netdev user: the network is closed");
    this.#addHostFwd(parseHostFwd(rule));
  }

  /** HMP hostfwd_remove: QEMU's reply line ("host forwarding rule for … removed|not found", "invalid format"). */
  hostfwdRemove(spec: string): string {
    const k = parseHostFwdKey(spec);
    if (k === null) return "invalid format";
    const host = k.hostAddr === "" ? 0 : inAddrArg(inetAton(k.hostAddr)!);
    const r = this.#closed
      ? -1
      : this.#lib.symbols.slirp_remove_hostfwd(this.#slirp, k.udp ? 1 : 0, host, k.hostPort);
    return `host forwarding rule for ${spec} ${r < 0 ? "not found" : "removed"}`;
  }

  #addGuestFwd(g: SlirpSettings["guestfwd"][number]): void {
    const addr = inetAton(g.server === "" ? "0.0.0.0" : g.server)!;
    const conflict = () =>
      new UserError(`Conflicting/invalid host:port in guest forwarding rule '${g.text}'`);
    if (g.cmd !== undefined) {
      const r = this.#lib.symbols.slirp_add_exec(
        this.#slirp,
        new TextEncoder().encode(g.cmd + "\0"),
        addr,
        g.port,
      );
      if (r < 0) throw conflict();
      return;
    }
    // tcp:HOST:PORT: relay each guest connection's bytes to one host TCP connection, as QEMU's chardev does.
    const target = g.connect!;
    let conn: Deno.TcpConn | null = null;
    const pendingOut: Uint8Array[] = [];
    let chain: Promise<void> = Promise.resolve();
    // Writes complete in order and in full (a write may take only part of a buffer).
    const send = (c: Deno.TcpConn, d: Uint8Array) => {
      chain = chain.then(async () => {
        for (let o = 0; o < d.length;) o += await c.write(d.subarray(o));
      }).catch(() => {});
    };
    const write = new Deno.UnsafeCallback(
      { parameters: ["pointer", "usize", "pointer"], result: "isize" } as const,
      (buf, len) => {
        const n = Number(len);
        if (buf === null || n <= 0) return 0n;
        const data = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(buf, n)).slice();
        if (conn) send(conn, data);
        else pendingOut.push(data);
        return BigInt(n);
      },
    );
    this.#callbacks.push(write);
    const r = this.#lib.symbols.slirp_add_guestfwd(this.#slirp, write.pointer, null, addr, g.port);
    if (r < 0) throw conflict();
    const gaddr = inAddrArg(addr);
    Deno.connect({ hostname: target.host, port: target.port }).then(async (c) => {
      if (this.#closed) return c.close();
      conn = c;
      this.#guestFwdConns.push(c);
      for (const d of pendingOut.splice(0)) send(c, d);
      const buf = new Uint8Array(16384);
      for (;;) {
        const n = await c.read(buf).catch(() => null);
        if (n === null || this.#closed) break;
        let off = 0;
        while (off < n && !this.#closed) {
          // Room in the guest connection's buffer (0 also while the guest has not connected yet).
          const room = Number(this.#lib.symbols.slirp_socket_can_recv(this.#slirp, gaddr, g.port));
          if (room <= 0) {
            await new Promise((res) => setTimeout(res, RETRY_MS));
            continue;
          }
          const k = Math.min(room, n - off);
          this.#lib.symbols.slirp_socket_recv(this.#slirp, gaddr, g.port, buf.subarray(off, off + k), k);
          off += k;
          this.#wake();
        }
      }
    }, (e) => {
      const line = `microvm.ts: -netdev user: guestfwd '${g.text}': cannot connect to ` +
        `${target.host}:${target.port}: ${errText(e)}\n`;
      try {
        Deno.stderr.writeSync(new TextEncoder().encode(line));
      } catch {
        // stderr gone: nothing to report to
      }
    });
  }

  /** HMP info usernet: libslirp's connection table (QEMU prints it under "Hub -1 (id):"). */
  connectionInfo(): string {
    if (this.#closed) return "";
    const p = this.#lib.symbols.slirp_connection_info(this.#slirp);
    if (p === null) return "";
    const s = Deno.UnsafePointerView.getCString(p);
    this.#libc.symbols.free(p);
    return s;
  }

  /** Counters: frames each way, frames dropped for a full queue, libslirp guest errors, DNS answers. */
  get stats(): Readonly<SlirpStats> {
    return { ...this.#stats };
  }

  /** Bytes waiting for the NIC. */
  get queuedBytes(): number {
    return this.#toGuestBytes;
  }

  // ------------------------------------------------------------------------------------------ guest side

  setReceiver(r: NetReceiver | null): void {
    this.#receiver = r;
    if (r !== null && this.#pumping === null && !this.#closed) this.#pumping = this.#pump();
  }

  /** A frame from the guest: DNS A/AAAA queries are answered here, the rest goes to libslirp. */
  send(frame: Uint8Array): boolean {
    if (this.#closed) return false;
    this.#stats.fromGuest++;
    if (!this.settings.restricted && this.settings.ipv4) {
      const q = parseDnsQuery(frame, this.settings.dns);
      if (q !== null) {
        if (this.#dnsInflight >= DNS_MAX_INFLIGHT) return true;
        this.#dnsInflight++;
        resolveQuery(q).then((addrs) => {
          this.#dnsInflight--;
          if (this.#closed) return;
          this.#stats.dnsAnswered++;
          this.#toGuestFrame(buildDnsReply(q, addrs), true);
        });
        return true;
      }
    }
    this.#lib.symbols.slirp_input(this.#slirp, frame, frame.length);
    this.#wake();
    return true;
  }

  #sendPacket(buf: Deno.PointerValue, len: number): number {
    if (buf === null || len <= 0 || this.#closed) return len;
    const view = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(buf, len));
    this.#toGuestFrame(view, false);
    return len;
  }

  /** Deliver now when the NIC can take it, else queue (a copy) within the bound. */
  #toGuestFrame(frame: Uint8Array, owned: boolean): void {
    const r = this.#receiver;
    if (r !== null && this.#toGuest.length === 0 && r.canReceive()) {
      this.#stats.toGuest++;
      r.receive(frame);
      return;
    }
    if (this.#toGuestBytes + frame.length > TO_GUEST_MAX_BYTES) {
      this.#stats.dropped++;
      return;
    }
    this.#toGuest.push(owned ? frame : frame.slice());
    this.#toGuestBytes += frame.length;
    this.#wake();
  }

  #flushToGuest(): void {
    const r = this.#receiver;
    if (r === null) return;
    while (this.#toGuest.length > 0 && r.canReceive()) {
      const f = this.#toGuest.shift()!;
      this.#toGuestBytes -= f.length;
      this.#stats.toGuest++;
      r.receive(f);
    }
  }

  // ------------------------------------------------------------------------------------------ poll loop

  #nowNs(): bigint {
    return BigInt(Math.round((performance.now() - this.#t0) * 1e6));
  }

  #timerMod(id: number, expireMs: number): void {
    const t = this.#timers.get(id);
    if (!t) return;
    if (t.t !== null) clearTimeout(t.t);
    const delay = Math.max(0, expireMs - (performance.now() - this.#t0));
    t.t = setTimeout(() => {
      t.t = null;
      if (this.#closed || !this.#timers.has(id) || t.cb === null) return;
      new Deno.UnsafeFnPointer(t.cb as Deno.PointerObject<typeof TIMER_CB>, TIMER_CB).call(t.opaque);
      this.#wake();
    }, Math.min(delay, 0x7fffffff));
  }

  #wake(): void {
    if (this.#woken || this.#closed) return;
    this.#woken = true;
    this.#libc.symbols.write(this.#wakeFd, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), 8n);
    if (this.#sleep !== null) {
      clearTimeout(this.#sleep.t);
      this.#sleep.res();
      this.#sleep = null;
    }
  }

  #addPollFd(fd: number, events: number): number {
    const idx = this.#nfds;
    if ((idx + 1) * 8 > this.#pollBuf.length) {
      const bigger = new Uint8Array(this.#pollBuf.length * 2);
      bigger.set(this.#pollBuf);
      this.#pollBuf = bigger;
      this.#pollView = new DataView(bigger.buffer);
    }
    const v = this.#pollView;
    v.setInt32(idx * 8, fd, true);
    v.setInt16(idx * 8 + 4, slirpToPoll(events), true);
    v.setInt16(idx * 8 + 6, 0, true);
    this.#nfds++;
    return idx;
  }

  #revents(idx: number): number {
    if (idx < 0 || idx >= this.#nfds) return 0;
    return pollToSlirp(this.#pollView.getInt16(idx * 8 + 6, true));
  }

  async #pump(): Promise<void> {
    const s = this.#lib.symbols;
    const drain = new Uint8Array(8);
    let syncRounds = 0;
    while (!this.#closed) {
      this.#flushToGuest();
      if (this.#toGuest.length > 0) {
        // The NIC is full: leave host sockets unread until it drains.
        await new Promise<void>((res) => {
          this.#sleep = {
            res,
            t: setTimeout(() => {
              this.#sleep = null;
              res();
            }, RETRY_MS),
          };
        });
        this.#woken = false;
        continue;
      }
      this.#nfds = 0;
      this.#addPollFd(this.#wakeFd, 1);
      this.#timeoutBuf[0] = 0xffffffff;
      s.slirp_pollfds_fill(this.#slirp, this.#timeoutBuf, this.#addPoll.pointer, null);
      const timeout = Math.min(this.#timeoutBuf[0], POLL_MAX_MS);
      // Wake-ups that came before this fill are already reflected in it.
      this.#woken = false;
      this.#libc.symbols.read(this.#wakeFd, drain, 8n);
      // Descriptors already ready are served at once (poll with timeout 0 on this thread, a few rounds in a
      // row at most); only when nothing is ready does the wait go off-thread, which yields to the event loop.
      // The vCPU loop lets the event loop poll host I/O only every few ms, so one round per turn would cap
      // how much crosses per turn.
      let n = syncRounds < SYNC_ROUNDS ? this.#libc.symbols.pollNow(this.#pollBuf, BigInt(this.#nfds), 0) : 0;
      if (n > 0) syncRounds++;
      else {
        syncRounds = 0;
        n = await this.#libc.symbols.poll(this.#pollBuf, BigInt(this.#nfds), timeout);
      }
      if (this.#closed) break;
      if (this.#pollView.getInt16(6, true) & POLLIN) {
        this.#libc.symbols.read(this.#wakeFd, drain, 8n);
      }
      s.slirp_pollfds_poll(this.#slirp, n < 0 ? 1 : 0, this.#getRevents.pointer, null);
    }
  }

  /** Resolves when the poll loop has stopped (after close). */
  get stopped(): Promise<void> {
    return this.#pumping ?? Promise.resolve();
  }

  #releaseCallbacks(): void {
    for (const c of this.#callbacks) c.close();
    this.#callbacks.length = 0;
    if (this.#wakeFd >= 0) this.#libc.symbols.close(this.#wakeFd);
  }

  #freeHandles(): void {
    this.#releaseCallbacks();
    this.#lib.close();
    this.#libc.close();
  }

  /** Close every host socket now (slirp_cleanup); the library is released once the poll in flight returns. */
  close(): void {
    if (this.#closed) return;
    this.#libc.symbols.write(this.#wakeFd, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), 8n);
    this.#closed = true;
    if (this.#sleep !== null) {
      clearTimeout(this.#sleep.t);
      this.#sleep.res();
      this.#sleep = null;
    }
    for (const t of this.#timers.values()) if (t.t !== null) clearTimeout(t.t);
    for (const c of this.#guestFwdConns) {
      try {
        c.close();
      } catch {
        // already closed by the peer
      }
    }
    this.#lib.symbols.slirp_cleanup(this.#slirp);
    this.#timers.clear();
    this.#toGuest = [];
    this.#toGuestBytes = 0;
    const finish = () => this.#freeHandles();
    if (this.#pumping !== null) this.#pumping.then(finish, finish);
    else finish();
  }
}
