/**
 * Serves the monitors on host character streams: HMP (readline mode, with line editing, "\r\n" output, the
 * banner and "(qemu) " prompt), QMP (control mode, greeting on every new client) and the qtest protocol.
 * A stream is anything duplex: a chardev from core/host/chardev.ts (stdio, mux'ed stdio, unix/tcp sockets,
 * pipes), or a raw Deno connection when serving a socket directly.
 * @module
 */
import type { CharReceiver } from "../core/types.ts";
import type { VmConfig } from "../core/config.ts";
import type { MachineIface } from "./machine_iface.ts";
import { HMP_BANNER, HMP_PROMPT, HmpSession } from "./hmp.ts";
import { QmpSession } from "./qmp.ts";
import { QtestSession } from "./qtest.ts";
import {
  appendHistoryFile,
  defaultHistoryPath,
  hmpCompleter,
  LineEditor,
  loadHistoryFile,
} from "./readline.ts";

/** Which protocol a monitor speaks. */
export type MonitorKind = "hmp" | "qmp" | "qmp-pretty" | "qtest";

/**
 * A duplex character stream as the monitors need it. `HostChar` (core/host/chardev.ts) satisfies it;
 * `setMonitorReceiver`/`onToggleMonitor` are used when the stream is mux'ed with a serial port (mon:stdio).
 */
export interface MonitorStream {
  write(data: Uint8Array): void;
  setReceiver(r: CharReceiver | null): void;
  readonly connected: boolean;
  setMonitorReceiver?(r: CharReceiver | null): void;
  setMonitorFocus?(on: boolean): void;
  onToggleMonitor?: ((monitorFocused: boolean) => void) | undefined;
  /** Server sockets: told of every client attach/detach at once (no polling, so no reconnect is missed). */
  onConnectionChange?: ((connected: boolean) => void) | null;
}

/** Options of startMonitor. */
export interface MonitorOptions {
  /** The stream is shared with a serial port (mux=on): use the monitor side of the mux. */
  mux?: boolean;
  /** HMP history file (default ~/.microvm_ts_history; null disables). */
  historyFile?: string | null;
  /** -qtest-log sink. */
  qtestLog?: (line: string) => void;
  /** Poll interval for connect/disconnect detection in ms (default 20). */
  pollMs?: number;
}

/** A running monitor; `close()` detaches it from its stream. */
export interface MonitorHandle {
  readonly kind: MonitorKind;
  /** The HMP session (kind "hmp"), for tests and `human-monitor-command` sharing. */
  readonly hmp: HmpSession | null;
  close(): void;
}

const enc = new TextEncoder();

/**
 * Attach a monitor of `kind` to `stream`. A client connecting later (sockets) gets the banner/greeting then.
 *
 * @example
 * ```ts ignore
 * // runner side, for each VmConfig.monitors entry and VmConfig.qtest:
 * startMonitor(mon.mode === "control" ? (mon.pretty ? "qmp-pretty" : "qmp") : "hmp", runner, chardevs.get(mon.chardev)!,
 *   { mux: cfg.chardevs.find((c) => c.id === mon.chardev)?.mux });
 * ```
 */
