/**
 * The typed plugin API: a plugin is a TypeScript module with a named export `plugin` of type `Plugin`.
 * `setup(ctx)` receives a `PluginContext` that can hook port/MMIO accesses (observe, replace a read value,
 * drop or change a write), add an I/O device, drive a GSI, read/write guest RAM (bounds-checked), arm
 * virtual-clock timers, print to the console, follow lifecycle events and add monitor commands.
 *
 * Hooks sit in `AddressSpace` dispatch (STYLE.md §2.4): with no hook installed dispatch is the unhooked
 * function, so an idle plugin costs nothing. An exception thrown by a plugin callback is reported with the
 * plugin's name and contained: that hook (or timer, or command) is disabled, the VM goes on.
 * @example
 * ```ts
 * import type { Plugin } from "./api.ts";
 * export const plugin: Plugin = {
 *   name: "post-logger",
 *   description: "print every write to the POST port 0x80",
 *   args: { prefix: { type: "string", default: "POST", help: "line prefix" } },
 *   setup(ctx) {
 *     ctx.onIo({ ranges: [{ addr: 0x80, size: 1 }] }, (ev) => {
 *       if (ev.dir === "write") ctx.print(`${ctx.args.prefix} ${ev.value.toString(16)}\n`);
 *     });
 *   },
 * };
 * ```
 * @module
 */
import type { RegionOps } from "../core/types.ts";

/** Type of one plugin argument (`-plugin PATH,name=value`). */
export type PluginArgType = "string" | "number" | "bool";

/** One entry of a plugin's argument schema. */
export interface PluginArgSpec {
  type: PluginArgType;
  /** Value when the argument is not given; without a default the argument is required. */
  default?: string | number | boolean;
  help: string;
}

/** Parsed argument values, typed by the schema. */
export type PluginArgs = Record<string, string | number | boolean>;

/** Lifecycle events a plugin may follow. */
export type PluginEvent = "start" | "stop" | "reset" | "shutdown";

/** The two address spaces a hook or device may live in. */
export type PluginSpace = "io" | "memory";

/**
 * One port or MMIO access as a hook sees it. Mutable: set `value` to replace a read result or change a
 * write, set `drop` to drop a write. Valid only during the callback (the object is reused).
 */
export interface IoEvent {
  space: PluginSpace;
  /** Address in the space (port number or guest-physical address). */
  addr: number;
  size: 1 | 2 | 4;
  dir: "read" | "write";
  /** The value read (after the device answered) or being written. */
  value: number;
  /** Region name (as in `info mtree`), or "unassigned". */
  region: string;
  /** Owner device id of the region, if any. */
  owner: string | undefined;
  /** Offset of the access inside the region. */
  offset: number;
  /** Index of the vCPU that issued the access, -1 if not known (qtest, fuzzer, DMA). */
  vcpu: number;
  /** Virtual time in ns. */
  timeNs: number;
  /** Writes only: true drops the write. */
  drop: boolean;
}

/** Where a hook applies: explicit ranges and/or regions picked by name or owner id. Neither = everything. */
export interface HookFilter {
  ranges?: ReadonlyArray<{ addr: number; size: number }>;
  /** Region names or owner device ids resolved against the flat view when the hook is installed. */
  regions?: readonly string[];
}

/** A device a plugin adds; it appears in `info mtree` as an i/o region named `name`. */
export interface PluginDeviceSpec {
  name: string;
  space: PluginSpace;
  base: number;
  size: number;
  ops: RegionOps;
}

/** A virtual-clock timer owned by a plugin. */
export interface PluginTimer {
  /** Fire once at virtual time `deadlineNs`. */
  arm(deadlineNs: number): void;
  /** Fire once `delayNs` from now. */
  armAfter(delayNs: number): void;
  cancel(): void;
  readonly armed: boolean;
}

/** A monitor command handler: receives the words after the command name, returns the text to print. */
export type MonitorCommandFn = (args: string[]) => string;

/** A region of the flat view, as plugins see it. */
export interface PluginRegionInfo {
  space: PluginSpace;
  name: string;
  owner: string | undefined;
  start: number;
  size: number;
}

/** What a plugin's `setup` receives. Everything it installs is removed when the plugin is unloaded. */
export interface PluginContext {
  /** The plugin's name. */
  readonly name: string;
  /** Arguments, validated against the schema, defaults filled in. */
  readonly args: PluginArgs;
  /** Hook port I/O accesses; returns a function that removes the hook. */
  onIo(filter: HookFilter, fn: (ev: IoEvent) => void): () => void;
  /** Hook MMIO accesses (the `memory` address space; RAM is not hooked per access). */
  onMmio(filter: HookFilter, fn: (ev: IoEvent) => void): () => void;
  /** Map an I/O region; throws UserError on an overlap. Returns a function that unmaps it. */
  addDevice(spec: PluginDeviceSpec): () => void;
  /** Set the level of a GSI (as a device output would). */
  setIrq(gsi: number, level: boolean): void;
  /** Raise then lower a GSI (one edge). */
  pulseIrq(gsi: number): void;
  /**
   * Issue a port/MMIO access through dispatch (other plugins' hooks see it). Called from inside a hook,
   * it is queued and issued right after the current access (dispatch is not re-entered); a queued read
   * returns -1.
   */
  access(space: PluginSpace, dir: "read" | "write", addr: number, size: 1 | 2 | 4, value?: number): number;
  /** Guest RAM, bounds-checked: null / false when the range is not wholly RAM. */
  readMemory(gpa: number, len: number): Uint8Array | null;
  writeMemory(gpa: number, data: Uint8Array): boolean;
  /** A virtual-clock timer; its callback runs from the run loop. */
  timer(cb: () => void): PluginTimer;
  /** Virtual time in ns. */
  now(): number;
  /** Write text to the console (stderr of the emulator by default). */
  print(text: string): void;
  /** Follow a lifecycle event. */
  on(event: PluginEvent, fn: () => void): void;
  /** Add a monitor command (HMP); the name must not be taken. */
  addMonitorCommand(name: string, help: string, fn: MonitorCommandFn): void;
  /** Regions of a space's flat view (to resolve names to addresses). */
  regions(space: PluginSpace): PluginRegionInfo[];
  /** Run `fn` when the plugin is unloaded (or the VM exits). */
  onUnload(fn: () => void): void;
}

/** A plugin module's `plugin` export. */
export interface Plugin {
  /** Unique name (`plugin_unload NAME`, `info plugins`, error messages). */
  name: string;
  description: string;
  args: Record<string, PluginArgSpec>;
  setup(ctx: PluginContext): void | Promise<void>;
}

/** A module that can be loaded: exports `plugin`. */
export interface PluginModule {
  plugin: Plugin;
}
