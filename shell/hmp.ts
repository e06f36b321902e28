/**
 * The human monitor (HMP) as QEMU 7.2 implements it for this machine (monitor/hmp.c, hmp-commands.hx,
 * hmp-commands-info.hx): command table, argument parsing with `/fmt` and expressions, QEMU's output
 * formats and error messages. `HmpSession.execute(line)` returns the text a command prints ("\n" line ends;
 * the server converts them to "\r\n" as QEMU's monitor does). Only commands that work here are listed.
 * @module
 */
import { UserError } from "../core/types.ts";
import { formatInfoMigrate, migrationHmpCommands } from "./migration/monitor.ts";
import type { CpuView, MachineIface } from "./machine_iface.ts";
import { deviceHelp, deviceListHelp, LOG_ITEMS } from "./cli/help.ts";
import { parseQemuOpts } from "./options.ts";
import { ExprError, parseExpr, registerValue } from "./hmp_expr.ts";
import {
  disassemble,
  type DumpFormat,
  formatPrint,
  formatRegisters,
  memoryDump,
  printc,
} from "./hmp_format.ts";
import { infoMem, infoTlb, virtRead } from "./hmp_mem.ts";
import { infoUsernet, usernetCommands } from "./hmp_usernet.ts";

/** The QEMU version this monitor speaks (QMP greeting, query-version, info version). */
export const QEMU_VERSION = { micro: 0, minor: 2, major: 7 } as const;

/** QEMU's HMP banner. */
export const HMP_BANNER =
  `QEMU ${QEMU_VERSION.major}.${QEMU_VERSION.minor}.${QEMU_VERSION.micro} monitor - type 'help' for more information\n`;

/** The prompt. */
export const HMP_PROMPT = "(qemu) ";

/** Options of `new HmpSession`. */
export interface HmpOptions {
  /** A readline monitor keeps history; QMP's human-monitor-command does not. */
  interactive?: boolean;
  /** Opens a file for memsave/pmemsave (streamed in chunks); default Deno.openSync. Throws on failure. */
  openFile?: (path: string) => { write(data: Uint8Array): void; close(): void };
  /** Where long outputs (`x` over many units) stream while they are produced (interactive monitors). */
  stream?: (text: string) => void;
}

/** Thrown by argument parsing: the message is printed, then "Try "help CMD" for more information". */
class ArgError extends Error {}

interface Cmd {
  name: string;
  params: string;
  help: string;
  run: (args: string, name: string) => string;
}

function splitWord(s: string): [string, string] {
  const t = s.replace(/^\s+/, "");
  const m = t.match(/^\S+/);
  if (!m) return ["", ""];
  return [m[0], t.slice(m[0].length)];
}

/**
 * get_str: a word, or a double-quoted string with \n \r \\ \' \" escapes (quotes stripped; single
 * quotes are ordinary characters, as in QEMU). Null when malformed (unterminated, unknown escape).
 */
function splitStr(s: string): [string, string] | null {
  const t = s.replace(/^\s+/, "");
  if (!t.startsWith('"')) return splitWord(t);
  let out = "";
  let i = 1;
  for (; i < t.length && t[i] !== '"'; i++) {
    if (t[i] !== "\\") {
      out += t[i];
      continue;
    }
    const c = t[++i];
    if (c === "n") out += "\n";
    else if (c === "r") out += "\r";
    else if (c === "\\" || c === "'" || c === '"') out += c;
    else return null;
  }
  if (t[i] !== '"') return null;
  return [out, t.slice(i + 1)];
}

function osErr(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "No such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "Permission denied";
  if (e instanceof Deno.errors.IsADirectory) return "Is a directory";
  return e instanceof Error ? e.message : String(e);
}

/**
 * One monitor: command interpreter state (current CPU, default x/p format, history).
 *
 * @example
 * ```ts ignore
 * const hmp = new HmpSession(machine, { interactive: true });
 * console.log(hmp.execute("info status")); // "VM status: running\n"
 * ```
 */
export class HmpSession {
  readonly #m: MachineIface;
  readonly #interactive: boolean;
  readonly #openFile: (path: string) => { write(data: Uint8Array): void; close(): void };
  readonly #stream: ((text: string) => void) | null;
  readonly #cmds: Cmd[];
  readonly #info: Cmd[];
  #cpu = 0;
  #fmt: DumpFormat = "x";
  #size: 1 | 2 | 4 | 8 = 4;
  readonly #history: string[] = [];
  #quit = false;

