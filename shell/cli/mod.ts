/**
 * QEMU 7.2's command line for `qemu-system-x86_64 -M microvm`, parsed into a `VmConfig`.
 * Follows softmmu/vl.c: options are looked up by name (`-foo` or `--foo`), errors raised while an
 * option is handled carry its location (`-m 12q: ...`), errors raised after the option loop (machine
 * properties, -smp topology, accelerator names, -rtc) carry none, and deferred objects (-chardev,
 * -device, -drive, -netdev, -serial, -icount) get back the location they were written at.
 * @module
 */
import { defaultVmConfig, type DeviceRegistry, MACHINE_TYPE, type VmConfig } from "../../core/config.ts";
import {
  checkId,
  CliError,
  formatOptsHelp,
  isHelpOption,
  type OptPair,
  type ParsedOpts,
  parseKeyval,
  parseQemuOpts,
  validateOpts,
  withLocation,
} from "../options.ts";
import {
  BOOT_KEYS,
  CHARDEV_BACKENDS,
  CHARDEV_OPTS,
  type CliAction,
  ICOUNT_OPTS,
  MEMORY_OPTS,
  MON_OPTS,
  NAME_OPTS,
  type Pending,
  RTC_OPTS,
  SMP_KEYS,
} from "./common.ts";
import { cpuHelp, deviceHelp, deviceListHelp, helpText, logUsage, machineHelp, versionText } from "./help.ts";
import { applyAccel, applyCpu, applyLogMask, applyMachine, applyRtc } from "./machine.ts";
import { applyDevices, applyDrives, applyNetdevs, buildCharBackends } from "./backends.ts";
import { parseFsdevOption, parseVirtfsOption } from "./fsdev.ts";
import { gdbChardevConfig } from "../gdbstub/device.ts";

export type { CliAction } from "./common.ts";
export { CPU_MODELS, helpText, MICROVM_MACHINE_PROPS, VERSION, versionText } from "./help.ts";

/** Outcome of parsing: a VM to build, or text to print. */
export type CliResult = VmConfig | CliAction;

/** Options of `parseCommandLine` beyond argv. */
export interface CliOptions {
  /** Drivers the board can build; when given, -device is checked against it and `-device help` lists it. */
  devices?: DeviceRegistry;
}

/** True when the result is text to print rather than a VM. */
export function isCliAction(r: CliResult): r is CliAction {
  return "action" in r;
}

/** The lines main prints for a CliError/UserError: `<prog>: <message>` then QEMU's hint lines, if any. */
export function formatCliError(prog: string, err: Error): string {
  const hint = err instanceof CliError ? err.hint : "";
  return `${prog}: ${err.message}\n${hint}`;
}

/** Options that take an argument / take none, as QEMU's qemu-options.hx defines them (the ones we accept). */
const OPTIONS_WITH_ARG = new Set((
  "machine M accel cpu smp m kernel initrd append serial chardev device drive global netdev " +
  "nic monitor qmp qmp-pretty mon qtest qtest-log name rtc d D plugin icount pidfile trace " +
  "bios L k vga boot display uuid gdb fsdev virtfs incoming"
).split(" "));
const OPTIONS_NO_ARG = new Set((
  "enable-kvm nodefaults no-user-config nographic no-reboot no-shutdown S version h help " +
  "daemonize usb snapshot no-acpi s"
).split(" "));
/** QEMU options we recognise (so arguments are consumed correctly) but refuse. */
const UNSUPPORTED_WITH_ARG = new Set((
  "hda hdb hdc hdd cdrom fda fdb mtdblock sd pflash blockdev snapshot-file numa object " +
  "usbdevice parallel debugcon vnc spice loadvm readconfig set option-rom " +
  "audiodev audio tpmdev net mem-path add-fd sandbox smbios acpitable fw_cfg " +
  "watchdog-action action overcommit compat msg seed dfilter semihosting-config g rotate " +
  "echr prom-env runas chroot dump-vmstate iscsi"
).split(" "));
const UNSUPPORTED_NO_ARG = new Set((
  "singlestep mem-prealloc full-screen portrait no-fd-bootchk no-hpet win2k-hack " +
  "semihosting old-param only-migratable preconfig enable-sync-profile audio-help no-quit " +
  "alt-grab ctrl-grab xen-attach xen-domid-restrict"
).split(" "));

