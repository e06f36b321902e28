/**
 * QMP, the JSON machine protocol (QEMU 7.2 monitor/qmp.c, qapi/qmp-dispatch.c): greeting, capabilities
 * negotiation, commands with QEMU's error classes and messages, `id` echoed, and events with timestamps.
 * Output uses QEMU's JSON layout: `{"key": value, ...}` with ", " and ": " separators, one message per line
 * (or QEMU's 4-space pretty form with -qmp-pretty).
 * @module
 */
import { UserError } from "../core/types.ts";
import type { MachineEvent, MachineIface, QomObject } from "./machine_iface.ts";
import { HmpSession, QEMU_VERSION } from "./hmp.ts";
import { qomListTypes } from "../devices/qom_types.ts";
import { type JsonMessage, JsonStreamer, qemuJsonString } from "./qmp_json.ts";
import { migrationQmpCommands } from "./migration/monitor.ts";

/** QMP error classes (qapi/error.json). */
export type QmpErrorClass =
  | "GenericError"
  | "CommandNotFound"
  | "DeviceNotFound"
  | "DeviceNotActive"
  | "KVMMissingCap";

/** A command failure with its QMP class. */
export class QmpError extends Error {
  readonly errorClass: QmpErrorClass;
  constructor(errorClass: QmpErrorClass, desc: string) {
    super(desc);
    this.name = "QmpError";
    this.errorClass = errorClass;
  }
}

/** Render a value as QEMU's JSON writer does: `{"a": 1, "b": [1, 2]}`, or pretty with 4-space indents. */
export function qmpJson(v: unknown, pretty = false, indent = 0): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") return qemuJsonString(v);
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "null";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "boolean") return v ? "true" : "false";
  const pad = (n: number) => " ".repeat(4 * n);
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    if (!pretty) return "[" + v.map((x) => qmpJson(x)).join(", ") + "]";
    return "[\n" + v.map((x) => pad(indent + 1) + qmpJson(x, true, indent + 1)).join(",\n") + "\n" +
      pad(indent) + "]";
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return "{}";
  if (!pretty) return "{" + entries.map(([k, x]) => `${qemuJsonString(k)}: ${qmpJson(x)}`).join(", ") + "}";
  return "{\n" +
    entries.map(([k, x]) => `${pad(indent + 1)}${qemuJsonString(k)}: ${qmpJson(x, true, indent + 1)}`).join(
      ",\n",
    ) +
    "\n" + pad(indent) + "}";
}

/** Options of `new QmpSession`. */
export interface QmpOptions {
  /** Where messages go (each already ends with "\n"). */
  send: (text: string) => void;
  /** -qmp-pretty. */
  pretty?: boolean;
  /** Wall-clock source for event timestamps (ms since the epoch); default Date.now. */
  wallClockMs?: () => number;
  /** Runs `quit` after the reply was sent; default a 10 ms timer so the reply reaches the socket first. */
  defer?: (fn: () => void) => void;
}

type Args = Record<string, unknown>;

const NULL_UUID = "00000000-0000-0000-0000-000000000000";
type Handler = (args: Args) => unknown;

interface CommandDef {
  /** Parameter name → type ("str", "int", "bool", "any"); a trailing "?" marks it optional. */
  params: Record<string, string>;
  /** Accepts extra (unchecked) members, as device_add does. */
  open?: boolean;
  run: Handler;
}

/**
 * The objects with QEMU's containers added: the root "/", "/objects", "/chardevs" and every path component
 * that is not an object itself ("/machine/peripheral", "/machine/peripheral-anon", "/machine/unattached").
 */
function qomTree(objs: QomObject[]): QomObject[] {
  const have = new Set(objs.map((o) => o.path));
  const out = objs.slice();
  const add = (path: string) => {
    if (have.has(path)) return;
    have.add(path);
    out.push({ path, type: "container", props: [] });
  };
  for (const p of ["/", "/objects", "/chardevs"]) add(p);
  for (const o of objs) {
    for (let i = o.path.indexOf("/", 1); i > 0; i = o.path.indexOf("/", i + 1)) add(o.path.slice(0, i));
  }
  return out;
}

function qomChildren(objs: QomObject[], path: string): QomObject[] {
  const prefix = path === "/" ? "/" : path + "/";
  return objs.filter((o) =>
    o.path.startsWith(prefix) && o.path !== path && !o.path.slice(prefix.length).includes("/")
  );
}