export function startMonitor(
  kind: MonitorKind,
  machine: MachineIface,
  stream: MonitorStream,
  opts: MonitorOptions = {},
): MonitorHandle {
  const write = (text: string) => stream.write(enc.encode(text));
  let onInput: (data: Uint8Array) => void;
  let onOpen: () => void;
  let onClose: () => void = () => {};
  let hmp: HmpSession | null = null;

  if (kind === "hmp") {
    const crlfOut = (s: string) => write(s.replace(/\r?\n/g, "\r\n"));
    const h = new HmpSession(machine, { interactive: true, stream: crlfOut });
    hmp = h;
    const histPath = opts.historyFile === undefined ? defaultHistoryPath() : opts.historyFile;
    const history = histPath ? loadHistoryFile(histPath) : [];
    h.loadHistory(history);
    const crlf = (s: string) => s.replace(/\r?\n/g, "\r\n");
    const ed = new LineEditor({
      prompt: HMP_PROMPT,
      write: (s) => write(s),
      history,
      complete: hmpCompleter(h, () => machine.deviceTypes.map((d) => d.driver)),
      onHistory: (line) => {
        if (histPath) appendHistoryFile(histPath, line);
      },
      onLine: (line) => {
        // QEMU stops reading a monitor at `quit`: later lines of the same write never run.
        if (h.quitRequested) return;
        const out = h.execute(line);
        if (out) write(crlf(out));
        if (!h.quitRequested) ed.showPrompt();
        else ed.stop();
      },
    });
    let bannerShown = false;
    onOpen = () => {
      if (!bannerShown || !opts.mux) write(crlf(HMP_BANNER));
      bannerShown = true;
      ed.showPrompt();
    };
    onInput = (d) => ed.input(d);
  } else if (kind === "qmp" || kind === "qmp-pretty") {
    const q = new QmpSession(machine, { send: write, pretty: kind === "qmp-pretty" });
    onOpen = () => q.opened();
    onClose = () => q.closed();
    onInput = (d) => q.input(d);
  } else {
    const q = new QtestSession(machine, {
      send: write,
      ...(opts.qtestLog ? { log: opts.qtestLog } : {}),
    });
    onOpen = () => q.opened();
    onClose = () => q.closed();
    onInput = (d) => q.input(d);
  }

  const receiver: CharReceiver = {
    canReceive: () => 4096,
    receive: (data) => {
      try {
        onInput(data);
      } catch (e) {
        // A monitor bug must not take the machine down: report it on the monitor's own stream.
        write(`internal error: ${e instanceof Error ? e.message : String(e)}\r\n`);
      }
    },
  };

  let timer: ReturnType<typeof setInterval> | null = null;
  let prevToggle: ((f: boolean) => void) | undefined;
  if (opts.mux && stream.setMonitorReceiver) {
    stream.setMonitorReceiver(receiver);
    prevToggle = stream.onToggleMonitor;
    stream.onToggleMonitor = (focused) => {
      prevToggle?.(focused);
      if (focused) onOpen();
    };
  } else {
    stream.setReceiver(receiver);
    let was = false;
    if (stream.onConnectionChange !== undefined) {
      stream.onConnectionChange = (now) => {
        if (was) onClose();
        was = now;
        if (now) onOpen();
      };
      if (stream.connected) {
        was = true;
        onOpen();
      }
    }
    const poll = () => {
      const now = stream.connected;
      if (now && !was) onOpen();
      if (!now && was) onClose();
      was = now;
    };
    if (stream.onConnectionChange === undefined) {
      poll();
      timer = setInterval(poll, opts.pollMs ?? 20);
      Deno.unrefTimer(timer);
    }
  }

  return {
    kind,
    hmp,
    close() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      if (opts.mux && stream.setMonitorReceiver) {
        stream.setMonitorReceiver(null);
        stream.onToggleMonitor = prevToggle;
      } else stream.setReceiver(null);
      if (stream.onConnectionChange) stream.onConnectionChange = null;
      onClose();
    },
  };
}

/**
 * Start every monitor a VmConfig asks for: each `-monitor`/`-qmp`/`-mon` (HMP or QMP, mux'ed when the
 * chardev has mux=on) and `-qtest` (with -qtest-log: "none" → no log, a path → that file, absent → stderr,
 * as QEMU). `chardev(id)` returns the opened chardev (the runner's HostChar map).
 *
 * @example
 * ```ts ignore
 * // shell/monitors.ts
 * const handles = startConfiguredMonitors(runner, runner.config, (id) => runner.chardevs.get(id)!);
 * ```
 */