/**
 * Parse a QEMU-style command line (argv without the program name) into a VmConfig, or into text to print
 * for -h/-version/`help` queries. Throws CliError (a UserError) whose message is QEMU 7.2's error line
 * without the `<prog>: ` prefix; print it with `formatCliError`.
 * @example
 * ```ts
 * const r = parseCommandLine(["-M", "microvm", "-m", "512m", "-kernel", "vmlinux"], "qemu-system-x86_64");
 * if (!isCliAction(r)) console.log(r.memory.sizeBytes); // 536870912
 * ```
 */
export function parseCommandLine(argv: readonly string[], prog: string, opts: CliOptions = {}): CliResult {
  const p: Pending = {
    cfg: defaultVmConfig(),
    machine: new Map(),
    smp: new Map(),
    memory: [],
    accel: [],
    chardevs: [],
    chardevIds: new Set(),
    serials: [],
    monitors: [],
    monOpts: [],
    devices: [],
    drives: [],
    driveIds: new Set(),
    netdevs: [],
    netdevIds: new Set(),
    nics: [],
    rtc: [],
    snapshot: false,
  };
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i];
    if (!arg.startsWith("-")) {
      // vl.c: a bare argument is a disk image for IDE hd0, which microvm cannot attach.
      throw new CliError(`${arg}: machine type does not support if=ide,bus=0,unit=0`);
    }
    const name = arg.startsWith("--") ? arg.slice(2) : arg.slice(1);
    const hasArg = OPTIONS_WITH_ARG.has(name) || UNSUPPORTED_WITH_ARG.has(name);
    if (!hasArg && !OPTIONS_NO_ARG.has(name) && !UNSUPPORTED_NO_ARG.has(name)) {
      throw new CliError(`${arg}: invalid option`);
    }
    let optarg = "";
    let loc = arg;
    if (hasArg) {
      if (i + 1 >= argv.length) throw new CliError(`${arg}: requires an argument`);
      optarg = argv[i + 1];
      loc = `${arg} ${optarg}`;
      i += 2;
    } else {
      i += 1;
    }
    try {
      if (UNSUPPORTED_WITH_ARG.has(name) || UNSUPPORTED_NO_ARG.has(name)) {
        throw new CliError("Option not supported in this build");
      }
      handleOption(p, name, optarg, loc, prog, opts);
    } catch (e) {
      throw withLocation(loc, e);
    }
    if (p.help) return p.help;
  }
  return finish(p, opts);
}

