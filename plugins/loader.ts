/**
 * Plugin loader and manager: loads `-plugin PATH[,arg=val...]` modules (or built-in names: trace, stats,
 * fault-inject, chaos), validates their arguments against the schema, gives each a `PluginContext`, and
 * contains their failures. The runner calls `emit()` for lifecycle events; the monitor calls
 * `hmpPluginLoad` / `unload` / `infoPlugins` / `runCommand`.
 * @module
 */
import { containPlugins, safeMessage, withTimeout } from "./containment.ts";
import type { PluginConfig } from "../core/config.ts";
import { type AccessHook, type AddressSpace, MemoryRegion } from "../core/region.ts";
import type { GsiRouter } from "../core/irq.ts";
import { type Clock, type GuestMemory, type Timer, UserError } from "../core/types.ts";
import type {
  HookFilter,
  IoEvent,
  MonitorCommandFn,
  Plugin,
  PluginArgs,
  PluginArgSpec,
  PluginContext,
  PluginDeviceSpec,
  PluginEvent,
  PluginRegionInfo,
  PluginSpace,
  PluginTimer,
} from "./api.ts";

/** What plugins act on; `Microvm` (devices/microvm.ts) has all of these. */
export interface PluginTarget {
  readonly memory: AddressSpace;
  readonly io: AddressSpace;
  readonly system: MemoryRegion;
  readonly ioRoot: MemoryRegion;
  readonly ram: GuestMemory;
  readonly clock: Clock;
  readonly gsi: GsiRouter;
}

/** Options of `new PluginManager`. */
export interface PluginManagerOptions {
  /** Console output of `ctx.print` (default: stderr). */
  print?: (text: string) => void;
  /** Where contained plugin failures are reported, one line each (default: stderr). */
  report?: (line: string) => void;
  /** Index of the vCPU running now (-1 if unknown); hooks copy it into `IoEvent.vcpu`. */
  vcpu?: () => number;
  /** How long a plugin module and its setup may take (default 10 s). */
  loadTimeoutMs?: number;
}

/** Built-in plugins by name (`-plugin trace,...` works without a path). */
export const BUILTIN_PLUGINS: Readonly<Record<string, string>> = {
  trace: "./trace.ts",
  stats: "./stats.ts",
  "fault-inject": "./fault_inject.ts",
  chaos: "./chaos.ts",
};

const enc = new TextEncoder();

function stderrWrite(text: string): void {
  Deno.stderr.writeSync(enc.encode(text));
}

function errMessage(e: unknown): string {
  return safeMessage(e);
}

/** How long a plugin module and its setup may take before they count as failed. */
const PLUGIN_LOAD_TIMEOUT_MS = 10_000;

/**
 * Parse "name=value" strings against a schema (QEMU's plugin argument form): unknown names, bad numbers and
 * bad booleans are UserErrors; missing arguments take their default or are reported as required.
 */
