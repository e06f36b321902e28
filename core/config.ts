/**
 * The typed machine configuration that the command line (shell/cli/) produces and the board consumes.
 * Plain data only: every QEMU option that reaches the board is here, already validated for syntax,
 * with QEMU 7.2's defaults filled in. File existence and host resources are checked later by whoever
 * opens them (loaders, backends), never here.
 * @module
 */
import type { PropDef } from "./types.ts";

/** QEMU's OnOffAuto property type. */
export type OnOffAuto = "on" | "off" | "auto";

/** Machine properties of `-M microvm,...` (QEMU 7.2 hw/i386/microvm.c, x86.c, hw/core/machine.c). */
export interface MachineConfig {
  /** Machine type name; only "microvm" exists. */
  type: "microvm";
  /** microvm.x-option-roms: load option ROMs (default on). */
  xOptionRoms: boolean;
  /** x86-machine.pit: i8254 PIT (default auto = present). */
  pit: OnOffAuto;
  /** x86-machine.pic: i8259 PIC (default auto = present). */
  pic: OnOffAuto;
  /** microvm.rtc: MC146818 RTC (default auto = present). */
  rtc: OnOffAuto;
  /** microvm.isa-serial: ISA 16550 at 0x3f8 (default on). */
  isaSerial: boolean;
  /** microvm.auto-kernel-cmdline: append virtio_mmio.device= entries to the kernel command line (default on). */
  autoKernelCmdline: boolean;
  /** x86-machine.acpi (default auto). */
  acpi: OnOffAuto;
  /** x86-machine.smm (default auto; the board may refuse "on"). */
  smm: OnOffAuto;
  /** microvm.pcie (default auto = off on microvm without a PCIe host). */
  pcie: OnOffAuto;
  /** microvm.ioapic2 (default auto). */
  ioapic2: OnOffAuto;
  /** machine.graphics: false with -nographic (default on; no display device exists either way). */
  graphics: boolean;
  /** machine.dump-guest-core (default on). */
  dumpGuestCore: boolean;
  /** machine.mem-merge (default on). */
  memMerge: boolean;
  /**
   * `legacy` from the 2019 microvm cover letter (`-M microvm,legacy`): the ISA serial/PIC/PIT/RTC mode.
   * QEMU 7.2 has no such property (those devices are on by default); kept as a flag the board may honour.
   */
  legacy: boolean;
  /** The -M/-machine properties exactly as written, in order (after `accel`/`kernel-irqchip` sugar was removed). */
  raw: [string, string][];
}

/** One accelerator candidate. `accel` is tried in order; the first that initialises wins (QEMU's -accel list). */
export interface AccelConfig {
  name: "kvm" | "tcg" | "qtest";
  /** kvm-accel.kernel-irqchip: on | off | split (microvm default: split). */
  kernelIrqchip?: "on" | "off" | "split";
  /** tcg-accel.thread: single | multi. */
  thread?: "single" | "multi";
  /** tcg-accel.jit (our extension): false interprets every instruction (default: JIT on). */
  jit?: boolean;
  /** tcg-accel.tb-size in MiB. */
  tbSize?: number;
  /** All properties as written (besides the name). */
  props: Record<string, string>;
}

/** One `+feat`, `-feat` or `feat=on|off` of -cpu. */
export interface CpuFeature {
  name: string;
  on: boolean;
}

/** -cpu MODEL[,features]. */
export interface CpuConfig {
  /** "host", "max", "qemu64", ... (default "qemu64", QEMU's TARGET_DEFAULT_CPU_TYPE for x86-64). */
  model: string;
  /** Feature switches in command-line order (later wins). */
  features: CpuFeature[];
  /** Non-boolean properties (e.g. `tsc-frequency=`, `level=`), as written. */
  props: Record<string, string>;
}

/** -smp after QEMU's topology computation (hw/core/machine-smp.c, prefer cores since 6.2). */
export interface SmpConfig {
  cpus: number;
  maxCpus: number;
  sockets: number;
  dies: number;
  cores: number;
  threads: number;
}

/** -m after QEMU's fix-ups (suffix-less values are MiB; size rounded up to 8 KiB). */
export interface MemoryConfig {
  /** Guest RAM in bytes (default 128 MiB). */
  sizeBytes: number;
  /** Hotplug slots (0 = none; microvm has no memory hotplug). */
  slots: number;
  /** maxmem in bytes (equals sizeBytes when not given). */
  maxBytes: number;
}

/** Host side of a chardev (QEMU ChardevBackend kinds we support). */
export type ChardevBackendConfig =
  | { kind: "stdio"; signal: boolean }
  | { kind: "null" }
  | { kind: "pty" }
  | { kind: "file"; path: string; append: boolean }
  | { kind: "pipe"; path: string }
  | {
    kind: "socket";
    /** Unix socket path, or undefined for TCP. */
    path?: string;
    host?: string;
    port?: string;
    server: boolean;
    wait: boolean;
    nodelay: boolean;
    telnet: boolean;
    reconnect: number;
  };