/** The per-option switch of vl.c's second pass. */
function handleOption(
  p: Pending,
  name: string,
  arg: string,
  loc: string,
  prog: string,
  opts: CliOptions,
): void {
  const cfg = p.cfg;
  switch (name) {
    case "h":
    case "help":
      p.help = { action: "help", text: helpText(prog) };
      return;
    case "version":
      p.help = { action: "version", text: versionText() };
      return;
    case "M":
    case "machine": {
      const kv = parseKeyval(arg, "type", ["legacy"]);
      for (const [k, v] of kv.pairs) {
        if (k.startsWith("smp.")) p.smp.set(k.slice(4), v);
        else p.machine.set(k, v);
      }
      if (kv.help) p.help = { action: "help", text: machineHelp(p.machine.get("type")) };
      return;
    }
    case "enable-kvm":
      p.machine.set("accel", "kvm");
      return;
    case "accel": {
      const o = noisy(p, loc, arg, "accel");
      const accel = o.pairs.find((x) => x.key === "accel")?.value;
      if (accel === undefined || isHelpOption(accel)) {
        p.help = { action: "help", text: "Accelerators supported in QEMU binary:\ntcg\nkvm\n" };
        return;
      }
      p.accel.push({ loc, value: o.pairs });
      return;
    }
    case "cpu":
      if (isHelpOption(arg)) {
        p.help = { action: "help", text: cpuHelp() };
        return;
      }
      p.cpu = arg;
      return;
    case "smp": {
      const kv = parseKeyval(arg, "cpus");
      if (kv.help) {
        p.help = {
          action: "help",
          text: formatOptsHelp("smp-opts", SMP_KEYS.map((n) => ({ name: n, type: "number" as const }))),
        };
        return;
      }
      for (const [k, v] of kv.pairs) p.smp.set(k, v);
      return;
    }
    case "m": {
      const o = noisy(p, loc, arg, "size");
      if (o.help) {
        p.help = { action: "help", text: formatOptsHelp("memory", MEMORY_OPTS) };
        return;
      }
      const id = o.pairs.find((x) => x.key === "id");
      if (id) throw new CliError("Invalid parameter 'id'");
      validateOpts(o.pairs, MEMORY_OPTS);
      p.memory.push(...o.pairs);
      return;
    }
    case "kernel":
      p.machine.set("kernel", arg);
      return;
    case "initrd":
      p.machine.set("initrd", arg);
      return;
    case "append":
      p.machine.set("append", arg);
      return;
    case "bios":
      p.machine.set("firmware", arg);
      return;
    case "boot": {
      const kv = parseKeyval(arg, "order");
      if (kv.help) {
        p.help = {
          action: "help",
          text: formatOptsHelp("boot-opts", BOOT_KEYS.map((n) => ({ name: n, type: "string" as const }))),
        };
        return;
      }
      for (const [k, v] of kv.pairs) p.machine.set(`boot.${k}`, v);
      return;
    }
    case "serial":
      p.serials.push({ loc, value: arg });
      return;
    case "chardev": {
      const o = noisy(p, loc, arg, "backend");
      const backend = o.pairs.find((x) => x.key === "backend")?.value;
      if (o.help || (backend !== undefined && isHelpOption(backend))) {
        p.help = { action: "help", text: `Available chardev backend types: ${CHARDEV_BACKENDS.join(" ")}\n` };
        return;
      }
      registerId(p.chardevIds, o.pairs, "chardev");
      validateOpts(o.pairs, CHARDEV_OPTS);
      p.chardevs.push({ loc, value: o.pairs });
      return;
    }
    case "device": {
      if (arg.startsWith("{")) throw new CliError("JSON -device syntax is not supported");
      const o = noisy(p, loc, arg, "driver");
      const driver = o.pairs.find((x) => x.key === "driver")?.value;
      if (driver !== undefined && isHelpOption(driver)) {
        p.help = { action: "help", text: deviceListHelp(opts.devices ?? []) };
        return;
      }
      if (o.help && driver !== undefined) {
        p.help = { action: "help", text: deviceHelp(driver, opts.devices) };
        return;
      }
      const id = o.pairs.find((x) => x.key === "id")?.value;
      if (id !== undefined) {
        checkId(id);
        if (p.devices.some((d) => d.value.find((x) => x.key === "id")?.value === id)) {
          throw new CliError(`Duplicate ID '${id}' for device`);
        }
      }
      p.devices.push({ loc, value: o.pairs });
      return;
    }
    case "fsdev":
      parseFsdevOption(p, arg);
      return;
    case "virtfs":
      parseVirtfsOption(p, arg, loc);
      return;
    case "drive": {
      const o = noisy(p, loc, arg);
      registerId(p.driveIds, o.pairs, "drive");
      p.drives.push({ loc, value: o.pairs });
      return;
    }
    case "global":
      cfg.globals.push(parseGlobal(arg));
      return;
    case "netdev": {
      const o = noisy(p, loc, arg, "type");
      const type = o.pairs.find((x) => x.key === "type")?.value;
      if (type !== undefined && isHelpOption(type)) {
        p.help = { action: "help", text: "Available netdev backend types:\nsocket\nuser\ntap\n" };
        return;
      }
      registerId(p.netdevIds, o.pairs, "netdev");
      p.netdevs.push({ loc, value: o.pairs });
      return;
    }
    case "nic": {
      const o = noisy(p, loc, arg, "type");
      p.nics.push({ loc, value: o.pairs });
      return;
    }
    case "monitor":
      if (!arg.startsWith("none")) {
        p.monitors.push({ loc, value: { spec: arg, mode: "readline", pretty: false } });
      } else p.monitors.push({ loc, value: { spec: "none", mode: "readline", pretty: false } });
      return;
    case "qmp":
    case "qmp-pretty":
      p.monitors.push({ loc, value: { spec: arg, mode: "control", pretty: name === "qmp-pretty" } });
      return;
    case "mon": {
      const o = noisy(p, loc, arg, "chardev");
      validateOpts(o.pairs, MON_OPTS);
      p.monOpts.push({ loc, value: o.pairs });
      return;
    }
    case "qtest":
      p.qtest = arg;
      return;
    case "qtest-log":
      p.qtestLog = arg;
      return;
    case "uuid":
      // qemu_uuid_parse: 8-4-4-4-12 hex digits.
      if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(arg)) {
        throw new CliError("failed to parse UUID string: wrong format");
      }
      cfg.uuid = arg.toLowerCase();
      return;
    case "name": {
      const o = noisy(p, loc, arg, "guest");
      if (o.help) {
        p.help = { action: "help", text: formatOptsHelp("name", NAME_OPTS) };
        return;
      }
      const v = validateOpts(o.pairs, NAME_OPTS);
      if (v.has("guest")) cfg.name = v.get("guest") as string;
      if (v.has("debug-threads")) cfg.debugThreads = v.get("debug-threads") as boolean;
      return;
    }
    case "rtc": {
      const o = noisy(p, loc, arg);
      if (o.help) {
        p.help = { action: "help", text: formatOptsHelp("rtc", RTC_OPTS) };
        return;
      }
      validateOpts(o.pairs, RTC_OPTS);
      p.rtc.push(...o.pairs);
      return;
    }
    case "d":
      if (arg.split(",").some(isHelpOption)) {
        p.help = { action: "help", text: logUsage() };
        return;
      }
      p.logMask = arg;
      return;
    case "D":
      cfg.log.file = arg;
      return;
    case "plugin": {
      const o = noisy(p, loc, arg, "file");
      const file = o.pairs.find((x) => x.key === "file");
      if (!file) throw new CliError("Parameter 'file' is missing");
      const args = o.pairs.filter((x) => x.key !== "file").map((x) => `${x.key}=${x.value}`);
      cfg.plugins.push({ path: file.value, args });
      return;
    }
    case "icount": {
      const o = noisy(p, loc, arg, "shift");
      validateOpts(o.pairs, ICOUNT_OPTS);
      p.icount = { loc, value: [...(p.icount?.value ?? []), ...o.pairs] };
      return;
    }
    case "incoming":
      cfg.incoming = arg;
      return;
    case "pidfile":
      cfg.pidfile = arg;
      return;
    case "daemonize":
    case "usb":
      throw new CliError("Option not supported in this build");
    case "trace": {
      const o = noisy(p, loc, arg, "enable");
      for (const x of o.pairs) {
        if (x.key !== "enable" && x.key !== "events" && x.key !== "file") {
          throw new CliError(`Invalid parameter '${x.key}'`);
        }
      }
      cfg.trace.push(arg);
      cfg.warnings.push(`${loc}: warning: trace events are not supported; -trace ignored`);
      return;
    }
    case "L":
      cfg.dataDirs.push(arg);
      return;
    case "k":
      cfg.keyboardLayout = arg;
      return;
    case "vga":
      if (arg !== "none") throw new CliError(`${arg} not available`);
      return;
    case "display": {
      const type = arg.split(",")[0];
      if (type === "none") {
        cfg.display = "none";
        return;
      }
      if (isHelpOption(type)) {
        p.help = { action: "help", text: "Available display backend types:\nnone\n" };
        return;
      }
      throw new CliError(`Display '${type}' is not available.`);
    }
    case "nodefaults":
      cfg.noDefaults = true;
      return;
    case "no-user-config":
      cfg.noUserConfig = true;
      return;
    case "nographic":
      p.machine.set("graphics", "off");
      cfg.nographic = true;
      cfg.display = "none";
      return;
    case "no-reboot":
      cfg.noReboot = true;
      return;
    case "no-shutdown":
      cfg.noShutdown = true;
      return;
    case "s":
    case "gdb": {
      const dev = name === "s" ? "tcp::1234" : arg;
      // Checked now, opened at start-up (shell/gdbstub): QEMU's chardev compat syntax.
      if (dev !== "none") gdbChardevConfig(dev);
      (cfg.gdb ??= []).push(dev);
      return;
    }
    case "S":
      cfg.startPaused = true;
      return;
    case "snapshot":
      p.snapshot = true;
      return;
    case "no-acpi":
      p.machine.set("acpi", "off");
      return;
  }
}

