/**
 * Host character backends (QEMU's -chardev / -serial targets): null, file, stdio, socket (unix/tcp,
 * server/client), pipe, plus an in-memory one for tests. All share one input pump that respects the
 * device's CharReceiver.canReceive() (backpressure: bytes wait here, the source is not read further while
 * too much waits) and QEMU's mux escapes (Ctrl-A x/c/h/b, Ctrl-A Ctrl-A).
 * This file is the only place that touches Deno I/O for character devices.
 * @module
 */
import type { CharBackend, CharReceiver } from "../types.ts";
import { UserError } from "../types.ts";

/** QEMU's default mux escape character (Ctrl-A). */
export const MUX_ESCAPE = 0x01;
/** Milliseconds between delivery retries while the device has no room. */
export const INPUT_RETRY_MS = 5;
/** Bytes held for the device before a backend stops reading its source. */
export const INPUT_HIGH_WATER = 4096;

const MUX_HELP = [
  "% h    print this help\n\r",
  "% x    exit emulator\n\r",
  "% s    save disk data back to file (if -snapshot)\n\r",
  "% t    toggle console timestamps\n\r",
  "% b    send break (magic sysrq)\n\r",
  "% c    switch between console and monitor\n\r",
  "% %  sends %\n\r",
];

/** A parsed -chardev (or -serial shorthand) description. Booleans may be given as "on"/"off". */
export interface ChardevSpec {
  backend: string;
  id: string;
  path?: string;
  host?: string;
  port?: number | string;
  server?: boolean | string;
  wait?: boolean | string;
  mux?: boolean | string;
  /** file: append instead of truncating. */
  append?: boolean | string;
  /** stdio: let Ctrl-C etc. raise signals (default on; "mon:stdio" sets off). */
  signal?: boolean | string;
  /** Copy all output to this file too (QEMU's common logfile option). */
  logfile?: string;
  logappend?: boolean | string;
  [option: string]: unknown;
}

/** Callbacks a mux'ed backend raises for Ctrl-A commands. */
export interface MuxCallbacks {
  /** Ctrl-A x (after "QEMU: Terminated" was printed). */
  onQuit?: () => void;
  /** Ctrl-A c: focus moved to the monitor (true) or back to the device (false). */
  onToggleMonitor?: (monitorFocused: boolean) => void;
  /** Ctrl-A b. */
  onBreak?: () => void;
  /** stdio on a terminal: a terminating signal arrived (default: exit 1). */
  onSignal?: (signal: Deno.Signal) => void;
}

/** Common options of every host backend. */
export interface HostCharOptions extends MuxCallbacks {
  id?: string;
  /** Process QEMU mux escapes on input (mux=on). */
  mux?: boolean;
  /** Also append every output byte to this file. */
  logfile?: string;
  logappend?: boolean;
}

/**
 * Base of all host backends: output goes to `_output`, host input goes through `_input` into a queue that
 * is delivered to the receiver as fast as its `canReceive()` allows, retried on `accept()` or a short timer.
 */
export abstract class HostChar implements CharBackend {
  readonly id: string;
  onQuit: (() => void) | undefined;
  onToggleMonitor: ((monitorFocused: boolean) => void) | undefined;
  onBreak: (() => void) | undefined;

  readonly #mux: boolean;
  #escPending = false;
  #monitorFocused = false;
  #receiver: CharReceiver | null = null;
  #monitorReceiver: CharReceiver | null = null;
  /** Pending input segments, each tagged with the mux focus it was typed under. */
  readonly #queue: Array<{ data: Uint8Array; monitor: boolean }> = [];
  #queued = 0;
  #retry: ReturnType<typeof setTimeout> | null = null;
  #roomWaiters: Array<() => void> = [];
  #log: Deno.FsFile | null = null;
  #closed = false;

  constructor(opts: HostCharOptions = {}) {
    this.id = opts.id ?? "";
    this.#mux = opts.mux ?? false;
    this.onQuit = opts.onQuit;
    this.onToggleMonitor = opts.onToggleMonitor;
    this.onBreak = opts.onBreak;
    if (opts.logfile !== undefined) this.#log = openForWrite(opts.logfile, opts.logappend ?? false);
  }

  /** QEMU's `info chardev` filename (e.g. "stdio", "disconnected:unix:/tmp/s,server=on"). */
  abstract get filename(): string;