  constructor(machine: MachineIface, opts: HmpOptions = {}) {
    this.#m = machine;
    this.#interactive = opts.interactive ?? true;
    this.#openFile = opts.openFile ?? ((p) => {
      const f = Deno.openSync(p, { write: true, create: true, truncate: true });
      return {
        write: (d: Uint8Array) => {
          for (let off = 0; off < d.length;) off += f.writeSync(d.subarray(off));
        },
        close: () => f.close(),
      };
    });
    this.#stream = opts.stream ?? null;
    this.#info = this.#infoTable();
    this.#cmds = this.#cmdTable();
  }

  /** Commands for completion (first name of each "a|b" alias group included). */
  commandNames(): string[] {
    return this.#cmds.flatMap((c) => c.name.split("|"));
  }

  /** `info` subcommands for completion. */
  infoNames(): string[] {
    return this.#info.map((c) => c.name);
  }

  /** Device ids/paths for completion of device_del. */
  deviceNames(): string[] {
    return this.#m.qomObjects().filter((o) => o.path.startsWith("/machine/peripheral/")).map((o) =>
      o.path.slice("/machine/peripheral/".length)
    );
  }

  /** True once `quit` ran: the monitor prints no further prompt (QEMU suspends it). */
  get quitRequested(): boolean {
    return this.#quit;
  }

  /** Lines typed so far (oldest first). */
  get history(): readonly string[] {
    return this.#history;
  }

  /** Add lines loaded from a history file. */
  loadHistory(lines: readonly string[]): void {
    this.#history.push(...lines);
  }

  /** Select the current CPU (`cpu N`, QMP cpu-index); returns an error message or null. */
  setCpu(index: number): string | null {
    if (!this.#m.cpus().some((c) => c.index === index)) return "invalid CPU index";
    this.#cpu = index;
    return null;
  }

  /** Run one command line; returns what the monitor prints. Never throws. */
  execute(line: string): string {
    const trimmed = line.trim();
    if (this.#interactive && trimmed !== "") this.#history.push(line.replace(/\s+$/, ""));
    if (trimmed === "") return "";
    try {
      return this.#dispatch(trimmed, this.#cmds, "");
    } catch (e) {
      if (e instanceof UserError || e instanceof ExprError) return `Error: ${e.message}\n`;
      return `Error: internal error: ${e instanceof Error ? e.message : String(e)}\n`;
    }
  }

  #dispatch(line: string, table: Cmd[], prefix: string): string {
    const p = line.replace(/^\s+/, "");
    const m = p.match(/^[^\s/]+/);
    const name = m ? m[0] : "";
    const rest = p.slice(name.length);
    const cmd = table.find((c) => c.name.split("|").includes(name));
    if (!cmd) {
      const viaPlugin = prefix === ""
        ? this.#m.plugins?.command(name, rest.trim().split(/\s+/).filter(Boolean))
        : null;
      return viaPlugin ?? `unknown command: '${prefix}${name}'\n`;
    }
    try {
      return cmd.run(rest, cmd.name.split("|")[0]);
    } catch (e) {
      if (e instanceof ArgError) {
        return `${e.message}\nTry "help ${(prefix + name)}" for more information\n`;
      }
      if (e instanceof ExprError) {
        return `${e.message}\nTry "help ${(prefix + name)}" for more information\n`;
      }
      throw e;
    }
  }

  // --- argument helpers (monitor_parse_arguments) -----------------------------------------------------

  #parseFmt(
    args: string,
    allowI: boolean,
  ): { count: number; format: DumpFormat; size: 1 | 2 | 4 | 8; rest: string } {
    let p = args.replace(/^\s+/, "");
    let count = 1;
    let format: DumpFormat | null = null;
    let size: 1 | 2 | 4 | 8 | null = null;
    if (p.startsWith("/")) {
      p = p.slice(1);
      const d = p.match(/^\d+/);
      if (d) {
        // QEMU accumulates the count in a C int: it wraps (a huge count can end up <= 0: nothing printed).
        count = 0;
        for (const ch of d[0]) count = (Math.imul(count, 10) + (ch.charCodeAt(0) - 48)) | 0;
        p = p.slice(d[0].length);
      }
      for (;;) {
        const c = p[0];
        if (c !== undefined && "oduxictas".includes(c)) {
          format = c as DumpFormat;
          p = p.slice(1);
        } else if (c === "b" || c === "h" || c === "w" || c === "g" || c === "L") {
          size = c === "b" ? 1 : c === "h" ? 2 : c === "w" ? 4 : 8;
          p = p.slice(1);
        } else break;
      }
      if (p !== "" && !/^\s/.test(p)) throw new ArgError(`invalid char in format: '${p[0]}'`);
      if (format === "i" && !allowI) throw new ArgError(`invalid char in format: 'i'`);
    }
    const f = format ?? this.#fmt;
    let s: 1 | 2 | 4 | 8;
    if (f !== "i") {
      s = size ?? this.#size;
      this.#size = s;
    } else s = size ?? this.#size;
    this.#fmt = f;
    return { count, format: f, size: s, rest: p };
  }

  #cur(): CpuView {
    const cpus = this.#m.cpus();
    const c = cpus.find((x) => x.index === this.#cpu) ?? cpus[0];
    if (!c) throw new UserError("No CPU available");
    return c;
  }

  #expr(args: string): { value: bigint; rest: string } {
    const cpu = this.#m.cpus().find((x) => x.index === this.#cpu);
    let regs: ReturnType<CpuView["registers"]> | null = null;
    return parseExpr(args, (name) => {
      if (!cpu) return undefined;
      regs ??= cpu.registers();
      return registerValue(regs, name);
    });
  }

  #noMore(rest: string, name: string): void {
    if (rest.trim() !== "") throw new ArgError(`${name}: extraneous characters at the end of line`);
  }

  #physRead = (addr: bigint, len: number): Uint8Array | null => {
    if (addr + BigInt(len) > 1n << 52n) return null;
    return this.#m.memRead(Number(addr), len);
  };

  /**
   * Physical reads for `xp`, one access per dump unit (at most 4 bytes, aligned), as address_space_read
   * splits an MMIO read: a virtio-mmio register dumped with /xw is one 4-byte register read.
   */
  #physUnitReader(unit: number): (addr: bigint, len: number) => Uint8Array | null {
    return (addr, len) => {
      if (addr + BigInt(len) > 1n << 52n) return null;
      const base = Number(addr);
      const out = new Uint8Array(len);
      let off = 0;
      while (off < len) {
        const a = base + off;
        let size: 1 | 2 | 4 = unit >= 4 ? 4 : unit === 2 ? 2 : 1;
        while (size > 1 && (a % size !== 0 || off + size > len)) size = size === 4 ? 2 : 1;
        const v = this.#m.memReadN(a, size);
        for (let i = 0; i < size; i++) out[off + i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
        off += size;
      }
      return out;
    };
  }

  #virtReader(): (addr: bigint, len: number) => Uint8Array | null {
    const regs = this.#cur().registers();
    const rd = (a: number, l: number) => this.#m.memRead(a, l);
    return (addr, len) => virtRead(regs, addr, len, rd);
  }

  // --- command table ----------------------------------------------------------------------------------

  #cmdTable(): Cmd[] {
    const m = this.#m;
    const cmds: Cmd[] = [
      {
        name: "plugin_load",
        params: "path [arg=value,...]",
        help:
          "load a TypeScript plugin (a module exporting `plugin`) or a built-in one: trace, stats, fault-inject, chaos",
        run: (a) => {
          if (!m.plugins) return "plugins are not available\n";
          if (!a.trim()) throw new ArgError("plugin_load: missing argument");
          m.plugins.load(a.trim());
          return "";
        },
      },
      {
        name: "plugin_unload",
        params: "name",
        help: "unload a plugin by name",
        run: (a) => {
          if (!m.plugins) return "plugins are not available\n";
          if (!a.trim()) throw new ArgError("plugin_unload: missing argument");
          return m.plugins.unload(a.trim());
        },
      },
      {
        name: "cont|c",
        params: "",
        help: "resume emulation",
        run: (a, n) => {
          this.#noMore(a, n);
          m.cont();
          return "";
        },
      },
      {
        name: "cpu",
        params: "index",
        help: "set the default CPU",
        run: (a) => {
          const { value, rest } = this.#expr(a);
          this.#noMore(rest, "cpu");
          const err = this.setCpu(Number(value));
          return err ? `${err}\n` : "";
        },
      },
      {
        name: "device_add",
        params: "driver[,prop=value][,...]",
        help: "add device, like -device on the command line",
        run: (a) => this.#deviceAdd(a.trim()),
      },
      {
        name: "device_del",
        params: "device",
        help: "remove device",
        run: (a) => {
          const [id, rest] = splitWord(a);
          if (!id) throw new ArgError("device_del: string expected");
          this.#noMore(rest, "device_del");
          m.deviceDel(id);
          return "";
        },
      },
      {
        name: "gdbserver",
        params: "[device]",
        help: "start gdbserver on given device (default 'tcp::1234'), stop with 'none'",
        run: (a) => {
          const dev = a.trim();
          if (!m.gdbserver) return "gdbserver is not available\n";
          return m.gdbserver(dev === "" ? undefined : dev);
        },
      },
      {
        name: "help|?",
        params: "[cmd]",
        help: "show the help",
        run: (a) => this.#help(a.trim()),
      },
      {
        name: "i",
        params: "/fmt addr",
        help: "I/O port read",
        run: (a) => {
          const f = this.#parseFmt(a, false);
          const { value, rest } = this.#expr(f.rest);
          this.#noMore(rest, "i");
          const size = f.size === 1 ? 1 : f.size === 2 ? 2 : 4;
          const port = Number(value & 0xffffn);
          const v = m.ioRead(port, size) >>> 0;
          const suffix = size === 1 ? "b" : size === 2 ? "w" : "l";
          return `port${suffix}[0x${port.toString(16).padStart(4, "0")}] = 0x${
            v.toString(16).padStart(size * 2, "0")
          }\n`;
        },
      },
      {
        name: "info",
        params: "[subcommand]",
        help: "show various information about the system state",
        run: (a) => {
          if (a.trim() === "") return this.#help("info");
          return this.#dispatch(a, this.#info, "info ");
        },
      },
      {
        name: "log",
        params: "item1[,...]",
        help: "activate logging of the specified items",
        run: (a) => {
          const [items, rest] = splitWord(a);
          if (!items) throw new ArgError("log: string expected");
          this.#noMore(rest, "log");
          if (items === "none") {
            m.setLogItems([]);
            return "";
          }
          const list = items.split(",");
          const known = new Set(LOG_ITEMS.map(([n]) => n));
          if (list.some((x) => !known.has(x) && x !== "all")) return this.#help("log");
          m.setLogItems(list.includes("all") ? LOG_ITEMS.map(([n]) => n) : list);
          return "";
        },
      },
      {
        name: "logfile",
        params: "filename",
        help: "output logs to 'filename'",
        run: (a) => {
          const [file, rest] = splitWord(a);
          if (!file) throw new ArgError("logfile: filename expected");
          this.#noMore(rest, "logfile");
          m.setLogFile(file);
          return "";
        },
      },
      {
        name: "memsave",
        params: "addr size file",
        help: "save to disk virtual memory dump starting at 'addr' of size 'size'",
        run: (a) => this.#save(a, false),
      },
      {
        name: "o",
        params: "/fmt addr value",
        help: "I/O port write",
        run: (a) => {
          const f = this.#parseFmt(a, false);
          const port = this.#expr(f.rest);
          const val = this.#expr(port.rest);
          this.#noMore(val.rest, "o");
          const size = f.size === 1 ? 1 : f.size === 2 ? 2 : 4;
          m.ioWrite(Number(port.value & 0xffffn), size, Number(BigInt.asUintN(size * 8, val.value)));
          return "";
        },
      },
      {
        name: "pmemsave",
        params: "addr size file",
        help: "save to disk physical memory dump starting at 'addr' of size 'size'",
        run: (a) => this.#save(a, true),
      },
      {
        name: "print|p",
        params: "/fmt expr",
        help: "print expression value (use $reg for CPU register access)",
        run: (a) => {
          const f = this.#parseFmt(a, false);
          const { value, rest } = this.#expr(f.rest);
          this.#noMore(rest, "print");
          return formatPrint(value, f.format) + "\n";
        },
      },
      {
        name: "quit|q",
        params: "",
        help: "quit the emulator",
        run: (a, n) => {
          this.#noMore(a, n);
          this.#quit = true;
          m.quit();
          return "";
        },
      },
      {
        name: "stop|s",
        params: "",
        help: "stop emulation",
        run: (a, n) => {
          this.#noMore(a, n);
          m.stop();
          return "";
        },
      },
      {
        name: "balloon",
        params: "target",
        help: "request VM to change its memory allocation (in MB)",
        run: (a) => {
          const v = a.trim();
          if (v === "") throw new UserError("Parameter 'value' is missing");
          if (!/^-?\d+$/.test(v)) throw new UserError(`'${v}' is an invalid value`);
          const b = m.balloon?.() ?? null;
          if (b === null) throw new UserError("No balloon device has been activated");
          const mb = Number(v);
          if (mb <= 0) throw new UserError("Parameter 'target' expects a size");
          b.setTarget(mb * 1024 * 1024);
          return "";
        },
      },
      {
        name: "system_reset",
        params: "",
        help: "reset the system",
        run: (a, n) => {
          this.#noMore(a, n);
          m.systemReset();
          return "";
        },
      },
      ...usernetCommands(m),
      {
        name: "x",
        params: "/fmt addr",
        help: "virtual memory dump starting at 'addr'",
        run: (a) => this.#dump(a, false),
      },
      {
        name: "xp",
        params: "/fmt addr",
        help: "physical memory dump starting at 'addr'",
        run: (a) => this.#dump(a, true),
      },
      ...migrationHmpCommands(() => m.migration),
    ];
    return cmds;
  }

  #infoTable(): Cmd[] {
    const m = this.#m;
    const plain = (name: string, help: string, fn: () => string, params = ""): Cmd => ({
      name,
      params,
      help,
      run: (a) => {
        this.#noMore(a, name);
        return fn();
      },
    });
    const t: Cmd[] = [
      plain(
        "block",
        "show info of one block device or all block devices",
        () => this.#infoBlock(),
        "[-n] [-v] [device]",
      ),
      plain(
        "chardev",
        "show the character devices",
        () => m.chardevs().map((c) => `${c.label}: filename=${c.filename}\n`).join(""),
      ),
      plain(
        "cpus",
        "show infos for each CPU",
        () =>
          m.cpus().map((c) =>
            `${c.index === this.#cpu ? "*" : " "} CPU #${c.index}: thread_id=${c.threadId}\n`
          ).join(""),
      ),
      plain(
        "history",
        "show the command line history",
        () => this.#history.map((h, i) => `${i}: '${h}'\n`).join(""),
      ),
      plain(
        "irq",
        "show the interrupts statistics (if available)",
        () => m.infoIrq ? m.infoIrq() : "IRQ statistics not available.\n",
      ),
      plain("balloon", "show balloon information", () => {
        const b = m.balloon?.() ?? null;
        if (b === null) return "Error: No balloon device has been activated\n";
        return `balloon: actual=${Math.floor(b.actualBytes / (1024 * 1024))}\n`;
      }),
      plain(
        "jit",
        "show dynamic compiler info",
        () => m.infoJit ? m.infoJit() : "JIT information is only available with accel=tcg\n",
      ),
      plain(
        "kvm",
        "show KVM information",
        () => `kvm support: ${m.accel === "kvm" ? "enabled" : "disabled"}\n`,
      ),
      {
        name: "lapic",
        params: "[apic-id]",
        help: "show local apic state (apic-id: local apic to read, default is which of current CPU)",
        run: (a) => {
          let cpu = this.#cpu;
          if (a.trim() !== "") {
            const { value, rest } = this.#expr(a);
            this.#noMore(rest, "lapic");
            cpu = Number(value);
            if (!m.cpus().some((c) => c.index === cpu)) return "Invalid apic-id\n";
          }
          return m.infoLapic ? m.infoLapic(cpu) : "local apic state not available\n";
        },
      },
      plain(
        "mem",
        "show the active virtual memory mappings",
        () => infoMem(this.#cur().registers(), (a, l) => m.memRead(a, l)),
      ),
      {
        name: "mtree",
        params: "[-f][-d][-o][-D]",
        help: "show memory tree (-f: dump flat view for address spaces)",
        run: (a) => {
          const flags = a.trim().split(/\s+/).filter((x) => x !== "");
          for (const f of flags) {
            if (!/^-[fdoD]+$/.test(f)) {
              throw new ArgError(`info mtree: extraneous characters at the end of line`);
            }
          }
          return m.infoMtree(flags.some((f) => f.includes("f")));
        },
      },
      plain("name", "show the current VM name", () => (m.name !== undefined ? `${m.name}\n` : "")),
      plain(
        "uuid",
        "show the current VM UUID",
        () => `${m.uuid ?? "00000000-0000-0000-0000-000000000000"}\n`,
      ),
      plain("network", "show the network state", () => (m.infoNetwork ? m.infoNetwork() : "")),
      plain("pic", "show PIC state", () => (m.infoPic ? m.infoPic() : "PIC information not available.\n")),
      plain("plugins", "show loaded plugins", () => m.plugins ? m.plugins.info() : ""),
      plain("qtree", "show device tree", () => m.infoQtree()),
      {
        name: "registers",
        params: "[-a|vcpu]",
        help: "show the cpu registers (-a: show register info for all cpus; vcpu: specific vCPU to query; " +
          "show the current CPU's registers if omitted)",
        run: (a) => {
          const arg = a.trim();
          const cpus = m.cpus();
          const dump = (c: CpuView) =>
            `\nCPU#${c.index}\n` +
            formatRegisters(c.registers(), c.extra?.() ?? {}, { limitBits: m.accel !== "kvm" });
          if (arg === "-a") return cpus.map(dump).join("");
          if (arg !== "") {
            const { value, rest } = this.#expr(arg);
            this.#noMore(rest, "registers");
            const c = cpus.find((x) => BigInt(x.index) === value);
            return c ? dump(c) : `CPU#${BigInt.asIntN(64, value)} not available\n`;
          }
          const c = cpus.find((x) => x.index === this.#cpu) ?? cpus[0];
          return c ? dump(c) : "No CPU available\n";
        },
      },
      plain("roms", "show roms", () => (m.infoRoms ? m.infoRoms() : "")),
      plain("status", "show the current VM status (running|paused)", () => {
        const s = m.runState;
        const running = s === "running";
        return `VM status: ${running ? "running" : "paused"}${!running && s !== "paused" ? ` (${s})` : ""}\n`;
      }),
      plain(
        "tlb",
        "show virtual to physical memory mappings",
        () => infoTlb(this.#cur().registers(), (a, l) => m.memRead(a, l)),
      ),
      plain("usernet", "show user network stack connection states", () => infoUsernet(m)),
      plain(
        "version",
        "show the version of QEMU",
        () => {
          const v = `${QEMU_VERSION.major}.${QEMU_VERSION.minor}.${QEMU_VERSION.micro}`;
          return `${m.versionPackage.startsWith(v) ? "" : v}${m.versionPackage}\n`;
        },
      ),
      plain("migrate", "show migration status", () => m.migration ? formatInfoMigrate(m.migration) : ""),
    ];
    // info block accepts arguments; relax its check.
    t[0].run = (a) => this.#infoBlock(a.trim());
    return t;
  }

  #infoBlock(arg = ""): string {
    const words = arg.split(/\s+/).filter((x) => x !== "" && !x.startsWith("-"));
    let blocks = this.#m.blocks();
    if (words[0]) {
      blocks = blocks.filter((b) => b.device === words[0]);
      if (blocks.length === 0) return `Device '${words[0]}' not found\n`;
    }
    return blocks.map((b, i) => {
      let s = i ? "\n" : "";
      s += `${b.device} (${b.nodeName}): ${b.file} (${b.format}${b.readOnly ? ", read-only" : ""})\n`;
      if (b.attachedTo) s += `    Attached to:      ${b.attachedTo}\n`;
      s += `    Cache mode:       ${b.cache.writeback ? "writeback" : "writethrough"}` +
        `${b.cache.direct ? ", direct" : ""}${b.cache.noFlush ? ", ignore flushes" : ""}\n`;
      if (b.backingFile) s += `    Backing file:     ${b.backingFile} (chain depth: 1)\n`;
      return s;
    }).join("");
  }

  #dump(a: string, physical: boolean): string {
    const f = this.#parseFmt(a, true);
    const { value, rest } = this.#expr(f.rest);
    this.#noMore(rest, physical ? "xp" : "x");
    const read = physical ? this.#physUnitReader(f.format === "c" ? 1 : f.size) : this.#virtReader();
    if (f.format === "i") {
      const cpu = this.#cur();
      const r = cpu.registers();
      const lma = (r.efer & (1n << 10n)) !== 0n;
      const bits = lma && (r.seg.cs.attrs & 0x2000)
        ? 64
        : (r.seg.cs.attrs & 0x4000)
        ? 32
        : (r.cr.cr0 & 1n)
        ? 16
        : 16;
      return disassemble(read, value, f.count, bits);
    }
    return memoryDump(read, {
      addr: value,
      count: f.count,
      format: f.format,
      size: f.size,
      ...(this.#stream ? { emit: this.#stream } : {}),
    });
  }

  #save(a: string, physical: boolean): string {
    const name = physical ? "pmemsave" : "memsave";
    const addr = this.#expr(a);
    const size = this.#expr(addr.rest);
    // size is an 'i' argument: 32 bits (monitor_parse_arguments).
    if (BigInt.asUintN(64, size.value) >> 32n) {
      throw new ArgError(`'${name}' has failed: integer is for 32-bit values`);
    }
    const fileArg = splitStr(size.rest);
    if (!fileArg || !fileArg[0]) throw new ArgError(`${name}: string expected`);
    const [file, rest] = fileArg;
    this.#noMore(rest, name);
    const len = Number(BigInt.asIntN(32, size.value));
    const read = physical ? this.#physRead : this.#virtReader();
    let out: { write(data: Uint8Array): void; close(): void };
    try {
      out = this.#openFile(file);
    } catch (e) {
      throw new UserError(`Could not open '${file}': ${osErr(e)}`);
    }
    // Streamed in 1 KiB reads (QEMU's loop) gathered into 1 MiB writes: memory stays bounded.
    const buf = new Uint8Array(1 << 20);
    let fill = 0;
    try {
      for (let off = 0; off < len; off += 1024) {
        const n = Math.min(1024, len - off);
        let b = read(addr.value + BigInt(off), n);
        if (!b && physical) b = new Uint8Array(n); // address_space_read of nothing: zeros
        if (!b) {
          throw new UserError(
            `Invalid addr 0x${
              BigInt.asUintN(64, addr.value).toString(16).padStart(16, "0")
            }/size ${len} specified`,
          );
        }
        buf.set(b, fill);
        fill += n;
        if (fill > buf.length - 1024) {
          out.write(buf.subarray(0, fill));
          fill = 0;
        }
      }
    } finally {
      try {
        if (fill) out.write(buf.subarray(0, fill));
      } finally {
        out.close();
      }
    }
    return "";
  }

  #deviceAdd(arg: string): string {
    const m = this.#m;
    if (arg === "") throw new ArgError("device_add: string expected");
    if (arg === "help" || arg === "?") return deviceListHelp(m.deviceTypes);
    const opts = parseQemuOpts(arg, "driver");
    const driver = opts.pairs.find((p) => p.key === "driver")?.value ?? "";
    if (opts.help) {
      try {
        return deviceHelp(driver, m.deviceTypes);
      } catch (e) {
        return `Error: ${(e as Error).message}\n`;
      }
    }
    if (!m.deviceTypes.some((d) => d.driver === driver)) {
      throw new UserError(`'${driver}' is not a valid device model name`);
    }
    const props: Record<string, string> = {};
    let id: string | undefined;
    for (const p of opts.pairs) {
      if (p.key === "driver") continue;
      if (p.key === "id") id = p.value;
      else props[p.key] = p.value;
    }
    m.deviceAdd(driver, props, id);
    return "";
  }

  #help(arg: string): string {
    const words = arg.split(/\s+/).filter((x) => x !== "");
    if (words[0] === "log") {
      let s = "Log items (comma separated):\n";
      s += `${"none".padEnd(10)} remove all logs\n`;
      for (const [n, h] of LOG_ITEMS) s += `${n.padEnd(10)} ${h}\n`;
      return s;
    }
    const one = (c: Cmd, prefix: string) => `${prefix}${c.name} ${c.params} -- ${c.help}\n`;
    if (words.length === 0) return this.#cmds.map((c) => one(c, "")).join("");
    const c = this.#cmds.find((x) => x.name.split("|").includes(words[0]));
    if (!c) return `unknown command: '${words[0]}'\n`;
    if (c.name === "info") {
      if (words.length === 1) return this.#info.map((x) => one(x, "info ")).join("");
      const s = this.#info.find((x) => x.name === words[1]);
      if (!s) return `unknown command: 'info ${words[1]}'\n`;
      return one(s, "info ");
    }
    return one(c, "");
  }
}

export { printc };