/**
 * qemu_opts_parse_noisily: parse, and warn for each short-form boolean (`server`, `nowait`) as QEMU 7.2
 * does (opts_do_parse with warn_on_flag).
 */
function noisy(p: Pending, loc: string, arg: string, implied?: string): ParsedOpts {
  const o = parseQemuOpts(arg, implied);
  for (const x of o.pairs) {
    if (!x.flag) continue;
    const prefix = x.value === "off" ? "no" : "";
    const advice = x.key === "delay"
      ? `Please use nodelay=${prefix ? "on" : "off"} instead`
      : `Please use ${x.key}=${x.value} instead`;
    p.cfg.warnings.push(
      `${loc}: warning: short-form boolean option '${prefix}${x.key}' deprecated\n${advice}`,
    );
  }
  return o;
}

/** Check and record the id of a QemuOpts list that refuses duplicates (qemu_opts_create). */
function registerId(ids: Set<string>, pairs: readonly OptPair[], list: string): void {
  let id: string | undefined;
  for (const x of pairs) if (x.key === "id") id = x.value;
  if (id === undefined) return;
  checkId(id);
  if (ids.has(id)) throw new CliError(`Duplicate ID '${id}' for ${list}`);
  ids.add(id);
}

/** -global DRIVER.PROP=VALUE or driver=,property=,value= (qemu_global_option). */
function parseGlobal(arg: string): { driver: string; property: string; value: string } {
  const m = /^([^.=]{1,63})\.([^=]{1,63})=/.exec(arg);
  if (m) return { driver: m[1], property: m[2], value: arg.slice(m[0].length) };
  const o = parseQemuOpts(arg);
  const v = validateOpts(o.pairs, [
    { name: "driver", type: "string" },
    { name: "property", type: "string" },
    { name: "value", type: "string" },
  ]);
  const driver = v.get("driver") as string | undefined;
  const property = v.get("property") as string | undefined;
  const value = v.get("value") as string | undefined;
  if (driver === undefined || property === undefined || value === undefined) {
    throw new CliError("options 'driver', 'property', and 'value' are required");
  }
  return { driver, property, value };
}

