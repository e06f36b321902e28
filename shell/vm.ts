/**
 * The runner: command line → host backends → board → accelerator → run loop, with QEMU's lifecycle
 * (-S, -no-reboot, -no-shutdown, Ctrl-A x, SIGTERM) and the monitors. main.ts calls `main()`.
 * @module
 */
import type { Accelerator, DebugExit, RunExit } from "../core/accel.ts";
import type { VmConfig } from "../core/config.ts";
import { type BlockBackend, type CharBackend, type GuestLog, UserError } from "../core/types.ts";
import { VirtualClock } from "../core/clock.ts";
import { type HostChar, openChardev, osErrorText } from "../core/host/chardev.ts";
import { writePidfile } from "./pidfile.ts";
import { openBlockFile } from "../core/host/block_file.ts";
import { guestFile } from "../core/host/guest_files.ts";
import type { NetBackend } from "../core/types.ts";
import type { FsBackend } from "../core/fsdev.ts";
import { Microvm, MICROVM_DEVICES, TSC_KHZ } from "../devices/microvm.ts";
import { CpuidModel } from "../core/cpu/cpuid.ts";
import { type PluginManager, startPlugins } from "../plugins/loader.ts";
import { openUdsVsock, type UdsVsockBackend } from "../core/host/vsock_uds.ts";
import { formatCliError, isCliAction, parseCommandLine } from "./cli/mod.ts";
import { handleTerminationSignals, refuseInspectorSignal } from "./host_signals.ts";
import { MigrationController, type MigrationHost } from "./migration/migrate.ts";

/** The name errors are prefixed with, as QEMU uses its argv[0]. */
export const PROG = "microvm.ts";

const enc = new TextEncoder();

function errLine(line: string): void {
  Deno.stderr.writeSync(enc.encode(line.endsWith("\n") ? line : line + "\n"));
}

/** The command line a newcomer gets with no arguments: the default guest on this terminal. */
export async function defaultArgs(): Promise<string[]> {
  const interactive = Deno.stdin.isTerminal();
  const append = "earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t" +
    (interactive ? " guest_shell=1" : "");
  return [
    "-M",
    "microvm",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-m",
    "512m",
    "-smp",
    "1",
    "-kernel",
    await guestFile("vmlinux"),
    "-initrd",
    await guestFile("initramfs.cpio.gz"),
    "-append",
    append,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "mon:stdio",
    "-no-reboot",
  ];
}

/** True when argv has nothing but -s, -S and -gdb DEV (or nothing at all). */
function onlyDebugOptions(argv: string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "-s" || argv[i] === "-S") continue;
    if (argv[i] === "-gdb" && i + 1 < argv.length) {
      i++;
      continue;
    }
    return false;
  }
  return true;
}