/**
 * One QMP connection. Call `opened()` when a client connects (sends the greeting), feed it input with
 * `input()`; events from the machine are forwarded once capabilities were negotiated.
 *
 * @example
 * ```ts ignore
 * const s = new QmpSession(machine, { send: (t) => chr.write(enc.encode(t)) });
 * s.opened();
 * s.input('{"execute": "qmp_capabilities"}\n');
 * ```
 */
export class QmpSession {
  readonly #m: MachineIface;
  readonly #send: (text: string) => void;
  readonly #pretty: boolean;
  readonly #wall: () => number;
  readonly #defer: (fn: () => void) => void;
  readonly #cmds: Map<string, CommandDef>;
  readonly #hmp: HmpSession;
  #negotiated = false;
  readonly #json = new JsonStreamer((m) => this.#message(m));
  #unsub: (() => void) | null = null;

  constructor(machine: MachineIface, opts: QmpOptions) {
    this.#m = machine;
    this.#send = opts.send;
    this.#pretty = opts.pretty ?? false;
    this.#wall = opts.wallClockMs ?? Date.now;
    this.#defer = opts.defer ?? ((fn) => void setTimeout(fn, 10));
    this.#hmp = new HmpSession(machine, { interactive: false });
    this.#cmds = this.#table();
  }