/** -chardev BACKEND,id=ID,... (or a chardev implied by -serial/-monitor/-qmp/-qtest). */
export interface ChardevConfig {
  id: string;
  backend: ChardevBackendConfig;
  /** mux=on: several front ends (serial + monitor) share it, switched with C-a c. */
  mux: boolean;
  logfile?: string;
  logappend: boolean;
  /** True when made by -serial/-monitor/-qmp/-qtest sugar rather than -chardev. */
  implicit: boolean;
}

/** One -serial: the chardev id it connects to, or null for `-serial none`. Index = position (ttyS0, ttyS1...). */
export interface SerialConfig {
  chardev: string | null;
}

/** A monitor (-monitor: readline/HMP; -qmp / -qmp-pretty: control/QMP) on a chardev. */
export interface MonitorConfig {
  mode: "readline" | "control";
  chardev: string;
  pretty: boolean;
}

/** -device DRIVER,prop=value,... */
export interface DeviceConfig {
  driver: string;
  id?: string;
  /** Properties as written, in order (driver and id removed). Type checks against the registry were done. */
  props: Record<string, string>;
}

/** -drive ... (only what a virtio-mmio block device can use). */
export interface DriveConfig {
  id: string;
  file: string;
  /** Image format; undefined means "probe" (the block layer treats unknown as raw with a warning, as QEMU does). */
  format?: "raw" | "qcow2";
  /** if=none: attach with -device virtio-blk-device,drive=ID; if=virtio: the board adds a virtio-blk-device. */
  interface: "none" | "virtio";
  readOnly: boolean;
  snapshot: boolean;
  /** cache=: writeback (default) | none | writethrough | directsync | unsafe, decomposed as QEMU does. */
  cache: { writeback: boolean; direct: boolean; noFlush: boolean };
  aio: "threads" | "native" | "io_uring";
  discard: "ignore" | "unmap";
  detectZeroes: "off" | "on" | "unmap";
  serial?: string;
  /** All options as written (besides id), for info block. */
  props: Record<string, string>;
}

/** -netdev TYPE,id=ID,... (tap, socket, user); -nic is desugared into a netdev plus a device. */
export interface NetdevConfig {
  id: string;
  type: "tap" | "socket" | "user";
  /** Type-specific options as written (ifname, script, downscript, fd, vhost, listen, connect, ...). */
  props: Record<string, string>;
  /** Repeatable options in order (user: hostfwd, guestfwd, dnssearch); `props` holds the last of each. */
  lists?: Record<string, string[]>;
  /** Where it was written ("-netdev user,id=n0,…"): prefixes errors raised when it opens, as QEMU does. */
  loc?: string;
}

/** -fsdev local,id=ID,path=DIR,security_model=... (or the fsdev half of -virtfs). */
export interface FsdevConfig {
  id: string;
  /** Only `local` exists here (QEMU also has `proxy` and `synth`). */
  driver: "local";
  path: string;
  /** passthrough | mapped-xattr | mapped-file | none (`mapped` is QEMU's alias of mapped-xattr). */
  securityModel: "passthrough" | "mapped-xattr" | "mapped-file" | "none";
  readOnly: boolean;
}

/** -global DRIVER.PROP=VALUE. */
export interface GlobalConfig {
  driver: string;
  property: string;
  value: string;
}

/** -rtc base=,clock=,driftfix= */
export interface RtcConfig {
  /** "utc", "localtime", or a start date (ISO "2006-06-17T16:01:21" or "2006-06-17", taken as UTC). */
  base: "utc" | "localtime" | { date: string; epochSeconds: number };
  clock: "host" | "rt" | "vm";
  driftfix: "none" | "slew";
}

/** -icount shift=N|auto,align=,sleep=,rr=,rrfile= */
export interface IcountConfig {
  shift: number | "auto";
  align: boolean;
  sleep: boolean;
  rr?: "off" | "record" | "replay";
  rrfile?: string;
}

/** -plugin FILE[,name=value...] */
export interface PluginConfig {
  path: string;
  /** "name=value" strings handed to the plugin's install function, as QEMU does. */
  args: string[];
}

/** -d / -D logging. */
export interface LogConfig {
  /** Enabled -d items (e.g. "guest_errors", "unimp", "int", "cpu_reset"). */
  items: string[];
  /** trace:PATTERN items. */
  tracePatterns: string[];
  /** -D FILE (undefined: stderr). */
  file?: string;
}

/** -boot order=,once=,menu=,strict=,reboot-timeout= (accepted for compatibility; microvm boots -kernel). */
export interface BootConfig {
  props: Record<string, string>;
}