export function startConfiguredMonitors(
  machine: MachineIface,
  cfg: Pick<VmConfig, "monitors" | "qtest" | "chardevs">,
  chardev: (id: string) => MonitorStream,
): MonitorHandle[] {
  const out: MonitorHandle[] = [];
  for (const mon of cfg.monitors) {
    const mux = cfg.chardevs.find((c) => c.id === mon.chardev)?.mux ?? false;
    const kind: MonitorKind = mon.mode === "control" ? (mon.pretty ? "qmp-pretty" : "qmp") : "hmp";
    // Only a monitor on the terminal keeps a history file (socket monitors are scripts, not people).
    const backend = cfg.chardevs.find((c) => c.id === mon.chardev)?.backend.kind;
    out.push(
      startMonitor(kind, machine, chardev(mon.chardev), {
        mux,
        ...(backend === "stdio" ? {} : { historyFile: null }),
      }),
    );
  }
  if (cfg.qtest) {
    const log = cfg.qtest.log;
    let sink: ((line: string) => void) | undefined;
    if (log === undefined) sink = (l) => void Deno.stderr.writeSync(enc.encode(l));
    else if (log !== "none") {
      const f = Deno.openSync(log, { write: true, create: true, truncate: true });
      sink = (l) => void f.writeSync(enc.encode(l));
    }
    out.push(startMonitor("qtest", machine, chardev(cfg.qtest.chardev), sink ? { qtestLog: sink } : {}));
  }
  return out;
}

/** A MonitorStream over one accepted Deno connection (used by serveMonitor). */
class ConnStream implements MonitorStream {
  readonly #conn: Deno.Conn;
  #receiver: CharReceiver | null = null;
  #open = true;
  #chain: Promise<void> = Promise.resolve();
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    void this.#readLoop();
  }
  get connected(): boolean {
    return this.#open;
  }
  write(data: Uint8Array): void {
    if (!this.#open) return;
    const copy = data.slice();
    this.#chain = this.#chain.then(async () => {
      let off = 0;
      while (off < copy.length && this.#open) off += await this.#conn.write(copy.subarray(off));
    }).catch(() => this.close());
  }
  setReceiver(r: CharReceiver | null): void {
    this.#receiver = r;
  }
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer
    }
  }
  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(4096);
    while (this.#open) {
      let n: number | null;
      try {
        n = await this.#conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) break;
      this.#receiver?.receive(buf.slice(0, n));
    }
    this.#open = false;
  }
}

/** A listening monitor socket. */
export interface MonitorServer {
  /** "unix:/path" or "tcp:host:port". */
  readonly address: string;
  /** Bound TCP port (-1 for unix). */
  readonly port: number;
  close(): void;
}

/**
 * Listen on a unix socket or TCP port and run a fresh monitor session for each client (several clients may
 * be connected at once). The runner uses chardevs instead; this serves tests and tools.
 */
export function serveMonitor(
  kind: MonitorKind,
  machine: MachineIface,
  where: { path: string } | { hostname?: string; port: number },
  opts: MonitorOptions = {},
): MonitorServer {
  const listener: Deno.Listener = "path" in where
    ? Deno.listen({ transport: "unix", path: where.path })
    : Deno.listen({ hostname: where.hostname ?? "127.0.0.1", port: where.port });
  const handles: { h: MonitorHandle; s: ConnStream }[] = [];
  let closed = false;
  void (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      if (closed) {
        conn.close();
        return;
      }
      const s = new ConnStream(conn);
      handles.push({ h: startMonitor(kind, machine, s, opts), s });
    }
  })();
  const a = listener.addr;
  return {
    address: a.transport === "unix"
      ? `unix:${a.path}`
      : `tcp:${(a as Deno.NetAddr).hostname}:${(a as Deno.NetAddr).port}`,
    port: a.transport === "tcp" ? a.port : -1,
    close() {
      closed = true;
      for (const { h, s } of handles) {
        h.close();
        s.close();
      }
      try {
        listener.close();
      } catch {
        // already closed
      }
    },
  };
}
