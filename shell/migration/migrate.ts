/**
 * Migration as QEMU runs it (migration/migration.c, ram.c): `migrate URI` streams RAM while the guest
 * runs (pre-copy: every page, then rounds of the pages written meanwhile, tracked by the accelerator's
 * dirty log and GuestRam's DMA log) until the rest fits in `downtime-limit` at the measured bandwidth,
 * then stops the vCPUs and sends the last pages, the vCPUs and the device tree. The source ends in
 * `postmigrate`; `query-migrate` reports status, RAM counters, downtime and times; MIGRATION events carry
 * each status. The destination (`-incoming`) is in `inmigrate` until the stream is complete and verified,
 * then runs if the source was running (paused under -S), and exits with one line on a bad stream.
 * @module
 */
import { UserError } from "../../core/types.ts";
import { DirtyLog, encodePages } from "../../core/snapshot/ram.ts";
import { PAGE } from "../../core/snapshot/stream.ts";
import { allPages } from "../../core/snapshot/ram.ts";
import { endSection, loadMachine, type MachineParts, stateSection, streamHeader } from "./snapshot.ts";
import { type IncomingListener, openIncoming, openSink, type StreamSink } from "./uri.ts";

/** QEMU MigrationStatus values we use. */
export type MigrationStatus =
  | "none"
  | "setup"
  | "active"
  | "device"
  | "completed"
  | "failed"
  | "cancelling"
  | "cancelled";

/** What the controller needs from the runner (VmRunner implements it). */
export interface MigrationHost extends MachineParts {
  readonly runState: string;
  /** Stop the vCPUs into `state` (finish-migrate) and resolve once the run loop has stopped. */
  stopForMigration(): Promise<void>;
  /** Set the run state without events (postmigrate, inmigrate, paused). */
  setRunState(s: "postmigrate" | "inmigrate" | "paused" | "running"): void;
  /** Resume as `cont` does (RESUME event). */
  cont(): void;
  /** Leave finish-migrate back to running after a failed/cancelled migration. */
  resumeAfterFailedMigration(): void;
  /** Emit a QMP event. */
  emit(event: string, data?: Record<string, unknown>): void;
  /** -S was given. */
  readonly startPaused: boolean;
  /** Quit the process with `code` after printing `line` (destination failures). */
  fail(line: string): void;
}

/** query-migrate-parameters as we support them. */
export interface MigrationParameters {
  "downtime-limit": number;
  "max-bandwidth": number;
}

const PARAM_DEFAULTS: MigrationParameters = { "downtime-limit": 300, "max-bandwidth": 134217728 };
const CAPABILITIES = [
  "xbzrle",
  "rdma-pin-all",
  "auto-converge",
  "zero-blocks",
  "events",
  "postcopy-ram",
  "x-colo",
  "release-ram",
  "return-path",
  "pause-before-switchover",
  "multifd",
  "dirty-bitmaps",
  "postcopy-blocktime",
  "late-block-activate",
  "x-ignore-shared",
  "validate-uuid",
  "background-snapshot",
  "zero-copy-send",
  "postcopy-preempt",
];
/** Capabilities that change nothing here but are accepted (QEMU enables them without side effects we lack). */
const NEUTRAL_CAPS = new Set([
  "events",
  "zero-blocks",
  "auto-converge",
  "late-block-activate",
  "validate-uuid",
  "pause-before-switchover",
]);
/** Pages scanned per step of a round (about 16 MiB): the event loop runs between steps. */
const BATCH_PAGES = 4096;
/** Most pre-copy rounds before the final stop-and-copy regardless of convergence. */
const MAX_ROUNDS = 30;

/** One VM's migration state: source and destination side. */
export class MigrationController {
  readonly #h: MigrationHost;
  status: MigrationStatus = "none";
  params: MigrationParameters = { ...PARAM_DEFAULTS };
  readonly caps = new Map<string, boolean>(CAPABILITIES.map((c) => [c, false]));
  #sink: StreamSink | null = null;
  #cancel = false;
  #error = "";
  #startMs = 0;
  #setupMs = 0;
  #totalMs = 0;
  #downtimeMs = 0;
  #bytes = 0;
  #pagesSent = 0;
  #zeroPages = 0;
  #rounds = 0;
  #dirtyRate = 0;
  #incoming: IncomingListener | null = null;

  constructor(host: MigrationHost) {
    this.#h = host;
  }