/** Everything the board and the run loop need from the command line. */
export interface VmConfig {
  machine: MachineConfig;
  /** Candidates in order of preference (default: tcg). */
  accel: AccelConfig[];
  cpu: CpuConfig;
  smp: SmpConfig;
  memory: MemoryConfig;
  kernel?: string;
  initrd?: string;
  /** -append (empty when not given). */
  append: string;
  /** -bios (accepted, ignored: the board boots -kernel directly and has no firmware). */
  bios?: string;
  chardevs: ChardevConfig[];
  serials: SerialConfig[];
  monitors: MonitorConfig[];
  /** -qtest CHARDEV-SPEC: the chardev id of the qtest protocol, when given. */
  qtest?: { chardev: string; log?: string };
  devices: DeviceConfig[];
  drives: DriveConfig[];
  netdevs: NetdevConfig[];
  /** -fsdev / -virtfs exports (absent: none). */
  fsdevs?: FsdevConfig[];
  globals: GlobalConfig[];
  boot: BootConfig;
  /** -S: do not start the CPUs until `cont`. */
  startPaused: boolean;
  /** -uuid: the VM's UUID (canonical lower-case text; FW_CFG_UUID, query-uuid). Absent: all zeros. */
  uuid?: string;
  /** -gdb DEV / -s (= tcp::1234), in order; the last one is the gdb server (absent: none). */
  gdb?: string[];
  /** -no-reboot: a guest reset shuts the VM down (QEMU: -action reboot=shutdown). */
  noReboot: boolean;
  /** -no-shutdown: a guest shutdown pauses instead of exiting (QEMU: -action shutdown=pause). */
  noShutdown: boolean;
  /** -nodefaults: no default serial/monitor (and no default devices). */
  noDefaults: boolean;
  noUserConfig: boolean;
  /** -nographic or -display none. */
  nographic: boolean;
  display: "none" | "default";
  log: LogConfig;
  rtc: RtcConfig;
  name?: string;
  debugThreads: boolean;
  plugins: PluginConfig[];
  icount?: IcountConfig;
  pidfile?: string;
  /** -incoming URI or "defer": wait for a migration stream instead of booting (shell/migration/). */
  incoming?: string;
  /** -trace patterns (accepted; tracing prints a warning when unsupported). */
  trace: string[];
  /** -L directories (accepted, ignored: no firmware is loaded). */
  dataDirs: string[];
  /** -k LAYOUT (accepted; no keyboard device exists). */
  keyboardLayout?: string;
  /**
   * Warnings to print before running: print `${prog}: ${warning}`. Each is QEMU's line without the
   * program prefix (`<loc>: warning: ...`); a "\n" inside starts hint lines printed as they are.
   */
  warnings: string[];
}

/** One machine property for `-machine microvm,help` and validation (name, QOM type, description, default). */
export interface MachinePropDef {
  name: string;
  /** QOM type name as QEMU prints it: "bool", "OnOffAuto", "string", ... */
  type: string;
  help: string;
}

/** What the board tells the CLI about one -device driver (for `-device help`, `-device X,help` and checks). */
export interface DeviceInfo {
  /** QEMU type name: "virtio-blk-device". */
  driver: string;
  /** Short description for `-device help` (may be empty). */
  desc: string;
  /** Bus the device plugs into, as QEMU prints it ("virtio-bus"). */
  bus?: string;
  /** `-device help` category: "Storage", "Network", "Input", "Display", "Misc", ... (default "Misc"). */
  category?: string;
  /** QOM parent type for qom-list-types (default from the bus: virtio-bus → "virtio-device", ...). */
  qomParent?: string;
  props: PropDef[];
}

/** The device drivers the board can build (the CLI validates -device against it when given). */
export type DeviceRegistry = readonly DeviceInfo[];

/** The only machine type. */
export const MACHINE_TYPE = "microvm";

/** Maximum vCPUs of this implementation (QEMU's microvm allows 288; we model the MP table for 8). */
export const MAX_CPUS = 8;

/** QEMU's default RAM size for every machine (hw/core/machine.c: 128 MiB). */
export const DEFAULT_RAM_BYTES = 128 * 1024 * 1024;

/** A VmConfig with QEMU 7.2's defaults for `-M microvm` and no other options. */
export function defaultVmConfig(): VmConfig {
  return {
    machine: {
      type: "microvm",
      xOptionRoms: true,
      pit: "auto",
      pic: "auto",
      rtc: "auto",
      isaSerial: true,
      autoKernelCmdline: true,
      acpi: "auto",
      smm: "auto",
      pcie: "auto",
      ioapic2: "auto",
      graphics: true,
      dumpGuestCore: true,
      memMerge: true,
      legacy: false,
      raw: [],
    },
    accel: [{ name: "tcg", props: {} }],
    cpu: { model: "qemu64", features: [], props: {} },
    smp: { cpus: 1, maxCpus: 1, sockets: 1, dies: 1, cores: 1, threads: 1 },
    memory: { sizeBytes: DEFAULT_RAM_BYTES, slots: 0, maxBytes: DEFAULT_RAM_BYTES },
    append: "",
    chardevs: [],
    serials: [],
    monitors: [],
    devices: [],
    drives: [],
    netdevs: [],
    globals: [],
    boot: { props: {} },
    startPaused: false,
    noReboot: false,
    noShutdown: false,
    noDefaults: false,
    noUserConfig: false,
    nographic: false,
    display: "default",
    log: { items: [], tracePatterns: [] },
    rtc: { base: "utc", clock: "host", driftfix: "none" },
    debugThreads: false,
    plugins: [],
    trace: [],
    dataDirs: [],
    warnings: [],
  };
}