  /** True when a host peer is connected. */
  get connected(): boolean {
    return true;
  }

  /** True while mux focus is on the monitor. */
  get monitorFocused(): boolean {
    return this.#monitorFocused;
  }

  /** Bytes received from the host and not yet taken by the device. */
  get pendingInput(): number {
    return this.#queued;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Guest → host. The data is copied if it must outlive the call. */
  write(data: Uint8Array): void {
    if (this.#closed || data.length === 0) return;
    this._output(data);
    if (this.#log) writeAllSync(this.#log, data);
  }

  setReceiver(r: CharReceiver | null): void {
    this.#receiver = r;
    if (this.#queued) this.#schedule(0);
  }

  /** The monitor's receiver for a mux'ed backend (input goes there while the monitor has focus). */
  setMonitorReceiver(r: CharReceiver | null): void {
    this.#monitorReceiver = r;
    if (r === null) {
      this.#monitorFocused = false;
      for (const seg of this.#queue) seg.monitor = false; // nobody left to take them: the device gets them
    }
    if (this.#queued) this.#schedule(0);
  }

  /** Switch mux focus explicitly (as Ctrl-A c does). */
  setMonitorFocus(on: boolean): void {
    if (on && this.#monitorReceiver === null) return;
    if (on === this.#monitorFocused) return;
    this.#monitorFocused = on;
    this.onToggleMonitor?.(on);
    if (this.#queued) this.#schedule(0);
  }

  /** The device has room again: deliver soon (never re-entrantly). */
  accept(): void {
    if (this.#queued) this.#schedule(0);
  }

  /** Deliver queued input now as far as the receiver takes it (host side only, never from a handler). */
  flushInput(): void {
    if (this.#retry !== null) {
      clearTimeout(this.#retry);
      this.#retry = null;
    }
    let target: CharReceiver | null = null;
    while (this.#queued) {
      const head = this.#queue[0];
      target = head.monitor ? this.#monitorReceiver : this.#receiver;
      if (!target) break;
      const room = target.canReceive();
      if (room <= 0) break;
      const n = Math.min(room, head.data.length);
      const chunk = head.data.subarray(0, n);
      if (n === head.data.length) this.#queue.shift();
      else head.data = head.data.subarray(n);
      this.#queued -= n;
      target.receive(chunk);
    }
    if (this.#queued < INPUT_HIGH_WATER && this.#roomWaiters.length) {
      const waiters = this.#roomWaiters;
      this.#roomWaiters = [];
      for (const w of waiters) w();
    }
    if (this.#queued && target && !this.#closed) this.#schedule(INPUT_RETRY_MS);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    this.#log?.close();
    this.#log = null;
    for (const w of this.#roomWaiters) w();
    this.#roomWaiters = [];
    this._close();
  }

  /** Write bytes to the host (subclasses). */
  protected abstract _output(data: Uint8Array): void;
  /** Release host resources (subclasses). */
  protected _close(): void {}

  /** Host input arrived (subclasses call this; bytes are copied). */
  protected _input(data: Uint8Array): void {
    if (this.#closed || data.length === 0) return;
    if (this.#mux) this.#muxFilter(data);
    else this.#enqueue(data.slice(), false);
    this.flushInput();
  }

  /** Resolves once the input queue is below the high-water mark (read loops await this before reading). */
  protected _waitRoom(): Promise<void> {
    if (this.#queued < INPUT_HIGH_WATER || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  #schedule(ms: number): void {
    if (this.#closed || this.#retry !== null) return;
    const t = setTimeout(() => {
      this.#retry = null;
      this.flushInput();
    }, ms);
    Deno.unrefTimer(t);
    this.#retry = t;
  }

  #enqueue(data: Uint8Array, monitor: boolean): void {
    if (!data.length) return;
    this.#queue.push({ data, monitor });
    this.#queued += data.length;
  }

  /** Strip mux escapes; bytes are queued for whichever side had focus when they were typed. */
  #muxFilter(data: Uint8Array): void {
    const out = new Uint8Array(data.length);
    let n = 0;
    const flush = () => {
      this.#enqueue(out.slice(0, n), this.#monitorFocused);
      n = 0;
    };
    for (let i = 0; i < data.length; i++) {
      const ch = data[i];
      if (this.#escPending) {
        this.#escPending = false;
        if (ch === MUX_ESCAPE) {
          out[n++] = ch;
          continue;
        }
        flush();
        this.flushInput(); // bytes typed before the command reach their receiver first
        this.#muxCommand(ch);
      } else if (ch === MUX_ESCAPE) {
        this.#escPending = true;
      } else {
        out[n++] = ch;
      }
    }
    flush();
  }

  #muxCommand(ch: number): void {
    switch (String.fromCharCode(ch)) {
      case "?":
      case "h": {
        let text = "\n\r";
        for (const line of MUX_HELP) text += line.replaceAll("%", "C-a");
        this.write(new TextEncoder().encode(text));
        break;
      }
      case "x":
        this.write(new TextEncoder().encode("QEMU: Terminated\n\r"));
        this.onQuit?.();
        break;
      case "b":
        this.onBreak?.();
        break;
      case "c":
        this.setMonitorFocus(!this.#monitorFocused);
        break;
      default: // 's' (no -snapshot support), 't' (timestamps) and others are swallowed
        break;
    }
  }
}

/** `-chardev null`: output dropped, no input. */
export class NullChar extends HostChar {
  get filename(): string {
    return "null";
  }
  protected _output(_data: Uint8Array): void {}
}

/** An in-memory backend: output collected, input injected by the caller (tests, the qtest protocol). */
export class BufferChar extends HostChar {
  #out: number[] = [];
  #connected = true;
  get filename(): string {
    return "buffer";
  }
  override get connected(): boolean {
    return this.#connected;
  }
  override set connected(v: boolean) {
    this.#connected = v;
  }
  /** Bytes written by the guest so far. */
  get output(): Uint8Array {
    return Uint8Array.from(this.#out);
  }
  /** Output as text (latin-1), optionally clearing it. */
  takeText(clear = true): string {
    const s = String.fromCharCode(...this.#out);
    if (clear) this.#out = [];
    return s;
  }
  /** Simulate host input. */
  inject(data: Uint8Array | string): void {
    this._input(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }
  protected _output(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.#out.push(data[i]);
  }
}

/** Options of FileChar. */
export interface FileCharOptions extends HostCharOptions {
  /** Append instead of truncating (QEMU file,append=on). */
  append?: boolean;
}

/** `-chardev file,path=...`: output written to a file (truncated unless append); no input. */
export class FileChar extends HostChar {
  readonly path: string;
  #file: Deno.FsFile | null;
  constructor(path: string, opts: FileCharOptions = {}) {
    super(opts);
    this.path = path;
    this.#file = openForWrite(path, opts.append ?? false);
  }
  get filename(): string {
    return `file:${this.path}`;
  }
  protected _output(data: Uint8Array): void {
    if (this.#file) writeAllSync(this.#file, data);
  }
  protected override _close(): void {
    this.#file?.close();
    this.#file = null;
  }
}

/** Options of StdioChar. */
export interface StdioCharOptions extends HostCharOptions {
  /** Keep terminal signals (Ctrl-C, Ctrl-Z) working: cbreak instead of full raw mode. Default true. */
  signal?: boolean;
  /** Put a TTY stdin into raw mode (default true; restored on close, unload and SIGTERM/SIGHUP). */
  raw?: boolean;
  /** Called after the terminal was restored on SIGTERM/SIGHUP/SIGINT; default exits with status 1. */
  onSignal?: (signal: Deno.Signal) => void;
}

/** `-chardev stdio` / `-serial stdio`: stdout for output, stdin (raw on a TTY) for input. */
export class StdioChar extends HostChar {
  #rawSet = false;
  readonly #onUnload = () => this.#restoreTerminal();
  readonly #signalHandlers: Array<[Deno.Signal, () => void]> = [];

  constructor(opts: StdioCharOptions = {}) {
    super(opts);
    if ((opts.raw ?? true) && Deno.stdin.isTerminal()) {
      Deno.stdin.setRaw(true, { cbreak: opts.signal ?? true });
      this.#rawSet = true;
      globalThis.addEventListener("unload", this.#onUnload);
      const signals: Deno.Signal[] = ["SIGTERM", "SIGHUP", "SIGINT"];
      for (const sig of signals) {
        const h = () => {
          this.#restoreTerminal();
          if (opts.onSignal) opts.onSignal(sig);
          else Deno.exit(1);
        };
        try {
          Deno.addSignalListener(sig, h);
          this.#signalHandlers.push([sig, h]);
        } catch (e) {
          // Signals are unsupported on some platforms: the unload handler still restores the terminal.
          void e;
        }
      }
    }
    void this.#readLoop();
  }

  get filename(): string {
    return "stdio";
  }

  protected _output(data: Uint8Array): void {
    writeAllSync(Deno.stdout, data);
  }

  protected override _close(): void {
    this.#restoreTerminal();
  }

  #restoreTerminal(): void {
    if (!this.#rawSet) return;
    this.#rawSet = false;
    try {
      Deno.stdin.setRaw(false);
    } catch (e) {
      void e; // stdin already closed: nothing left to restore
    }
    globalThis.removeEventListener("unload", this.#onUnload);
    for (const [sig, h] of this.#signalHandlers) Deno.removeSignalListener(sig, h);
    this.#signalHandlers.length = 0;
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(1024);
    while (!this.closed) {
      await this._waitRoom();
      let n: number | null;
      try {
        n = await Deno.stdin.read(buf);
      } catch {
        return; // stdin closed or unreadable: no more input
      }
      if (n === null) return;
      this._input(buf.subarray(0, n));
    }
  }
}

/** Options of PipeChar. */
export type PipeCharOptions = HostCharOptions;

/** `-chardev pipe,path=P`: reads P.in and writes P.out (FIFOs), or P itself when those do not exist. */
export class PipeChar extends HostChar {
  readonly path: string;
  #in: Deno.FsFile | null = null;
  #out: Deno.FsFile | null = null;
  constructor(path: string, opts: PipeCharOptions = {}) {
    super(opts);
    this.path = path;
    try {
      this.#in = Deno.openSync(`${path}.in`, { read: true, write: true });
      this.#out = Deno.openSync(`${path}.out`, { read: true, write: true });
    } catch {
      this.#in?.close();
      this.#in = this.#out = null;
      let f: Deno.FsFile;
      try {
        f = Deno.openSync(path, { read: true, write: true });
      } catch (e) {
        throw new UserError(`Could not open '${path}': ${osErrorText(e)}`);
      }
      this.#in = this.#out = f;
    }
    void this.#readLoop();
  }
  get filename(): string {
    return `pipe:${this.path}`;
  }
  protected _output(data: Uint8Array): void {
    if (this.#out) writeAllSync(this.#out, data);
  }
  protected override _close(): void {
    const { in: i, out: o } = { in: this.#in, out: this.#out };
    this.#in = this.#out = null;
    i?.close();
    if (o !== i) o?.close();
  }
  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(1024);
    while (!this.closed && this.#in) {
      await this._waitRoom();
      const f = this.#in;
      if (!f) return;
      let n: number | null;
      try {
        n = await f.read(buf);
      } catch {
        return; // closed underneath us
      }
      if (n === null) return;
      this._input(buf.subarray(0, n));
    }
  }
}

/** Options of SocketChar. */
export interface SocketCharOptions extends HostCharOptions {
  /** Unix socket path (exclusive with host/port). */
  path?: string;
  host?: string;
  port?: number;
  /** Listen instead of connecting (server=on). */
  server?: boolean;
  /** Server: wait for the first client before `open()` resolves (default true, as QEMU). */
  wait?: boolean;
}

/**
 * `-chardev socket`: unix (path) or tcp (host, port), server (one client at a time; output dropped while no
 * client is connected) or client. Create with `await SocketChar.open(opts)`.
 */
export class SocketChar extends HostChar {
  readonly #opts: SocketCharOptions;
  #listener: Deno.Listener | null = null;
  #conn: Deno.Conn | null = null;
  #writeChain: Promise<void> = Promise.resolve();
  #peer = "";
  /** Clients that connected while one was attached: served in turn, as QEMU's listen backlog does. */
  #pending: Deno.Conn[] = [];
  /**
   * Called synchronously when a client attaches (before any of its input) or goes away, so a monitor
   * greets every new client, even one that reconnects at once.
   */
  onConnectionChange: ((connected: boolean) => void) | null = null;

  private constructor(opts: SocketCharOptions) {
    super(opts);
    this.#opts = opts;
  }

  /** Open the socket (bind/listen or connect); UserError with QEMU's wording on failure. */
  static async open(opts: SocketCharOptions): Promise<SocketChar> {
    const s = new SocketChar(opts);
    await s.#start();
    return s;
  }

  override get connected(): boolean {
    return this.#conn !== null;
  }

  /** The local address in QEMU form: "unix:/p" or "tcp:host:port". */
  get address(): string {
    if (this.#opts.path !== undefined) return `unix:${this.#opts.path}`;
    const port = this.#listener && this.#listener.addr.transport === "tcp"
      ? this.#listener.addr.port
      : this.#opts.port;
    return `tcp:${this.#opts.host ?? ""}:${port}`;
  }

  /** The bound TCP port (useful with port=0), or -1. */
  get boundPort(): number {
    const a = this.#listener?.addr;
    return a && a.transport === "tcp" ? a.port : -1;
  }

  get filename(): string {
    const server = this.#opts.server ? ",server=on" : "";
    if (!this.#conn) return `disconnected:${this.address}${server}`;
    return `${this.address}${server} <-> ${this.#peer}`;
  }

  protected _output(data: Uint8Array): void {
    const conn = this.#conn;
    if (!conn) return; // QEMU drops output while disconnected
    const copy = data.slice();
    this.#writeChain = this.#writeChain.then(async () => {
      let off = 0;
      while (off < copy.length && this.#conn === conn) {
        off += await conn.write(copy.subarray(off));
      }
    }).catch(() => this.#dropConnection(conn));
  }

  protected override _close(): void {
    const conn = this.#conn;
    this.#conn = null;
    closeQuietly(conn);
    for (const c of this.#pending.splice(0)) closeQuietly(c);
    if (this.#listener && this.#opts.server && this.#opts.path !== undefined) {
      removeStaleSocket(this.#opts.path); // QEMU unlinks its listening socket at exit
    }
    closeQuietly(this.#listener);
    this.#listener = null;
  }

  async #start(): Promise<void> {
    const o = this.#opts;
    if (o.server) {
      try {
        if (o.path !== undefined) {
          removeStaleSocket(o.path);
          this.#listener = Deno.listen({ transport: "unix", path: o.path });
        } else {
          this.#listener = Deno.listen({ hostname: o.host || "0.0.0.0", port: o.port ?? 0 });
        }
      } catch (e) {
        const where = o.path ?? `${o.host ?? ""}:${o.port}`;
        throw new UserError(`Failed to bind socket to ${where}: ${osErrorText(e)}`);
      }
      if (o.wait ?? true) {
        console.error(`info: QEMU waiting for connection on: ${this.filename}`);
        const conn = await this.#listener.accept();
        this.#attach(conn);
      }
      void this.#acceptLoop();
    } else {
      let conn: Deno.Conn;
      try {
        conn = o.path !== undefined
          ? await Deno.connect({ transport: "unix", path: o.path })
          : await Deno.connect({ hostname: o.host || "localhost", port: o.port ?? 0 });
      } catch (e) {
        const where = o.path ?? `${o.host || "localhost"}:${o.port}`;
        throw new UserError(`Failed to connect to '${where}': ${osErrorText(e)}`);
      }
      this.#attach(conn);
    }
  }

  async #acceptLoop(): Promise<void> {
    const listener = this.#listener;
    if (!listener) return;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      if (this.closed) {
        closeQuietly(conn);
        return;
      }
      if (this.#conn) {
        // One client at a time, as QEMU; the others wait their turn (bounded, like a listen backlog).
        if (this.#pending.length < MAX_PENDING_CLIENTS) this.#pending.push(conn);
        else closeQuietly(conn);
        continue;
      }
      this.#attach(conn);
    }
  }

  #attach(conn: Deno.Conn): void {
    this.#conn = conn;
    const ra = conn.remoteAddr;
    this.#peer = ra.transport === "tcp" ? `${ra.hostname}:${ra.port}` : `unix:${ra.transport}`;
    this.#writeChain = Promise.resolve();
    this.onConnectionChange?.(true);
    void this.#readLoop(conn);
  }

  #dropConnection(conn: Deno.Conn): void {
    if (this.#conn !== conn) return;
    this.#conn = null;
    closeQuietly(conn);
    this.onConnectionChange?.(false);
    const next = this.#pending.shift();
    if (next && !this.closed) this.#attach(next);
  }

  async #readLoop(conn: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(4096);
    while (this.#conn === conn) {
      await this._waitRoom();
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) break;
      this._input(buf.subarray(0, n));
    }
    this.#dropConnection(conn);
  }
}

/**
 * Open a host character backend from a parsed -chardev spec. Throws UserError with QEMU's wording
 * (`Could not open 'x': No such file or directory`, `'foo' is not a valid char driver name`).
 *
 * @example
 * ```ts ignore
 * const chr = await openChardev({ backend: "file", id: "serial0", path: "/tmp/console.log" });
 * uart.attach(chr);
 * ```
 */
export async function openChardev(spec: ChardevSpec, callbacks: MuxCallbacks = {}): Promise<HostChar> {
  const id = spec.id;
  const common: HostCharOptions = {
    id,
    mux: flag(spec.mux, "mux", false),
    ...callbacks,
  };
  if (spec.logfile !== undefined) {
    common.logfile = spec.logfile;
    common.logappend = flag(spec.logappend, "logappend", false);
  }
  switch (spec.backend) {
    case "null":
      return new NullChar(common);
    case "stdio":
      return new StdioChar({ ...common, signal: flag(spec.signal, "signal", true) });
    case "file":
      return new FileChar(requirePath(spec), { ...common, append: flag(spec.append, "append", false) });
    case "pipe":
      return new PipeChar(requirePath(spec), common);
    case "socket": {
      const server = flag(spec.server, "server", false);
      const opts: SocketCharOptions = { ...common, server, wait: flag(spec.wait, "wait", true) };
      if (spec.path !== undefined) {
        if (spec.host !== undefined || spec.port !== undefined) {
          throw new UserError("chardev: socket: 'path' cannot be combined with 'host' or 'port'");
        }
        opts.path = spec.path;
      } else {
        if (spec.port === undefined) throw new UserError("chardev: socket: 'port' or 'path' is required");
        const port = Number(spec.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          throw new UserError(`Parameter 'port' expects a port number, got '${String(spec.port)}'`);
        }
        opts.port = port;
        if (spec.host !== undefined) opts.host = spec.host;
      }
      return await SocketChar.open(opts);
    }
    case "pty":
    case "serial":
    case "tty":
    case "parallel":
    case "udp":
    case "vc":
    case "ringbuf":
    case "memory":
      throw new UserError(`Character device backend '${spec.backend}' is not supported`);
    default:
      throw new UserError(`'${spec.backend}' is not a valid char driver name`);
  }
}

function requirePath(spec: ChardevSpec): string {
  if (spec.path === undefined || spec.path === "") {
    throw new UserError(`chardev: ${spec.backend}: no filename given`);
  }
  return spec.path;
}

function flag(v: boolean | string | undefined, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v === "boolean") return v;
  switch (v) {
    case "on":
    case "yes":
    case "true":
    case "":
      return true;
    case "off":
    case "no":
    case "false":
      return false;
  }
  throw new UserError(`Parameter '${name}' expects 'on' or 'off'`);
}

function openForWrite(path: string, append: boolean): Deno.FsFile {
  try {
    return Deno.openSync(path, { write: true, create: true, append, truncate: !append });
  } catch (e) {
    throw new UserError(`Could not open '${path}': ${osErrorText(e)}`);
  }
}

/** Clients kept waiting while one is attached to a server socket. */
const MAX_PENDING_CLIENTS = 64;

function removeStaleSocket(path: string): void {
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Write everything, or drop it on a host write error (a closed pipe, a full disk): QEMU's chardevs drop
 * output they cannot write and the VM goes on.
 */
function writeAllSync(w: { writeSync(p: Uint8Array): number }, data: Uint8Array): void {
  let off = 0;
  try {
    while (off < data.length) off += w.writeSync(data.subarray(off));
  } catch {
    // dropped, as QEMU does
  }
}

function closeQuietly(c: { close(): void } | null): void {
  if (!c) return;
  try {
    c.close();
  } catch (e) {
    void e; // already closed
  }
}

/** strerror()-style text for a Deno I/O error (QEMU prints strerror). */
export function osErrorText(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "No such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "Permission denied";
  if (e instanceof Deno.errors.AlreadyExists) return "File exists";
  if (e instanceof Deno.errors.IsADirectory) return "Is a directory";
  if (e instanceof Deno.errors.NotADirectory) return "Not a directory";
  if (e instanceof Deno.errors.ConnectionRefused) return "Connection refused";
  if (e instanceof Deno.errors.AddrInUse) return "Address already in use";
  if (e instanceof Deno.errors.AddrNotAvailable) return "Cannot assign requested address";
  if (e instanceof Error) return e.message.replace(/ \(os error \d+\)[\s\S]*$/, "");
  return String(e);
}