  /** A client connected: reset negotiation and send the greeting. */
  opened(): void {
    this.#negotiated = false;
    this.#json.reset();
    this.#unsub?.();
    this.#unsub = this.#m.on((ev) => this.#event(ev));
    this.#emit({
      QMP: {
        version: { qemu: QEMU_VERSION, package: this.#m.versionPackage },
        capabilities: ["oob"],
      },
    });
  }

  /** The client went away: stop forwarding events. */
  closed(): void {
    this.#json.reset();
    this.#unsub?.();
    this.#unsub = null;
    this.#negotiated = false;
  }

  #emit(obj: unknown): void {
    this.#send(qmpJson(obj, this.#pretty) + "\n");
  }

  #event(ev: MachineEvent): void {
    if (!this.#negotiated) return;
    const ms = this.#wall();
    const seconds = Math.floor(ms / 1000);
    const microseconds = Math.floor((ms - seconds * 1000) * 1000);
    this.#emit({
      timestamp: { seconds, microseconds },
      event: ev.event,
      ...(ev.data ? { data: ev.data } : {}),
    });
  }

  /** Raw input from the client: complete JSON values are executed as they arrive (QEMU's lexer rules). */
  input(data: string | Uint8Array): void {
    this.#json.feed(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  #message(m: JsonMessage): void {
    if ("error" in m) this.#emit({ error: { class: "GenericError", desc: m.error } });
    else this.#dispatch(m.value);
  }

  #dispatch(req: unknown): void {
    if (typeof req !== "object" || req === null || Array.isArray(req)) {
      this.#emit({ error: { class: "GenericError", desc: "QMP input must be a JSON object" } });
      return;
    }
    const r = req as Record<string, unknown>;
    const id = r.id;
    const withId = (o: Record<string, unknown>) => this.#emit(id === undefined ? o : { ...o, id });
    const fail = (cls: QmpErrorClass, desc: string) => withId({ error: { class: cls, desc } });
    for (const k of Object.keys(r)) {
      if (k !== "execute" && k !== "exec-oob" && k !== "arguments" && k !== "id" && k !== "control") {
        return fail("GenericError", `QMP input member '${k}' is unexpected`);
      }
    }
    const name = r.execute ?? r["exec-oob"];
    if (name === undefined) return fail("GenericError", "QMP input lacks member 'execute'");
    if (typeof name !== "string") return fail("GenericError", "QMP input member 'execute' must be a string");
    if (
      r.arguments !== undefined &&
      (typeof r.arguments !== "object" || r.arguments === null || Array.isArray(r.arguments))
    ) {
      return fail("GenericError", "QMP input member 'arguments' must be an object");
    }
    if (r["exec-oob"] !== undefined) {
      return fail("GenericError", `The command ${name} does not support OOB`);
    }
    if (!this.#negotiated && name !== "qmp_capabilities") {
      return fail("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'");
    }
    if (this.#negotiated && name === "qmp_capabilities") {
      return fail("CommandNotFound", "Capabilities negotiation is already complete, command ignored");
    }
    const def = this.#cmds.get(name);
    if (!def) return fail("CommandNotFound", `The command ${name} has not been found`);
    const args = (r.arguments ?? {}) as Args;
    try {
      this.#checkArgs(def, args);
      const ret = def.run(args);
      withId({ return: ret ?? {} });
    } catch (e) {
      if (e instanceof QmpError) return fail(e.errorClass, e.message);
      if (e instanceof UserError) return fail("GenericError", e.message);
      fail("GenericError", e instanceof Error ? e.message : String(e));
    }
  }

  #checkArgs(def: CommandDef, args: Args): void {
    for (const [p, t] of Object.entries(def.params)) {
      const opt = t.endsWith("?");
      const type = opt ? t.slice(0, -1) : t;
      const v = args[p];
      if (v === undefined) {
        if (!opt) throw new QmpError("GenericError", `Parameter '${p}' is missing`);
        continue;
      }
      const ok = type === "any" ||
        (type === "str" && typeof v === "string") ||
        (type === "int" && typeof v === "number" && Number.isInteger(v)) ||
        (type === "bool" && typeof v === "boolean");
      if (!ok) {
        const expect = type === "str"
          ? "string"
          : type === "int"
          ? "integer"
          : type === "bool"
          ? "boolean"
          : type;
        throw new QmpError("GenericError", `Invalid parameter type for '${p}', expected: ${expect}`);
      }
    }
    if (!def.open) {
      for (const k of Object.keys(args)) {
        if (!(k in def.params)) throw new QmpError("GenericError", `Parameter '${k}' is unexpected`);
      }
    }
  }

  #resolve(path: string): QomObject {
    const objs = qomTree(this.#m.qomObjects());
    const norm = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
    let o = objs.find((x) => x.path === norm);
    if (!o && !norm.startsWith("/")) {
      // Partial paths resolve when unambiguous (object_resolve_path).
      const hits = objs.filter((x) => x.path.endsWith("/" + norm));
      if (hits.length === 1) o = hits[0];
    }
    if (!o) throw new QmpError("DeviceNotFound", `Device '${path}' not found`);
    return o;
  }

  #table(): Map<string, CommandDef> {
    const m = this.#m;
    const t = new Map<string, CommandDef>();
    const add = (name: string, params: Record<string, string>, run: Handler, open = false) =>
      t.set(name, { params, run, open });
    add("qmp_capabilities", { enable: "any?" }, (a) => {
      const en = a.enable;
      if (Array.isArray(en)) {
        for (const c of en) {
          if (c !== "oob") {
            throw new QmpError("GenericError", `Parameter 'enable' does not accept value '${String(c)}'`);
          }
        }
      }
      this.#negotiated = true;
      return {};
    });
    add("query-version", {}, () => ({ qemu: QEMU_VERSION, package: m.versionPackage }));
    add(
      "query-status",
      {},
      () => ({ status: m.runState, singlestep: false, running: m.runState === "running" }),
    );
    add("query-name", {}, () => (m.name !== undefined ? { name: m.name } : {}));
    add("query-uuid", {}, () => ({ UUID: m.uuid ?? NULL_UUID }));
    add("query-target", {}, () => ({ arch: "x86_64" }));
    const balloon = () => {
      const b = m.balloon?.() ?? null;
      if (b === null) throw new QmpError("DeviceNotActive", "No balloon device has been activated");
      return b;
    };
    add("balloon", { value: "int" }, (a) => {
      const b = balloon();
      // qmp_balloon: a target of zero or less is refused.
      if ((a.value as number) <= 0) throw new QmpError("GenericError", "Parameter 'target' expects a size");
      b.setTarget(a.value as number);
      return {};
    });
    add("query-balloon", {}, () => ({ actual: balloon().actualBytes }));
    add("query-kvm", {}, () => ({ enabled: m.accel === "kvm", present: m.accel === "kvm" || kvmPresent() }));
    add("query-machines", { "compat-props": "bool?" }, () => [{
      "hotpluggable-cpus": false,
      name: "microvm",
      "numa-mem-supported": false,
      "default-cpu-type": "qemu64-x86_64-cpu",
      "cpu-max": 288,
      deprecated: false,
      "default-ram-id": "microvm.ram",
    }]);
    add("query-cpus-fast", {}, () =>
      m.cpus().map((c) => ({
        "thread-id": c.threadId,
        props: { "core-id": 0, "thread-id": 0, "socket-id": c.index },
        "qom-path": c.qomPath,
        "cpu-index": c.index,
        target: "x86_64",
      })));
    add("query-commands", {}, () => [...t.keys()].map((name) => ({ name })));
    add(
      "query-chardev",
      {},
      () =>
        m.chardevs().map((c) => ({ "frontend-open": c.frontendOpen, filename: c.filename, label: c.label })),
    );
    add("query-block", {}, () =>
      m.blocks().map((b) => ({
        "io-status": "ok",
        device: b.device,
        locked: false,
        removable: false,
        inserted: {
          ro: b.readOnly,
          drv: b.format,
          encrypted: false,
          file: b.file,
          "node-name": b.nodeName,
          "backing_file_depth": b.backingFile ? 1 : 0,
          ...(b.backingFile ? { "backing_file": b.backingFile } : {}),
          cache: { "no-flush": b.cache.noFlush, direct: b.cache.direct, writeback: b.cache.writeback },
          "write_threshold": 0,
          "detect_zeroes": "off",
          image: { "virtual-size": b.size, filename: b.file, format: b.format },
        },
        ...(b.attachedTo ? { qdev: b.attachedTo } : {}),
        type: "unknown",
      })));
    add("qom-list", { path: "str" }, (a) => {
      const o = this.#resolve(a.path as string);
      const kids = qomChildren(qomTree(m.qomObjects()), o.path).map((k) => ({
        name: k.path.slice(k.path.lastIndexOf("/") + 1),
        type: `child<${k.type}>`,
      }));
      return [
        { name: "type", type: "string" },
        ...kids,
        ...o.props.map((p) => ({ name: p.name, type: p.type })),
      ];
    });
    add("qom-get", { path: "str", property: "str" }, (a) => {
      const o = this.#resolve(a.path as string);
      const pn = a.property as string;
      if (pn === "type") return o.type;
      const p = o.props.find((x) => x.name === pn);
      if (!p) throw new QmpError("GenericError", `Property '${o.type}.${pn}' not found`);
      if (p.value === undefined) {
        throw new QmpError("GenericError", `Property '${o.type}.${pn}' is not readable`);
      }
      return p.value;
    });
    add("qom-set", { path: "str", property: "str", value: "any" }, (a) => {
      const o = this.#resolve(a.path as string);
      const pn = a.property as string;
      const p = o.props.find((x) => x.name === pn);
      if (!p) throw new QmpError("GenericError", `Property '${o.type}.${pn}' not found`);
      if (!p.set) throw new QmpError("GenericError", `Property '${o.type}.${pn}' is not writable`);
      p.set(a.value);
      return {};
    });
    add("qom-list-types", { implements: "str?", abstract: "bool?" }, (a) => {
      return qomListTypes(m.deviceTypes, {
        ...(typeof a.implements === "string" ? { implements: a.implements } : {}),
        abstract: a.abstract === true,
      });
    });
    add("human-monitor-command", { "command-line": "str", "cpu-index": "int?" }, (a) => {
      if (typeof a["cpu-index"] === "number") {
        const r = this.#hmp.setCpu(a["cpu-index"]);
        if (r !== null) throw new QmpError("GenericError", r);
      }
      return this.#hmp.execute(a["command-line"] as string);
    });
    add("stop", {}, () => {
      m.stop();
      return {};
    });
    add("cont", {}, () => {
      m.cont();
      return {};
    });
    add("system_reset", {}, () => {
      m.systemReset();
      return {};
    });
    add("quit", {}, () => {
      // Reply first, then quit (QEMU answers before the main loop exits).
      this.#defer(() => m.quit());
      return {};
    });
    add("device_add", { driver: "str", id: "str?", bus: "str?" }, (a) => {
      const driver = a.driver as string;
      const props: Record<string, string> = {};
      for (const [k, v] of Object.entries(a)) {
        if (k === "driver" || k === "id") continue;
        props[k] = typeof v === "string" ? v : typeof v === "boolean" ? (v ? "on" : "off") : String(v);
      }
      if (!m.deviceTypes.some((d) => d.driver === driver)) {
        throw new QmpError("GenericError", `'${driver}' is not a valid device model name`);
      }
      m.deviceAdd(driver, props, a.id as string | undefined);
      return {};
    }, true);
    add("device_del", { id: "str" }, (a) => {
      try {
        m.deviceDel(a.id as string);
      } catch (e) {
        if (e instanceof UserError && /not found/.test(e.message)) {
          throw new QmpError("DeviceNotFound", e.message);
        }
        throw e;
      }
      return {};
    });
    for (const [name, c] of Object.entries(migrationQmpCommands(() => m.migration))) {
      add(name, c.params, c.run);
    }
    return t;
  }
}

function kvmPresent(): boolean {
  try {
    return Deno.statSync("/dev/kvm").isCharDevice === true;
  } catch {
    return false;
  }
}