  #set(s: MigrationStatus): void {
    this.status = s;
    if (this.caps.get("events")) this.#h.emit("MIGRATION", { status: s });
  }

  /** query-migrate. */
  info(): Record<string, unknown> {
    if (this.status === "none") return {};
    const ramTotal = this.#h.machine.ram.u8.length;
    const now = performance.now();
    const out: Record<string, unknown> = { status: this.status };
    if (this.status === "failed" && this.#error) out["error-desc"] = this.#error;
    const elapsed = this.status === "active" || this.status === "setup" || this.status === "device"
      ? now - this.#startMs
      : this.#totalMs;
    if (this.status !== "setup") {
      out["total-time"] = Math.round(elapsed);
      if (this.status === "completed") out.downtime = Math.round(this.#downtimeMs);
      out["setup-time"] = Math.round(this.#setupMs);
      out.ram = {
        transferred: this.#bytes,
        remaining: this.status === "completed" ? 0 : this.#h.machine.ram.dirty ? this.#dirtyBytes() : 0,
        total: ramTotal,
        duplicate: this.#zeroPages,
        skipped: 0,
        normal: this.#pagesSent,
        "normal-bytes": this.#pagesSent * PAGE,
        "dirty-sync-count": this.#rounds,
        "page-size": PAGE,
        mbps: elapsed > 0 ? (this.#bytes * 8) / 1e6 / (elapsed / 1000) : 0,
        "dirty-pages-rate": Math.round(this.#dirtyRate),
      };
    }
    return out;
  }

  #dirtyBytes(): number {
    const d = this.#h.machine.ram.dirty;
    let n = 0;
    if (d) { for (let i = 0; i < d.length; i++) n += d[i]; }
    return n * PAGE;
  }

  /** migrate-set-parameters (QEMU units: downtime-limit ms, max-bandwidth bytes/s). */
  setParameters(a: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(a)) {
      if (k === "downtime-limit" || k === "max-bandwidth") {
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
          throw new UserError(`Parameter '${k}' expects uint64`);
        }
        if (k === "downtime-limit" && v > 2000000) {
          throw new UserError(
            "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds",
          );
        }
        this.params[k] = v;
      } else {
        throw new UserError(`Parameter '${k}' is unexpected`);
      }
    }
  }

  /** migrate-set-capabilities. */
  setCapabilities(list: unknown): void {
    if (!Array.isArray(list)) {
      throw new UserError("Invalid parameter type for 'capabilities', expected: array");
    }
    if (this.status === "setup" || this.status === "active" || this.status === "device") {
      throw new UserError("There's a migration process in progress");
    }
    const next = new Map(this.caps);
    for (const c of list as { capability?: unknown; state?: unknown }[]) {
      const name = String(c?.capability);
      if (!this.caps.has(name)) throw new UserError(`Parameter 'capability' does not accept value '${name}'`);
      if (typeof c.state !== "boolean") throw new UserError("Parameter 'state' expects a boolean");
      if (c.state && !NEUTRAL_CAPS.has(name)) {
        throw new UserError(`Capability '${name}' is not supported by microvm.ts`);
      }
      next.set(name, c.state);
    }
    for (const [k, v] of next) this.caps.set(k, v);
  }

  /** migrate URI: starts in the background; errors that QEMU reports synchronously are thrown. */
  start(uri: string): void {
    if (
      this.status === "setup" || this.status === "active" || this.status === "device" ||
      this.status === "cancelling"
    ) {
      throw new UserError("There's a migration process in progress");
    }
    if (this.#h.runState === "inmigrate") throw new UserError("Guest is waiting for an incoming migration");
    if (this.#h.accel && !this.#h.accel.saveState) {
      throw new UserError(`Migration is not supported with -accel ${this.#h.accel.name} yet`);
    }
    this.#cancel = false;
    this.#error = "";
    this.#bytes =
      this.#pagesSent =
      this.#zeroPages =
      this.#rounds =
        0;
    this.#downtimeMs = 0;
    this.#startMs = performance.now();
    this.#set("setup");
    this.#run(uri).catch((e) => this.#fail(e));
  }

  /** migrate_cancel. */
  cancel(): void {
    if (this.status === "setup" || this.status === "active" || this.status === "device") {
      this.#cancel = true;
      this.#set("cancelling");
      this.#sink?.abort();
    }
  }

  #fail(e: unknown): void {
    this.#stopDirtyLog();
    this.#totalMs = performance.now() - this.#startMs;
    if (this.#cancel) {
      this.#set("cancelled");
    } else {
      this.#error = e instanceof Error ? e.message : String(e);
      this.#set("failed");
    }
    this.#sink?.abort();
    this.#sink = null;
    this.#h.resumeAfterFailedMigration();
  }

  #stopDirtyLog(): void {
    this.#h.machine.ram.dirty = null;
    this.#h.accel?.setDirtyLog?.(null);
  }

  async #send(sink: StreamSink, chunk: Uint8Array, throttle: boolean): Promise<void> {
    if (this.#cancel) throw new UserError("cancelled");
    await sink.write(chunk);
    this.#bytes += chunk.length;
    const bw = this.params["max-bandwidth"];
    if (throttle && bw > 0) {
      // Rate-limit the live phase to max-bandwidth (QEMU throttles each 100 ms window).
      const due = this.#liveStart + (this.#liveBytes += chunk.length) / bw * 1000;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    }
  }
  #liveStart = 0;
  #liveBytes = 0;

  /** Send `pages` as sections, a batch at a time (the guest and the monitors run in between); returns bytes sent. */
  async #sendPages(
    sink: StreamSink,
    pages: Iterable<number>,
    sendZero: boolean,
    live: boolean,
  ): Promise<number> {
    let n = 0;
    let batch: number[] = [];
    const flush = async () => {
      const sections: Uint8Array[] = [];
      const r = encodePages(this.#h.machine.ram.u8, batch, { sendZero, emit: (s) => sections.push(s) });
      batch = [];
      this.#pagesSent += r.data;
      this.#zeroPages += r.zero;
      for (const s of sections) {
        await this.#send(sink, s, live);
        n += s.length;
      }
      this.#sectionCount += sections.length;
    };
    for (const p of pages) {
      batch.push(p);
      if (batch.length === BATCH_PAGES) await flush();
    }
    await flush();
    return n;
  }
  #sectionCount = 0;

  async #run(uri: string): Promise<void> {
    const h = this.#h;
    const sink = this.#sink = await openSink(uri);
    this.#sectionCount = 0;
    await this.#send(sink, streamHeader(h), false);
    const wasRunning = h.runState === "running";
    // An accelerator without dirty logging (KVM) cannot pre-copy: stop first, then copy everything.
    const live = wasRunning && (!h.accel || h.accel.setDirtyLog !== undefined);
    const u8 = h.machine.ram.u8;
    this.#setupMs = performance.now() - this.#startMs;
    this.#set("active");
    const stopAt = performance.now();
    if (wasRunning && !live) await h.stopForMigration();
    if (live) {
      // Pre-copy: track writes from now on, send everything, then what was written meanwhile.
      const log = new DirtyLog(u8.length);
      h.machine.ram.dirty = log.bits;
      h.accel?.setDirtyLog?.(log.bits);
      this.#liveStart = performance.now();
      this.#liveBytes = 0;
      let t0 = performance.now();
      let sent = await this.#sendPages(sink, allPages(u8), false, true);
      this.#rounds = 1;
      for (;;) {
        const ms = Math.max(1, performance.now() - t0);
        const bw = sent / ms; // bytes per ms achieved in the last round
        const dirty = log.count();
        this.#dirtyRate = dirty / (ms / 1000);
        const expectMs = (dirty * (PAGE + 8)) / Math.max(bw, 1);
        if (expectMs <= this.params["downtime-limit"] || this.#rounds >= MAX_ROUNDS) break;
        t0 = performance.now();
        sent = await this.#sendPages(sink, log.take(), true, true);
        this.#rounds++;
      }
    }
    // Stop-and-copy.
    const stopLiveAt = performance.now();
    if (live) await h.stopForMigration();
    this.#set("device");
    const pages = live ? takeBits(h.machine.ram.dirty!) : allPages(u8);
    this.#stopDirtyLog();
    await this.#sendPages(sink, pages, live, false);
    this.#rounds++;
    await this.#send(sink, stateSection(h, wasRunning), false);
    await this.#send(sink, endSection(this.#sectionCount + 1), false);
    await sink.close();
    this.#sink = null;
    const end = performance.now();
    this.#downtimeMs = wasRunning ? end - (live ? stopLiveAt : stopAt) : 0;
    this.#totalMs = end - this.#startMs;
    h.setRunState("postmigrate");
    this.#set("completed");
  }

  // ---- destination ----

  /** -incoming URI / migrate-incoming: listen (or read) now, load in the background. */
  incoming(uri: string): void {
    if (this.#h.runState !== "inmigrate") {
      throw new UserError("The incoming migration has already been started");
    }
    if (this.#incoming) throw new UserError("The incoming migration has already been started");
    this.#incoming = openIncoming(uri);
    this.#startMs = performance.now();
    this.#set("setup");
    this.#load().catch((e) => {
      this.#set("failed");
      this.#h.fail(`load of migration failed: ${e instanceof Error ? e.message : String(e)}`);
    });
  }

  async #load(): Promise<void> {
    const h = this.#h;
    const src = await this.#incoming!.accept();
    this.#set("active");
    try {
      const r = await loadMachine(h, src);
      this.#bytes = r.bytes;
      this.#pagesSent = r.pages;
      this.#totalMs = performance.now() - this.#startMs;
      this.#set("completed");
      h.setRunState("paused");
      if (r.running && !h.startPaused) h.cont();
    } finally {
      src.close();
      this.#incoming = null;
    }
  }
}

/** Dirty page indices of `bits`, cleared. */
function takeBits(bits: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bits.length; i++) if (bits[i]) out.push(i);
  return out;
}