/** -d / -D logging sink implementing GuestLog. */
class LogSink implements GuestLog {
  errors = 0;
  unimps = 0;
  #items: Set<string>;
  #file: Deno.FsFile | null;
  readonly #seen = new Map<string, number>();
  constructor(items: string[], file: string | undefined) {
    this.#items = new Set(items);
    try {
      this.#file = file ? Deno.openSync(file, { write: true, create: true, truncate: true }) : null;
    } catch (e) {
      throw new UserError(`Error opening logfile ${file}: ${osErrorText(e)}`);
    }
  }
  /** `log ITEMS` in the monitor. */
  setItems(items: string[]): void {
    this.#items = new Set(items);
  }
  /** `logfile PATH` in the monitor. */
  setFile(path: string): void {
    this.#file?.close();
    this.#file = Deno.openSync(path, { write: true, create: true, truncate: true });
  }
  has(item: string): boolean {
    return this.#items.has(item);
  }
  print(msg: string): void {
    const data = enc.encode(msg.endsWith("\n") ? msg : msg + "\n");
    if (this.#file) this.#file.writeSync(data);
    else Deno.stderr.writeSync(data);
  }
  #limited(key: string, msg: string): void {
    const n = (this.#seen.get(key) ?? 0) + 1;
    this.#seen.set(key, n);
    if (n <= 20) this.print(msg);
    else if (n === 21) this.print(`${key}: further messages suppressed`);
  }
  guestError(id: string, msg: string): void {
    this.errors++;
    if (this.#items.has("guest_errors")) this.#limited(id, `${id}: ${msg}`);
  }
  unimp(id: string, msg: string): void {
    this.unimps++;
    if (this.#items.has("unimp")) this.#limited(id, `${id}: ${msg}`);
  }
}

/** A kernel/initrd checked now (as readInput does) and read on first use. */
function lazyInput(kind: "kernel" | "initrd", name: string): { name: string; bytes: Uint8Array } {
  readInput(kind, name, true);
  let bytes: Uint8Array | null = null;
  return {
    name,
    get bytes(): Uint8Array {
      return bytes ??= readInput(kind, name);
    },
  };
}

function readInput(kind: "kernel" | "initrd", path: string, statOnly = false): Uint8Array {
  try {
    // Devices (/dev/zero, /dev/urandom), FIFOs and sockets never end: refuse them before reading, as QEMU's
    // loaders fail at once on them (load_image_size / g_mapped_file).
    const st = Deno.statSync(path);
    if (!st.isFile && !st.isDirectory) {
      throw new UserError(
        kind === "kernel"
          ? `could not load kernel '${path}': Success`
          : `error reading initrd ${path}: not a regular file`,
      );
    }
    if (statOnly) {
      if (st.isDirectory) throw new Deno.errors.IsADirectory("Is a directory");
      return new Uint8Array(0);
    }
    // Synchronous: one large read is several times faster than the async path's chunks (restore latency).
    return Deno.readFileSync(path);
  } catch (e) {
    if (e instanceof UserError) throw e;
    const why = e instanceof Deno.errors.NotFound
      ? "No such file or directory"
      : e instanceof Deno.errors.PermissionDenied
      ? "Permission denied"
      : e instanceof Deno.errors.IsADirectory
      ? "Is a directory"
      : String((e as Error).message);
    throw new UserError(
      kind === "kernel"
        ? `could not open kernel file '${path}': ${why}`
        : `could not load initrd '${path}': ${why}`,
    );
  }
}

/** A running VM with its host resources. */
export class VmRunner implements MigrationHost {
  readonly config: VmConfig;
  readonly machine: Microvm;
  readonly accel: Accelerator | null;
  readonly clock: VirtualClock;
  readonly log: LogSink;
  readonly chardevs: Map<string, HostChar>;
  readonly drives: BlockBackend[];
  readonly netdevs: NetBackend[];
  /** The same backends by -netdev id (hostfwd_add, info usernet). */
  readonly netdevById: ReadonlyMap<string, NetBackend>;
  /** Loaded plugins (-plugin, plugin_load). */
  plugins: PluginManager | null = null;
  /** More host resources to release on close (vsock sockets). */
  readonly closers: (() => void)[] = [];
  runState:
    | "prelaunch"
    | "running"
    | "paused"
    | "shutdown"
    | "internal-error"
    | "debug"
    | "inmigrate"
    | "postmigrate"
    | "finish-migrate" = "prelaunch";
  /** Why the vCPUs stopped for the debugger (run state "debug"). */
  lastDebug: DebugExit | null = null;
  /** The gdb server (-gdb, -s, HMP gdbserver), set by shell/monitors.ts. */
  gdb: { start(device: string): Promise<void>; stop(): void } | null = null;
  /** Lifecycle events for QMP (set by the monitor bridge). */
  onEvent:
    | ((
      ev: { event: "STOP" | "RESUME" | "RESET" | "SHUTDOWN" | "MIGRATION"; data?: Record<string, unknown> },
    ) => void)
    | null = null;
  /** migrate / -incoming (shell/migration/). */
  readonly migration: MigrationController;
  #inAccel = false;
  #idleWaiters: (() => void)[] = [];
  #quit = false;
  #exitCode = 0;
  #resumeWaiters: (() => void)[] = [];

  constructor(o: {
    config: VmConfig;
    machine: Microvm;
    accel: Accelerator | null;
    clock: VirtualClock;
    log: LogSink;
    chardevs: Map<string, HostChar>;
    drives: BlockBackend[];
    netdevs?: NetBackend[];
    netdevById?: ReadonlyMap<string, NetBackend>;
  }) {
    this.netdevs = o.netdevs ?? [];
    this.netdevById = o.netdevById ?? new Map();
    this.config = o.config;
    this.machine = o.machine;
    this.accel = o.accel;
    this.clock = o.clock;
    this.log = o.log;
    this.chardevs = o.chardevs;
    this.drives = o.drives;
    this.migration = new MigrationController(this);
  }

  get startPaused(): boolean {
    return this.config.startPaused;
  }

  /** Migration: stop the vCPUs (STOP, finish-migrate) and wait until the run loop has left the accelerator. */
  async stopForMigration(): Promise<void> {
    if (this.runState === "running") {
      this.runState = "finish-migrate";
      this.clock.pause?.();
      this.accel?.requestStop();
      this.onEvent?.({ event: "STOP" });
    }
    while (this.#inAccel) await new Promise<void>((r) => this.#idleWaiters.push(r));
  }

  setRunState(s: "postmigrate" | "inmigrate" | "paused" | "running"): void {
    this.runState = s;
  }

  resumeAfterFailedMigration(): void {
    if (this.runState === "finish-migrate") {
      this.runState = "paused";
      this.cont();
    }
  }

  emit(event: string, data?: Record<string, unknown>): void {
    this.onEvent?.({ event: event as "MIGRATION", ...(data ? { data } : {}) });
  }

  /** A fatal destination error: one line, exit status 1. */
  fail(line: string): void {
    errLine(`${PROG}: ${line}`);
    this.quit(1, "host-error");
  }

  /** Stop the vCPUs (monitor `stop`). */
  stop(): void {
    if (this.runState === "running") {
      this.runState = "paused";
      this.clock.pause?.();
      this.accel?.requestStop();
      this.onEvent?.({ event: "STOP" });
    }
  }

  /** Resume (monitor `cont`). */
  cont(): void {
    if (
      this.runState === "paused" || this.runState === "prelaunch" || this.runState === "debug" ||
      this.runState === "postmigrate"
    ) {
      this.runState = "running";
      this.lastDebug = null;
      this.clock.resume?.();
      this.onEvent?.({ event: "RESUME" });
      for (const w of this.#resumeWaiters.splice(0)) w();
    }
  }

  /** monitor `quit`, Ctrl-A x, SIGTERM. */
  quit(code = 0, reason = "host-signal"): void {
    if (!this.#quit) this.onEvent?.({ event: "SHUTDOWN", data: { guest: false, reason } });
    this.#quit = true;
    this.#exitCode = code;
    this.accel?.requestStop();
    for (const w of this.#resumeWaiters.splice(0)) w();
  }

  /** system_reset. */
  systemReset(reason = "guest-reset"): void {
    // QEMU: under -no-reboot a reset request of any origin is a shutdown request (-no-shutdown: pause).
    if (this.config.noReboot) {
      this.#shutdownRequest(reason.startsWith("guest"), reason);
      return;
    }
    this.machine.reset();
    const entry = this.machine.entry();
    if (this.accel && entry) this.accel.reset(entry);
    this.onEvent?.({ event: "RESET", data: { guest: reason.startsWith("guest"), reason } });
    // QEMU's main loop: a reset of a VM that is not running leaves it in prelaunch (cont restarts it).
    if (this.runState === "shutdown" || this.runState === "paused") this.runState = "prelaunch";
  }

  /** SHUTDOWN event, then exit 0, or (-no-shutdown) stop in the shutdown state. */
  #shutdownRequest(guest: boolean, reason: string): void {
    this.onEvent?.({ event: "SHUTDOWN", data: { guest, reason } });
    if (this.config.noShutdown) {
      // vm_stop(RUN_STATE_SHUTDOWN): only a running VM changes state (and emits STOP).
      if (this.runState !== "running") return;
      this.accel?.requestStop();
      this.clock.pause?.();
      this.runState = "shutdown";
      this.onEvent?.({ event: "STOP" });
      return;
    }
    this.#quit = true;
    this.#exitCode = 0;
    this.accel?.requestStop();
    for (const w of this.#resumeWaiters.splice(0)) w();
  }

  /** After device_add before boot: rebuild the command line, reload the kernel, reset the vCPUs to it. */
  reloadKernel(): void {
    this.machine.reloadKernel();
    const entry = this.machine.entry();
    if (this.accel && entry) this.accel.reset(entry);
  }

  #waitResume(): Promise<void> {
    return new Promise((r) => this.#resumeWaiters.push(r));
  }

  /** Flush and close every host resource (drives flushed: nothing acknowledged is lost). */
  close(): void {
    for (const d of this.drives) {
      try {
        d.flush();
        d.close();
      } catch (e) {
        errLine(`${PROG}: failed to close drive ${d.id}: ${(e as Error).message}`);
      }
    }
    for (const f of this.closers) f();
    for (const n of this.netdevs) {
      try {
        n.close();
      } catch {
        // already closed
      }
    }
    for (const c of this.chardevs.values()) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    this.accel?.destroy();
  }

  /** The main loop; resolves to the process exit code. */
  async run(): Promise<number> {
    if (!this.config.startPaused && this.runState !== "inmigrate") this.cont();
    for (;;) {
      if (this.#quit) return this.#exitCode;
      if (this.runState !== "running" || !this.accel) {
        await this.#waitResume();
        continue;
      }
      let exit: RunExit;
      this.#inAccel = true;
      try {
        exit = await this.accel.run();
      } catch (e) {
        exit = { kind: "internal-error", message: (e as Error).stack ?? String(e) };
      } finally {
        this.#inAccel = false;
        for (const w of this.#idleWaiters.splice(0)) w();
      }
      if (this.#quit) return this.#exitCode;
      switch (exit.kind) {
        case "paused":
          break;
        case "quit":
          return 0;
        case "debug":
          // A breakpoint, watchpoint or single step (gdbstub): QEMU's RUN_STATE_DEBUG.
          if (this.runState === "running") {
            this.lastDebug = exit;
            this.runState = "debug";
            this.clock.pause?.();
            this.onEvent?.({ event: "STOP" });
          }
          break;
        case "shutdown":
          if (exit.reason === "guest-shutdown") this.#shutdownRequest(true, "guest-shutdown");
          else this.systemReset("guest-reset");
          if (this.#quit) return this.#exitCode;
          break;
        case "internal-error":
          errLine(`${PROG}: internal error: ${exit.message}`);
          this.runState = "internal-error";
          if (this.config.monitors.length === 0) return 1;
          break;
      }
    }
  }
}

/** Pick and create the accelerator from the -accel candidates (QEMU tries them in order). */
async function makeAccelerator(
  cfg: VmConfig,
  log: LogSink,
  board: () => Microvm | null,
): Promise<Accelerator | null> {
  let lastErr: unknown = null;
  for (const a of cfg.accel) {
    try {
      if (a.name === "qtest") return null;
      if (a.name === "tcg") {
        const { SoftCpuAccelerator } = await import("../core/cpu/mod.ts");
        return new SoftCpuAccelerator({
          log: (m) =>
            log.has("unimp") || log.has("guest_errors") || log.has("int") ? log.print(m) : undefined,
          logInterrupts: log.has("int"),
          jit: a.jit !== false,
          ...(log.has("in_asm") ? { inAsm: (line: string) => log.print(line) } : {}),
          // An async stat parks the event loop briefly so sockets and stdin are served during guest runs.
          pollHost: () => Deno.stat("/"),
        });
      }
      const { KvmAccelerator, probeKvm, PVM_WARNING } = await import("../core/kvm/mod.ts");
      const probe = probeKvm();
      if (!probe.usable) throw new UserError(`Could not access KVM kernel module: ${probe.error}`);
      if (probe.pvm) errLine(`${PROG}: ${PVM_WARNING}`);
      return new KvmAccelerator({
        irqchip: a.kernelIrqchip ?? "split",
        warn: (l) => errLine(`${PROG}: ${l}`),
        extIntAck: () => board()?.pic?.intAck() ?? -1,
        extIntLevel: () => board()?.picOutput ?? false,
        onEoi: (v) => board()?.ioapic.eoi(v),
      });
    } catch (e) {
      lastErr = e;
      if (cfg.accel.length > 1) errLine(`${PROG}: -accel ${a.name}: ${(e as Error).message}`);
    }
  }
  throw lastErr instanceof UserError
    ? lastErr
    : new UserError(`no accelerator found: ${(lastErr as Error)?.message}`);
}

/** Build everything from a parsed config (shared by main, tests and the fuzzer). */
export async function buildVm(cfg: VmConfig): Promise<VmRunner> {
  const log = new LogSink(cfg.log.items, cfg.log.file);
  for (const w of cfg.warnings) errLine(`${PROG}: ${w}`);
  const accelName = cfg.accel.length ? cfg.accel[0].name : "tcg";
  const clock = new VirtualClock({ mode: accelName === "qtest" ? "manual" : "host" });
  let runner: VmRunner | null = null;
  const chardevs = new Map<string, HostChar>();
  for (const c of cfg.chardevs) {
    const b = c.backend;
    const spec: Record<string, unknown> = { backend: b.kind, id: c.id, mux: c.mux };
    if (b.kind === "file") Object.assign(spec, { path: b.path, append: b.append });
    if (b.kind === "pipe") Object.assign(spec, { path: b.path });
    if (b.kind === "stdio") Object.assign(spec, { signal: b.signal });
    if (b.kind === "socket") {
      Object.assign(spec, { server: b.server, wait: b.wait });
      if (b.path !== undefined) spec.path = b.path;
      if (b.host !== undefined) spec.host = b.host;
      if (b.port !== undefined) spec.port = b.port;
    }
    if (c.logfile) Object.assign(spec, { logfile: c.logfile, logappend: c.logappend });
    chardevs.set(
      c.id,
      await openChardev(spec as unknown as Parameters<typeof openChardev>[0], {
        onQuit: () => runner?.quit(0),
        // Terminal signals: the stdio chardev restores the terminal, main()'s handlers quit.
        onSignal: () => {},
      }),
    );
  }
  const drives: BlockBackend[] = [];
  const netdevs = new Map<string, NetBackend>();
  // Every -drive is opened at start-up, used or not, as QEMU does (a bad image is an error either way).
  const opened = new Map<string, BlockBackend>();
  for (const d of cfg.drives) {
    const b = openBlockFile(d.file, {
      readOnly: d.readOnly,
      snapshot: d.snapshot,
      cache: d.cache.noFlush
        ? "unsafe"
        : d.cache.direct
        ? (d.cache.writeback ? "none" : "directsync")
        : d.cache.writeback
        ? "writeback"
        : "writethrough",
      ...(d.format ? { format: d.format } : {}),
      id: d.id,
    });
    drives.push(b);
    opened.set(d.id, b);
  }
  let machineRef: Microvm | null = null;
  const accel = await makeAccelerator(cfg, log, () => machineRef);
  // Network and 9p backends pull in slirp's FFI and Deno's node: compatibility layer: loaded when used.
  const { openNetdev } = cfg.netdevs.length ? await import("../core/host/netdev.ts") : { openNetdev: null };
  for (const n of cfg.netdevs) {
    try {
      netdevs.set(n.id, await openNetdev!(n, { onGuestError: (msg) => log.guestError("slirp", msg) }));
    } catch (e) {
      throw n.loc && e instanceof UserError ? new UserError(`${n.loc}: ${e.message}`) : e;
    }
  }
  const fsdevs = cfg.fsdevs?.length
    ? (await import("../core/host/fsdevs.ts")).openFsdevs(cfg, (l) => errLine(`${PROG}: ${l}`))
    : new Map<string, FsBackend>();
  const vsocks: UdsVsockBackend[] = [];
  // -incoming: the stream replaces what the loader would write; the files are checked now, read at a reset.
  const input = (kind: "kernel" | "initrd", name: string) =>
    cfg.incoming === undefined ? { name, bytes: readInput(kind, name) } : lazyInput(kind, name);
  const kernel = cfg.kernel ? input("kernel", cfg.kernel) : undefined;
  const initrd = cfg.initrd ? input("initrd", cfg.initrd) : undefined;
  if (initrd && !kernel) throw new UserError("-initrd cannot be used without -kernel");
  let wallClockMs = Date.now();
  if (typeof cfg.rtc.base === "object") wallClockMs = cfg.rtc.base.epochSeconds * 1000;
  else if (cfg.rtc.base === "localtime") wallClockMs -= new Date().getTimezoneOffset() * 60_000;
  const { cpuSignature, cpuFeatures } = cpuIdentity(cfg);
  const machine = new Microvm(cfg, {
    log,
    clock,
    accel: accel ? accel.name : "qtest",
    chardev: (id: string): CharBackend => {
      const c = chardevs.get(id);
      if (!c) throw new UserError(`Property 'chardev' can't find value '${id}'`);
      return c;
    },
    drive: (d) => {
      const b = opened.get(d.id);
      if (!b) throw new UserError(`Property 'virtio-blk-device.drive' can't find value '${d.id}'`);
      return b;
    },
    netdev: (id: string): NetBackend => {
      const have = netdevs.get(id);
      if (have) return have;
      throw new UserError(`Property 'virtio-net-device.netdev' can't find value '${id}'`);
    },
    fsdev: (id: string) => {
      const f = fsdevs.get(id);
      if (!f) throw new UserError(`9pfs device couldn't find fsdev with the id = ${id}`);
      return f;
    },
    vsock: (udsPath: string) => {
      try {
        const b = openUdsVsock(udsPath);
        vsocks.push(b);
        return b;
      } catch (e) {
        throw new UserError(`virtio-vsock-device: cannot listen on '${udsPath}': ${(e as Error).message}`);
      }
    },
    wallClockMs,
    ...(kernel ? { kernel } : {}),
    ...(initrd ? { initrd } : {}),
    ...(cfg.incoming !== undefined ? { incoming: true } : {}),
    cpuSignature,
    cpuFeatures,
    ...(accel?.name === "kvm"
      ? {
        hostPageOffset: (buf: SharedArrayBuffer) =>
          Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(buf))) & 0xfffn),
        accelReserved: [{ addr: 0xfeffc000, size: 0x4000, type: 2 }],
      }
      : {}),
  });
  machineRef = machine;
  const entry = machine.entry();
  if (accel) {
    if (!entry) {
      throw new UserError(
        "No kernel given: microvm.ts boots Linux directly; use -kernel (there is no firmware)",
      );
    }
    accel.init(machine.accelBoard(), entry);
  }
  runner = new VmRunner({
    config: cfg,
    machine,
    accel,
    clock,
    log,
    chardevs,
    drives,
    netdevs: [...netdevs.values()],
    netdevById: netdevs,
  });
  for (const v of vsocks) runner.closers.push(() => v.shutdown());
  return runner;
}

/**
 * CPUID.01H EAX/EDX of the vCPU model, which qboot copies into the MP table's processor entries
 * (EDX as the guest reads it: HTT set with more than one vCPU).
 */
function cpuIdentity(cfg: VmConfig): { cpuSignature: number; cpuFeatures: number } {
  const [eax, , , edx] = new CpuidModel(cfg.cpu.model, cfg.cpu.features, TSC_KHZ).words.get(1) ??
    [0, 0, 0, 0];
  return { cpuSignature: eax >>> 0, cpuFeatures: (edx | (cfg.smp.cpus > 1 ? 1 << 28 : 0)) >>> 0 };
}

/** Entry point: returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let runner: VmRunner | null = null;
  if (argv[0] === "fuzz") {
    const { fuzzMain } = await import("./fuzz_cmd.ts");
    return await fuzzMain(argv.slice(1));
  }
  try {
    refuseInspectorSignal();
    // No arguments, or only gdb/-S ones (`-s -S`): the default guest.
    const args = onlyDebugOptions(argv) ? [...await defaultArgs(), ...argv] : argv;
    const r = parseCommandLine(args, PROG, { devices: MICROVM_DEVICES });
    if (isCliAction(r)) {
      Deno.stdout.writeSync(enc.encode(r.text.endsWith("\n") ? r.text : r.text + "\n"));
      return 0;
    }
    // Signals are handled from here on (QEMU installs its handlers before anything else): before the VM
    // runs, a signal ends the process at once; afterwards it shuts the VM down.
    let removePidfile: (() => void) | null = null;
    const unSignals = handleTerminationSignals(PROG, errLine, () => {
      if (runner) return runner.quit(0);
      removePidfile?.();
      Deno.exit(0);
    });
    removePidfile = r.pidfile !== undefined ? writePidfile(r.pidfile) : null;
    runner = await buildVm(r);
    const rr = runner;
    rr.plugins = await startPlugins(rr.machine, r.plugins, { print: (t) => errLine(t) });
    if (r.incoming !== undefined) {
      rr.runState = "inmigrate";
      if (r.incoming !== "defer") rr.migration.incoming(r.incoming);
    }
    // Monitors, gdbstub and plugin events load only when asked for (a bare restore starts sooner).
    const wantMonitors = r.monitors.length > 0 || r.qtest !== undefined || (r.gdb?.length ?? 0) > 0 ||
      r.plugins.length > 0;
    const monitors = wantMonitors ? (await import("./monitors.ts")).startMonitors(rr) : [];
    // -gdb/-s: QEMU starts each in turn and the last one stays.
    for (const dev of r.gdb ?? []) await rr.gdb?.start(dev);
    const code = await rr.run();
    for (const m of monitors) m.close();
    rr.gdb?.stop();
    rr.plugins?.unloadAll();
    unSignals();
    rr.close();
    removePidfile?.();
    return code;
  } catch (e) {
    runner?.close();
    if (e instanceof UserError) {
      Deno.stderr.writeSync(enc.encode(formatCliError(PROG, e)));
      return 1;
    }
    throw e;
  }
}