/** After the option loop: vl.c's qemu_validate_options … qemu_create_cli_devices, in that order. */
function finish(p: Pending, opts: CliOptions): VmConfig {
  const cfg = p.cfg;
  // qemu_validate_options
  if (!p.machine.has("kernel")) {
    if (p.machine.has("append")) throw new CliError("-append only allowed with -kernel option");
    if (p.machine.has("initrd")) throw new CliError("-initrd only allowed with -kernel option");
  }
  // qemu_process_early_options: -d
  if (p.logMask !== undefined) applyLogMask(cfg, p.logMask);
  // configure_rtc
  applyRtc(cfg, p.rtc);
  // qemu_create_machine → select_machine
  const type = p.machine.get("type") ?? MACHINE_TYPE;
  if (type !== MACHINE_TYPE) {
    throw new CliError("unsupported machine type", "Use -machine help to list supported machines\n");
  }
  // qemu_create_default_devices, then chardevs (qemu_create_early_backends)
  buildCharBackends(p);
  // qemu_apply_legacy_machine_options + qemu_apply_machine_options (no location)
  applyMachine(p);
  // configure_accelerators
  applyAccel(p);
  // parse_cpu_option
  applyCpu(p);
  // net_init_clients, then drives (drive_new) and devices (qdev_device_add)
  applyNetdevs(p);
  applyDrives(p);
  applyDevices(p, opts.devices);
  return cfg;
}