export function parsePluginArgs(
  plugin: string,
  schema: Record<string, PluginArgSpec>,
  raw: readonly string[] | PluginArgs,
): PluginArgs {
  const given: Record<string, string | number | boolean> = {};
  if (Array.isArray(raw)) {
    for (const kv of raw as readonly string[]) {
      const eq = kv.indexOf("=");
      if (eq <= 0) throw new UserError(`Plugin "${plugin}": argument "${kv}" is not name=value`);
      given[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  } else Object.assign(given, raw);
  const out: PluginArgs = {};
  for (const [k, v] of Object.entries(given)) {
    const spec = schema[k];
    if (!spec) {
      const known = Object.keys(schema).join(", ") || "none";
      throw new UserError(`Plugin "${plugin}": unknown argument "${k}" (known: ${known})`);
    }
    out[k] = convertArg(plugin, k, spec, v);
  }
  for (const [k, spec] of Object.entries(schema)) {
    if (k in out) continue;
    if (spec.default === undefined) throw new UserError(`Plugin "${plugin}": argument "${k}" is required`);
    out[k] = spec.default;
  }
  return out;
}

function convertArg(plugin: string, k: string, spec: PluginArgSpec, v: string | number | boolean) {
  if (spec.type === "string") return String(v);
  if (spec.type === "number") {
    const n = typeof v === "number" ? v : Number(v);
    if (typeof v === "boolean" || v === "" || !Number.isFinite(n)) {
      throw new UserError(`Plugin "${plugin}": argument "${k}" expects a number, got "${v}"`);
    }
    return n;
  }
  if (typeof v === "boolean") return v;
  if (/^(on|yes|true|1)$/.test(String(v))) return true;
  if (/^(off|no|false|0)$/.test(String(v))) return false;
  throw new UserError(`Plugin "${plugin}": argument "${k}" expects on/off, got "${v}"`);
}

/** Resolve a -plugin path (or built-in name) to a module URL. */
export function pluginUrl(path: string): string {
  const builtin = BUILTIN_PLUGINS[path];
  if (builtin) return new URL(builtin, import.meta.url).href;
  if (/^(file|https?|data):/.test(path)) return path;
  const abs = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  return new URL(`file://${abs}`).href;
}

/** Load the module at `path` and return its `plugin` export, checked. */
export async function importPlugin(path: string, timeoutMs = PLUGIN_LOAD_TIMEOUT_MS): Promise<Plugin> {
  let mod: Record<string, unknown>;
  try {
    mod = await withTimeout(
      import(pluginUrl(path)),
      timeoutMs,
      () => new Error(`its module did not finish loading within ${timeoutMs / 1000} s`),
    );
  } catch (e) {
    throw new UserError(`Could not load plugin "${path}": ${errMessage(e).split("\n")[0]}`);
  }
  // A hostile export (a Proxy whose traps throw, getters) must not escape: copy what we use, once.
  let p: Plugin;
  try {
    const raw = mod.plugin as Plugin | undefined;
    if (!raw || typeof raw !== "object") throw new Error("no plugin");
    const { name, setup, args, description } = raw;
    if (typeof name !== "string" || typeof setup !== "function") throw new Error("bad plugin");
    if (typeof args !== "object" || args === null) {
      throw new UserError(`Could not load plugin "${path}": "plugin.args" must be an object`);
    }
    p = { ...raw, name, setup: setup.bind(raw), args: { ...args }, description: String(description ?? "") };
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`Could not load plugin "${path}": it has no named export "plugin" of type Plugin`);
  }
  return p;
}

interface Loaded {
  plugin: Plugin;
  args: PluginArgs;
  path: string;
  cleanups: (() => void)[];
  listeners: Map<PluginEvent, (() => void)[]>;
  commands: string[];
  faults: number;
}

/** A plugin monitor command. */
interface Command {
  owner: Loaded;
  help: string;
  fn: MonitorCommandFn;
}

/**
 * Loads plugins into one machine and keeps what they installed, so unloading removes it all.
 * @example
 * ```ts ignore
 * const plugins = new PluginManager(machine);
 * await plugins.load("stats", []);
 * plugins.emit("start");
 * console.log(plugins.runCommand("stats", []));
 * ```
 */
export class PluginManager {
  readonly #target: PluginTarget;
  readonly #print: (text: string) => void;
  readonly #report: (line: string) => void;
  readonly #vcpu: () => number;
  readonly #loaded = new Map<string, Loaded>();
  readonly #commands = new Map<string, Command>();
  /** Module URL of each plugin loaded from a path (to attribute uncaught errors). */
  readonly #urls = new Map<string, string>();
  /** Plugins disabled for an uncaught error (their later errors are swallowed silently). */
  readonly #disabled = new Set<string>();
  #uncontain: (() => void) | null = null;
  readonly #loadTimeout: number;
  /** Depth of plugin hook callbacks running now (accesses issued inside one are deferred). */
  #inHook = 0;
  readonly #deferred: (() => void)[] = [];
  #deferTimer: Timer | null = null;

  constructor(target: PluginTarget, opts: PluginManagerOptions = {}) {
    this.#target = target;
    this.#print = opts.print ?? stderrWrite;
    this.#report = opts.report ?? ((l) => stderrWrite(l + "\n"));
    this.#vcpu = opts.vcpu ?? (() => -1);
    this.#loadTimeout = opts.loadTimeoutMs ?? PLUGIN_LOAD_TIMEOUT_MS;
  }

  /** Load a plugin from a path / built-in name, or a Plugin object; returns its name. */
  async load(spec: string | Plugin, args: readonly string[] | PluginArgs = []): Promise<string> {
    const plugin = typeof spec === "string" ? await importPlugin(spec, this.#loadTimeout) : spec;
    if (this.#loaded.has(plugin.name)) throw new UserError(`Plugin "${plugin.name}" is already loaded`);
    const parsed = parsePluginArgs(plugin.name, plugin.args, args);
    const entry: Loaded = {
      plugin,
      args: parsed,
      path: typeof spec === "string" ? spec : "(object)",
      cleanups: [],
      listeners: new Map(),
      commands: [],
      faults: 0,
    };
    this.#loaded.set(plugin.name, entry);
    if (typeof spec === "string") this.#urls.set(plugin.name, pluginUrl(spec));
    this.#uncontain ??= containPlugins({
      culprit: (stack) => this.#culprit(stack),
      disable: (name, what) => this.#disable(name, what),
    });
    try {
      await withTimeout(
        Promise.resolve().then(() => plugin.setup(this.#context(entry))),
        this.#loadTimeout,
        () => new Error(`setup did not finish within ${this.#loadTimeout / 1000} s`),
      );
    } catch (e) {
      this.#teardown(entry);
      this.#loaded.delete(plugin.name);
      if (e instanceof UserError) throw e;
      throw new UserError(`Plugin "${plugin.name}" failed in setup: ${errMessage(e)}`);
    }
    return plugin.name;
  }

  /** Load every `-plugin` of the config, in order. */
  async loadAll(configs: readonly PluginConfig[]): Promise<void> {
    for (const c of configs) await this.load(c.path, c.args);
  }

  /** Unload by name (monitor `plugin_unload`): hooks, devices, timers and commands are removed. */
  unload(name: string): void {
    const e = this.#loaded.get(name);
    if (!e) throw new UserError(`Plugin "${name}" is not loaded`);
    this.#teardown(e);
    this.#loaded.delete(name);
  }

  /** Unload everything (VM exit: plugins print their final output from onUnload). */
  unloadAll(): void {
    for (const name of [...this.#loaded.keys()].reverse()) this.unload(name);
  }

  /** Names of loaded plugins. */
  names(): string[] {
    return [...this.#loaded.keys()];
  }

  /** `info plugins`. */
  infoPlugins(): string {
    if (this.#loaded.size === 0) return "No plugins loaded\n";
    let s = "";
    for (const e of this.#loaded.values()) {
      const args = Object.entries(e.args).map(([k, v]) => `${k}=${v}`).join(",");
      s += `${e.plugin.name}: ${e.plugin.description}\n`;
      s += `  path: ${e.path}${args ? `  args: ${args}` : ""}${e.faults ? `  faults: ${e.faults}` : ""}\n`;
      if (e.commands.length) s += `  commands: ${e.commands.join(", ")}\n`;
    }
    return s;
  }

  /** Monitor `plugin_load PATH [arg=val ...]` (args may also be comma-separated). Returns the text to print. */
  async hmpPluginLoad(line: string): Promise<string> {
    const words = line.trim().split(/\s+/).filter((w) => w);
    if (words.length === 0) throw new UserError("plugin_load: missing plugin path");
    const [first, ...rest] = words;
    const parts = first.split(",");
    const args = [...parts.slice(1), ...rest.flatMap((w) => w.split(","))].filter((a) => a);
    const name = await this.load(parts[0], args);
    return `Plugin "${name}" loaded\n`;
  }

  /** Plugin monitor commands: name and help. */
  commands(): { name: string; help: string; plugin: string }[] {
    return [...this.#commands].map(([name, c]) => ({ name, help: c.help, plugin: c.owner.plugin.name }));
  }

  /** The plugin an uncaught error comes from: by module URL in its stack, else the last one loaded from a path. */
  #culprit(stack: string): string | null {
    for (const [name, url] of this.#urls) if (stack.includes(url)) return name;
    if (stack !== "") return null;
    const names = [...this.#urls.keys()];
    return names.length ? names[names.length - 1] : null;
  }

  #disable(name: string, what: string): void {
    if (this.#disabled.has(name)) return;
    this.#disabled.add(name);
    this.#report(`plugin "${name}": ${what}; disabled`);
    const e = this.#loaded.get(name);
    if (e) {
      e.faults++;
      this.#teardown(e);
      this.#loaded.delete(name);
    }
  }

  /** Run a plugin monitor command; null if no plugin added `name`. */
  runCommand(name: string, args: string[]): string | null {
    const c = this.#commands.get(name);
    if (!c) return null;
    try {
      const r: unknown = c.fn(args);
      if (typeof r === "string") return r;
      if (r === undefined || r === null) return "";
      if (r instanceof Promise) {
        r.then(
          undefined,
          (e) => this.#disable(c.owner.plugin.name, `monitor command "${name}" rejected: ${errMessage(e)}`),
        );
        return "";
      }
      this.#commands.delete(name);
      return `Plugin "${c.owner.plugin.name}" command "${name}" returned ${typeof r}, not text; command disabled\n`;
    } catch (e) {
      if (e instanceof UserError) throw e;
      this.#fault(c.owner, `monitor command "${name}"`, e);
      this.#commands.delete(name);
      return `Plugin "${c.owner.plugin.name}" failed in command "${name}"; command disabled\n`;
    }
  }

  /** Deliver a lifecycle event to every plugin that follows it. */
  emit(event: PluginEvent): void {
    for (const e of [...this.#loaded.values()]) {
      for (const fn of e.listeners.get(event) ?? []) {
        try {
          fn();
        } catch (err) {
          this.#fault(e, `"${event}" listener`, err);
        }
      }
    }
  }

  #fault(e: Loaded, where: string, err: unknown): void {
    e.faults++;
    this.#report(`plugin "${e.plugin.name}": ${where} threw: ${errMessage(err)}; disabled`);
  }

  #teardown(e: Loaded): void {
    for (const fn of e.cleanups.splice(0).reverse()) {
      try {
        fn();
      } catch (err) {
        this.#fault(e, "unload", err);
      }
    }
    for (const c of e.commands) this.#commands.delete(c);
    e.commands = [];
    e.listeners.clear();
  }

  #space(space: PluginSpace): AddressSpace {
    return space === "io" ? this.#target.io : this.#target.memory;
  }

  /** Flat-view regions of a space (unassigned gaps left out). */
  regions(space: PluginSpace): PluginRegionInfo[] {
    return this.#space(space).flatView().map((r) => ({
      space,
      name: r.region.name,
      owner: r.region.owner,
      start: r.start,
      size: r.size,
    }));
  }

  #resolve(plugin: string, space: PluginSpace, f: HookFilter): { addr: number; size: number }[] | undefined {
    if (!f.ranges && !f.regions) return undefined;
    const out = [...(f.ranges ?? [])];
    if (f.regions) {
      const all = this.regions(space);
      for (const name of f.regions) {
        const hits = all.filter((r) => r.name === name || r.owner === name);
        if (hits.length === 0) {
          throw new UserError(`Plugin "${plugin}": no region or device "${name}" in the ${space} space`);
        }
        for (const h of hits) out.push({ addr: h.start, size: h.size });
      }
    }
    return out;
  }

  #hook(e: Loaded, space: PluginSpace, filter: HookFilter, fn: (ev: IoEvent) => void): () => void {
    const as = this.#space(space);
    const ranges = this.#resolve(e.plugin.name, space, filter);
    const clock = this.#target.clock;
    const vcpu = this.#vcpu;
    const ev: IoEvent = {
      space,
      addr: 0,
      size: 1,
      dir: "read",
      value: 0,
      region: "",
      owner: undefined,
      offset: 0,
      vcpu: -1,
      timeNs: 0,
      drop: false,
    };
    let dead = false;
    let uninstall: (() => void) | null = null;
    const remove = () => {
      dead = true;
      if (uninstall) {
        const u = uninstall;
        uninstall = null;
        u();
      }
    };
    const hook: AccessHook = {
      onAccess: (a) => {
        if (dead) return;
        ev.addr = a.addr;
        ev.size = a.size;
        ev.dir = a.dir;
        ev.value = a.value;
        ev.region = a.region;
        ev.owner = a.owner;
        ev.offset = a.offset;
        ev.vcpu = vcpu();
        ev.timeNs = clock.now();
        ev.drop = a.drop;
        this.#inHook++;
        try {
          fn(ev);
        } catch (err) {
          this.#inHook--;
          dead = true;
          this.#fault(e, `${space === "io" ? "onIo" : "onMmio"} hook`, err);
          // Removing now would mutate the hook list the dispatcher is iterating: do it after this access.
          queueMicrotask(remove);
          return;
        }
        this.#inHook--;
        a.value = ev.value >>> 0;
        a.drop = ev.drop;
      },
    };
    if (ranges) hook.ranges = ranges;
    uninstall = as.addHook(hook);
    e.cleanups.push(remove);
    return remove;
  }

  #context(e: Loaded): PluginContext {
    const t = this.#target;
    const name = e.plugin.name;
    const checkGsi = (gsi: number) => {
      if (!Number.isInteger(gsi) || gsi < 0 || gsi >= t.gsi.count) {
        throw new UserError(`Plugin "${name}": invalid GSI "${gsi}"`);
      }
    };
    return {
      name,
      args: e.args,
      onIo: (f, fn) => this.#hook(e, "io", f, fn),
      onMmio: (f, fn) => this.#hook(e, "memory", f, fn),
      addDevice: (spec: PluginDeviceSpec) => {
        const root = spec.space === "io" ? t.ioRoot : t.system;
        const limit = spec.space === "io" ? 0x10000 : 2 ** 64;
        if (!(spec.size > 0) || !(spec.base >= 0) || spec.base + spec.size > limit) {
          throw new UserError(
            `Plugin "${name}": device "${spec.name}" does not fit in the ${spec.space} space`,
          );
        }
        const region = this.#deviceRegion(e, spec);
        root.addSubregion(spec.base, region);
        let mapped = true;
        const unmap = () => {
          if (mapped) root.removeSubregion(region);
          mapped = false;
        };
        e.cleanups.push(unmap);
        return unmap;
      },
      setIrq: (gsi, level) => {
        checkGsi(gsi);
        t.gsi.line(gsi).set(level);
      },
      pulseIrq: (gsi) => {
        checkGsi(gsi);
        t.gsi.line(gsi).set(true);
        t.gsi.line(gsi).set(false);
      },
      access: (space, dir, addr, size, value = 0) => this.#access(space, dir, addr, size, value),
      readMemory: (gpa, len) => t.ram.read(gpa, len),
      writeMemory: (gpa, data) => t.ram.write(gpa, data),
      timer: (cb) => this.#timer(e, cb),
      now: () => t.clock.now(),
      print: (text) => this.#print(text),
      on: (event, fn) => {
        const l = e.listeners.get(event) ?? [];
        l.push(fn);
        e.listeners.set(event, l);
      },
      addMonitorCommand: (cmd, help, fn) => {
        if (!/^[a-z][a-z0-9_-]*$/.test(cmd)) {
          throw new UserError(`Plugin "${name}": bad command name "${cmd}"`);
        }
        if (this.#commands.has(cmd)) throw new UserError(`Plugin "${name}": monitor command "${cmd}" exists`);
        this.#commands.set(cmd, { owner: e, help, fn });
        e.commands.push(cmd);
      },
      regions: (space) => this.regions(space),
      onUnload: (fn) => e.cleanups.push(fn),
    };
  }

  #deviceRegion(e: Loaded, spec: PluginDeviceSpec): MemoryRegion {
    let dead = false;
    const ops = spec.ops;
    const guarded = {
      read: (off: number, size: 1 | 2 | 4): number => {
        if (dead) return 0xffffffff;
        try {
          return ops.read(off, size);
        } catch (err) {
          dead = true;
          this.#fault(e, `device "${spec.name}" read`, err);
          return 0xffffffff;
        }
      },
      write: (off: number, size: 1 | 2 | 4, v: number): void => {
        if (dead) return;
        try {
          ops.write(off, size, v);
        } catch (err) {
          dead = true;
          this.#fault(e, `device "${spec.name}" write`, err);
        }
      },
      ...(ops.valid ? { valid: ops.valid } : {}),
      ...(ops.impl ? { impl: ops.impl } : {}),
    };
    return MemoryRegion.io(spec.name, spec.size, guarded, { owner: `plugin:${e.plugin.name}` });
  }

  #access(space: PluginSpace, dir: "read" | "write", addr: number, size: 1 | 2 | 4, value: number): number {
    const as = this.#space(space);
    const run = () => dir === "read" ? as.read(addr, size) : (as.write(addr, size, value), 0);
    if (this.#inHook === 0) return run();
    this.#deferred.push(run);
    this.#deferTimer ??= this.#target.clock.timer(() => {
      for (const fn of this.#deferred.splice(0)) fn();
    });
    if (!this.#deferTimer.armed) this.#deferTimer.arm(this.#target.clock.now());
    return -1;
  }

  #timer(e: Loaded, cb: () => void): PluginTimer {
    const clock = this.#target.clock;
    let dead = false;
    const t: Timer = clock.timer(() => {
      if (dead) return;
      try {
        cb();
      } catch (err) {
        dead = true;
        this.#fault(e, "timer", err);
      }
    });
    e.cleanups.push(() => {
      dead = true;
      t.cancel();
    });
    return {
      arm: (d) => {
        if (!dead) t.arm(d);
      },
      armAfter: (d) => {
        if (!dead) t.arm(clock.now() + d);
      },
      cancel: () => t.cancel(),
      get armed() {
        return t.armed;
      },
    };
  }
}

/** Create a manager for `target` and load the `-plugin`s of a config (runner start-up). */
export async function startPlugins(
  target: PluginTarget,
  configs: readonly PluginConfig[],
  opts: PluginManagerOptions = {},
): Promise<PluginManager> {
  const m = new PluginManager(target, opts);
  await m.loadAll(configs);
  return m;
}

/**
 * Forward a machine's events (shell/machine_iface.ts `on`: STOP, RESUME, RESET, SHUTDOWN) to the plugins
 * as stop, start, reset and shutdown. Returns the unsubscribe function.
 */
export function followMachineEvents(
  plugins: PluginManager,
  machine: { on(cb: (ev: { event: string }) => void): () => void },
): () => void {
  const map: Record<string, PluginEvent> = {
    STOP: "stop",
    RESUME: "start",
    RESET: "reset",
    SHUTDOWN: "shutdown",
  };
  return machine.on((ev) => {
    const e = map[ev.event];
    if (e) plugins.emit(e);
  });
}
