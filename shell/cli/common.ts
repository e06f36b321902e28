/**
 * Internals shared by the command-line modules: option tables (QemuOptsList descriptions from QEMU 7.2)
 * and the state the option loop gathers before the post-loop phases turn it into a VmConfig.
 * @module
 */
import { type VmConfig } from "../../core/config.ts";
import { type OptDesc, type OptPair } from "../options.ts";
/** What `parseCommandLine` returns when the command line asks for text instead of a VM. */
export interface CliAction {
  action: "help" | "version";
  /** Text for stdout (ends with a newline); exit status 0 after printing it. */
  text: string;
}

/** QOM type name of the machine, used in "Property 'microvm-machine.x' not found" as QEMU prints it. */
export const MACHINE_QOM_TYPE = "microvm-machine";

/** Where an object was written on the command line (for errors raised after the option loop). */
export interface Located<T> {
  loc: string;
  value: T;
}

/** Chardev options (qemu_chardev_opts in chardev/char.c). */
export const CHARDEV_OPTS: readonly OptDesc[] = [
  ["backend", "string"],
  ["path", "string"],
  ["host", "string"],
  ["port", "string"],
  ["fd", "string"],
  ["localaddr", "string"],
  ["localport", "string"],
  ["to", "number"],
  ["ipv4", "bool"],
  ["ipv6", "bool"],
  ["wait", "bool"],
  ["server", "bool"],
  ["delay", "bool"],
  ["nodelay", "bool"],
  ["reconnect", "number"],
  ["telnet", "bool"],
  ["tn3270", "bool"],
  ["tls-creds", "string"],
  ["tls-authz", "string"],
  ["websocket", "bool"],
  ["width", "number"],
  ["height", "number"],
  ["cols", "number"],
  ["rows", "number"],
  ["mux", "bool"],
  ["signal", "bool"],
  ["name", "string"],
  ["debug", "number"],
  ["size", "size"],
  ["chardev", "string"],
  ["append", "bool"],
  ["logfile", "string"],
  ["logappend", "bool"],
  ["mouse", "bool"],
  ["clipboard", "bool"],
  ["tight", "bool"],
  ["abstract", "bool"],
].map(([name, type]) => ({ name, type: type as OptDesc["type"] }));

/** Chardev backends we implement (QEMU has more: vc, udp, serial, parallel, ringbuf, ...). */
export const CHARDEV_BACKENDS = ["file", "null", "pipe", "pty", "socket", "stdio"];

export const MEMORY_OPTS: readonly OptDesc[] = [
  { name: "size", type: "size" },
  { name: "slots", type: "number" },
  { name: "maxmem", type: "size" },
];
export const NAME_OPTS: readonly OptDesc[] = [
  {
    name: "guest",
    type: "string",
    help:
      "Sets the name of the guest.\nThis name will be displayed in the SDL window caption.\nThe name will also be used for the VNC server",
  },
  { name: "process", type: "string", help: "Sets the name of the QEMU process, as shown in top etc" },
  {
    name: "debug-threads",
    type: "bool",
    help:
      "When enabled, name the individual threads; defaults off.\nNOTE: The thread names are for debugging and not a\nstable API.",
  },
];
export const RTC_OPTS: readonly OptDesc[] = [
  { name: "base", type: "string" },
  { name: "clock", type: "string" },
  { name: "driftfix", type: "string" },
];
export const ICOUNT_OPTS: readonly OptDesc[] = [
  { name: "shift", type: "string" },
  { name: "align", type: "bool" },
  { name: "sleep", type: "bool" },
  { name: "rr", type: "string" },
  { name: "rrfile", type: "string" },
  { name: "rrsnapshot", type: "string" },
];
export const MON_OPTS: readonly OptDesc[] = [
  { name: "mode", type: "string" },
  { name: "chardev", type: "string" },
  { name: "pretty", type: "bool" },
];
export const SMP_KEYS = ["cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus"];
export const BOOT_KEYS = ["order", "once", "menu", "splash", "splash-time", "reboot-timeout", "strict"];

/** State gathered by the option loop, turned into a VmConfig afterwards (as vl.c's globals are). */
export interface Pending {
  cfg: VmConfig;
  machine: Map<string, string>;
  smp: Map<string, string>;
  memory: OptPair[];
  accel: Located<OptPair[]>[];
  cpu?: string;
  chardevs: Located<OptPair[]>[];
  chardevIds: Set<string>;
  serials: Located<string>[];
  monitors: Located<{ spec: string; mode: "readline" | "control"; pretty: boolean }>[];
  monOpts: Located<OptPair[]>[];
  qtest?: string;
  qtestLog?: string;
  devices: Located<OptPair[]>[];
  drives: Located<OptPair[]>[];
  driveIds: Set<string>;
  netdevs: Located<OptPair[]>[];
  netdevIds: Set<string>;
  nics: Located<OptPair[]>[];
  rtc: OptPair[];
  icount?: Located<OptPair[]>;
  logMask?: string;
  /** -snapshot: every drive gets snapshot=on. */
  snapshot: boolean;
  help?: CliAction;
}

/** Last value of a key in QemuOpts pairs. */
export function last(pairs: readonly OptPair[], key: string): string | undefined {
  let v: string | undefined;
  for (const x of pairs) if (x.key === key) v = x.value;
  return v;
}
