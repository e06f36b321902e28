/**
 * Post-loop phases for the machine itself: -d, -rtc, machine properties, -m, -smp, accelerators,
 * -icount and -cpu (vl.c's qemu_apply_machine_options, configure_accelerators, parse_cpu_option).
 * Errors here carry no location, as in QEMU, except -accel and -icount, whose options QEMU restores.
 * @module
 */
import {
  type AccelConfig,
  type IcountConfig,
  MACHINE_TYPE,
  MAX_CPUS,
  type OnOffAuto,
  type VmConfig,
} from "../../core/config.ts";
import {
  CliError,
  type OptPair,
  parseBool,
  parseBoolWord,
  parseI64,
  parseOnOffAuto,
  parseSize,
  parseU64,
  validateOpts,
  withLocation,
} from "../options.ts";
import {
  BOOT_KEYS,
  ICOUNT_OPTS,
  last,
  type Located,
  MACHINE_QOM_TYPE,
  MEMORY_OPTS,
  type Pending,
  SMP_KEYS,
} from "./common.ts";
import { CPU_MODELS, LOG_ITEMS, logUsage } from "./help.ts";
import { cpuFlagError } from "../../core/cpu/cpuid.ts";

/** -d ITEMS → log config (qemu_str_to_log_mask). */
export function applyLogMask(cfg: VmConfig, mask: string): void {
  for (const item of mask.split(",")) {
    if (item === "all") {
      for (const [n] of LOG_ITEMS) if (!cfg.log.items.includes(n)) cfg.log.items.push(n);
    } else if (item.startsWith("trace:") && item.length > 6) {
      cfg.log.tracePatterns.push(item.slice(6));
    } else if (LOG_ITEMS.some(([n]) => n === item)) {
      if (!cfg.log.items.includes(item)) cfg.log.items.push(item);
    } else {
      // QEMU prints the usage to stdout and exits 1 without an error line; we name the culprit.
      throw new CliError(`-d ${mask}: Invalid log item '${item}'`, logUsage());
    }
  }
}

/** configure_rtc (softmmu/rtc.c). */
export function applyRtc(cfg: VmConfig, pairs: readonly OptPair[]): void {
  const base = last(pairs, "base");
  if (base !== undefined) {
    if (base === "utc" || base === "localtime") {
      cfg.rtc.base = base;
    } else {
      const m = /^([+-]?\d+)-([+-]?\d+)-([+-]?\d+)(?:T([+-]?\d+):([+-]?\d+):([+-]?\d+))?/.exec(base);
      const fail = () =>
        new CliError("invalid datetime format", "valid formats: '2006-06-17T16:01:21' or '2006-06-17'\n");
      if (!m) throw fail();
      const [y, mo, d, h, mi, s] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
      const ms = Date.UTC(y, mo - 1, d, h, mi, s);
      if (!Number.isFinite(ms)) throw fail();
      cfg.rtc.base = { date: base, epochSeconds: Math.floor(ms / 1000) };
    }
  }
  const clock = last(pairs, "clock");
  if (clock !== undefined) {
    if (clock !== "host" && clock !== "rt" && clock !== "vm") {
      throw new CliError(`invalid option value '${clock}'`);
    }
    cfg.rtc.clock = clock;
  }
  const driftfix = last(pairs, "driftfix");
  if (driftfix !== undefined) {
    if (driftfix !== "slew" && driftfix !== "none") throw new CliError(`invalid option value '${driftfix}'`);
    cfg.rtc.driftfix = driftfix;
  }
}

/** Machine properties, -m and -smp (qemu_apply_legacy_machine_options, qemu_apply_machine_options). */
export function applyMachine(p: Pending): void {
  const cfg = p.cfg;
  const m = cfg.machine;
  const bootProps: Record<string, string> = {};
  for (const [key, value] of p.machine) {
    if (key === "type") continue;
    const dash = key.replaceAll("_", "-"); // keyval_dashify
    if (dash !== "accel" && dash !== "kernel-irqchip") m.raw.push([dash, value]);
    if (dash.startsWith("boot.")) {
      const bk = dash.slice(5);
      if (!BOOT_KEYS.includes(bk)) throw new CliError(`Parameter 'boot.${bk}' is unexpected`);
      bootProps[bk] = value;
      continue;
    }
    if (dash.startsWith("memory.")) {
      const mk = dash.slice(7);
      const map: Record<string, string> = { size: "size", slots: "slots", "max-size": "maxmem" };
      if (!map[mk]) throw new CliError(`Parameter 'memory.${mk}' is unexpected`);
      p.memory.push({ key: map[mk], value, flag: false });
      continue;
    }
    switch (dash) {
      case "accel":
      case "kernel-irqchip":
        continue; // legacy sugar, consumed by applyAccel
      case "legacy":
        m.legacy = parseBool("legacy", value);
        continue;
      case "kernel":
        cfg.kernel = value;
        continue;
      case "initrd":
        cfg.initrd = value;
        continue;
      case "append":
        cfg.append = value;
        continue;
      case "firmware":
        cfg.bios = value;
        continue;
      case "x-option-roms":
        m.xOptionRoms = parseBool(dash, value);
        continue;
      case "isa-serial":
        m.isaSerial = parseBool(dash, value);
        continue;
      case "auto-kernel-cmdline":
        m.autoKernelCmdline = parseBool(dash, value);
        continue;
      case "graphics":
        m.graphics = parseBool(dash, value);
        continue;
      case "dump-guest-core":
        m.dumpGuestCore = parseBool(dash, value);
        continue;
      case "mem-merge":
        m.memMerge = parseBool(dash, value);
        continue;
      case "pit":
      case "pic":
      case "rtc":
      case "acpi":
      case "smm":
      case "pcie":
      case "ioapic2":
        (m as unknown as Record<string, OnOffAuto>)[dash] = parseOnOffAuto(dash, value);
        continue;
      case "smp":
      case "memory":
      case "boot":
        throw new CliError(`Invalid parameter type for '${dash}', expected: object`);
      default:
        throw new CliError(`Property '${MACHINE_QOM_TYPE}.${dash}' not found`);
    }
  }
  // BootConfiguration's member types (the range checks are fw_cfg's, at machine creation).
  for (const k of ["menu", "strict"]) if (bootProps[k] !== undefined) parseBool(`boot.${k}`, bootProps[k]);
  for (const k of ["splash-time", "reboot-timeout"]) {
    if (bootProps[k] !== undefined && !parseI64(bootProps[k]).ok) {
      throw new CliError(`Parameter 'boot.${k}' expects integer`);
    }
  }
  cfg.boot.props = bootProps;
  applyMemory(p);
  applySmp(p);
}

/** parse_memory_options + machine_set_mem. */
export function applyMemory(p: Pending): void {
  const cfg = p.cfg;
  const v = validateOpts(p.memory, MEMORY_OPTS);
  const sizeStr = last(p.memory, "size");
  let size = BigInt(cfg.memory.sizeBytes);
  if (sizeStr !== undefined && (v.get("size") as bigint) !== 0n) {
    // A suffix-less -m is MiB (vl.c "Fix up legacy suffix-less format").
    const r = parseSize(/[0-9]$/.test(sizeStr) ? sizeStr + "M" : sizeStr);
    if (!r.ok) throw new CliError(`Parameter 'memory.size' expects size`);
    size = r.value;
  }
  size = (size + 8191n) & ~8191n;
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new CliError("ram size too large");
  const hex = (x: bigint) => "0x" + x.toString(16);
  let max = size;
  const slots = v.get("slots") as bigint | undefined;
  const maxmem = v.get("maxmem") as bigint | undefined;
  if (maxmem !== undefined) {
    if (maxmem < size) {
      throw new CliError(
        `invalid value of maxmem: maximum memory size (${
          hex(maxmem)
        }) must be at least the initial memory size (${hex(size)})`,
      );
    }
    if (slots !== undefined && slots !== 0n && maxmem === size) {
      throw new CliError(
        `invalid value of maxmem: memory slots were specified but maximum memory size (${
          hex(maxmem)
        }) is equal to the initial memory size (${hex(size)})`,
      );
    }
    max = maxmem;
  } else if (slots !== undefined) {
    throw new CliError("slots specified but no max-size");
  }
  if (max > BigInt(Number.MAX_SAFE_INTEGER)) throw new CliError("ram size too large");
  cfg.memory = { sizeBytes: Number(size), slots: Number(slots ?? 0n), maxBytes: Number(max) };
}

/** machine_parse_smp_config (hw/core/machine-smp.c) for a machine without dies/clusters, preferring cores. */
export function applySmp(p: Pending): void {
  const vals: Record<string, number | undefined> = {};
  for (const [k, v] of p.smp) {
    if (!SMP_KEYS.includes(k)) throw new CliError(`Parameter 'smp.${k}' is unexpected`);
    const r = parseI64(v);
    if (!r.ok) throw new CliError(`Parameter 'smp.${k}' expects integer`);
    if (r.value < 0n || r.value > 0xffffffffn) throw new CliError(`Parameter 'smp.${k}' expects uint32_t`);
    vals[k] = Number(r.value);
  }
  if (Object.values(vals).some((x) => x === 0)) {
    p.cfg.warnings.push(
      "warning: Deprecated CPU topology (considered invalid): CPU topology parameters must be greater than zero",
    );
  }
  let cpus = vals.cpus ?? 0;
  let sockets = vals.sockets ?? 0;
  const dies = vals.dies ?? 0;
  const clusters = vals.clusters ?? 0;
  let cores = vals.cores ?? 0;
  let threads = vals.threads ?? 0;
  let maxcpus = vals.maxcpus ?? 0;
  if (dies > 1) throw new CliError("dies not supported by this machine's CPU topology");
  if (clusters > 1) throw new CliError("clusters not supported by this machine's CPU topology");
  if (cpus === 0 && maxcpus === 0) {
    sockets = sockets || 1;
    cores = cores || 1;
    threads = threads || 1;
  } else {
    maxcpus = maxcpus || cpus;
    if (cores === 0) {
      sockets = sockets || 1;
      threads = threads || 1;
      cores = Math.floor(maxcpus / (sockets * threads));
    } else if (sockets === 0) {
      threads = threads || 1;
      sockets = Math.floor(maxcpus / (cores * threads));
    }
    if (threads === 0) threads = Math.floor(maxcpus / (sockets * cores));
  }
  maxcpus = maxcpus || sockets * cores * threads;
  cpus = cpus || maxcpus;
  const topo = `sockets (${sockets}) * cores (${cores}) * threads (${threads})`;
  if (sockets * cores * threads !== maxcpus) {
    throw new CliError(
      `Invalid CPU topology: product of the hierarchy must match maxcpus: ${topo} != maxcpus (${maxcpus})`,
    );
  }
  if (maxcpus < cpus) {
    throw new CliError(
      `Invalid CPU topology: maxcpus must be equal to or greater than smp: ${topo} == maxcpus (${maxcpus}) < smp_cpus (${cpus})`,
    );
  }
  if (maxcpus > MAX_CPUS) {
    throw new CliError(
      `Invalid SMP CPUs ${maxcpus}. The max CPUs supported by machine '${MACHINE_TYPE}' is ${MAX_CPUS}`,
    );
  }
  p.cfg.smp = { cpus, maxCpus: maxcpus, sockets, dies: 1, cores, threads };
}

/** configure_accelerators: -accel list, or `-M accel=a:b` / -enable-kvm, plus -icount checks. */
export function applyAccel(p: Pending): void {
  const cfg = p.cfg;
  const machineAccel = p.machine.get("accel");
  const irqchip = p.machine.get("kernel-irqchip") ?? p.machine.get("kernel_irqchip");
  const list: Located<OptPair[]>[] = [];
  if (p.accel.length > 0) {
    if (machineAccel !== undefined) {
      throw new CliError('The -accel and "-machine accel=" options are incompatible');
    }
    for (const a of p.accel) {
      // Our extension: `-accel kvm:tcg` is a fallback list like `-M accel=kvm:tcg`.
      const name = last(a.value, "accel")!;
      for (const n of name.split(":")) {
        list.push({
          loc: a.loc,
          value: [...a.value.filter((x) => x.key !== "accel"), { key: "accel", value: n, flag: false }],
        });
      }
    }
  } else if (machineAccel !== undefined) {
    for (const n of machineAccel.split(":")) {
      list.push({ loc: "", value: [{ key: "accel", value: n, flag: false }] });
    }
  }
  const accels: AccelConfig[] = [];
  let invalid: string | undefined;
  for (const a of list) {
    const name = last(a.value, "accel")!;
    if (name !== "kvm" && name !== "tcg" && name !== "qtest") {
      invalid ??= name;
      continue;
    }
    const ac: AccelConfig = { name, props: {} };
    try {
      for (const x of a.value) {
        if (x.key === "accel") continue;
        ac.props[x.key] = x.value;
        applyAccelProp(ac, x.key, x.value);
      }
    } catch (e) {
      throw a.loc ? withLocation(a.loc, e) : e;
    }
    if (irqchip !== undefined && name === "kvm" && ac.kernelIrqchip === undefined) {
      applyAccelProp(ac, "kernel-irqchip", irqchip);
    }
    accels.push(ac);
  }
  if (invalid !== undefined) throw new CliError(`invalid accelerator ${invalid}`);
  if (accels.length > 0) cfg.accel = accels;
  else if (p.qtest !== undefined) cfg.accel = [{ name: "qtest", props: {} }];
  if (p.icount) {
    try {
      cfg.icount = parseIcount(p.icount.value);
    } catch (e) {
      throw withLocation(p.icount.loc, e);
    }
    if (cfg.accel.every((a) => a.name === "kvm")) {
      throw new CliError("-icount is not allowed with hardware virtualization");
    }
  }
}

/** One accelerator property (object_property_parse on kvm-accel / tcg-accel / qtest-accel). */
export function applyAccelProp(ac: AccelConfig, key: string, value: string): void {
  const qom = `${ac.name}-accel`;
  if (ac.name === "kvm") {
    if (key === "kernel-irqchip") {
      if (value === "split") ac.kernelIrqchip = "split";
      else {
        const b = parseBoolWord(value);
        if (b === null) throw new CliError(`Parameter 'kernel-irqchip' does not accept value '${value}'`);
        ac.kernelIrqchip = b ? "on" : "off";
      }
      return;
    }
    if (key === "kvm-shadow-mem" || key === "dirty-ring-size") {
      if (!parseI64(value).ok) throw new CliError(`Parameter '${key}' expects int64`);
      return;
    }
  } else if (ac.name === "tcg") {
    if (key === "thread") {
      if (value !== "single" && value !== "multi") throw new CliError(`Invalid 'thread' setting ${value}`);
      ac.thread = value;
      return;
    }
    if (key === "jit") {
      // Our extension: jit=off runs the reference interpreter only (core/cpu/jit.ts).
      ac.jit = parseBool(key, value);
      return;
    }
    if (key === "tb-size") {
      const r = parseU64(value);
      if (!r.ok) throw new CliError("Parameter 'tb-size' expects uint64");
      if (r.value > 0xffffffffn) throw new CliError("Parameter 'tb-size' expects uint32_t");
      ac.tbSize = Number(r.value);
      return;
    }
    if (key === "split-wx") {
      parseBool(key, value);
      return;
    }
  }
  throw new CliError(`Property '${qom}.${key}' not found`);
}

/** icount_configure (softmmu/icount.c). */
export function parseIcount(pairs: readonly OptPair[]): IcountConfig {
  const v = validateOpts(pairs, ICOUNT_OPTS);
  const shift = v.get("shift") as string | undefined;
  const sleep = (v.get("sleep") as boolean | undefined) ?? true;
  const align = (v.get("align") as boolean | undefined) ?? false;
  if (shift === undefined) {
    if (v.has("align")) throw new CliError("Please specify shift option when using align");
    throw new CliError("Parameter 'shift' is missing");
  }
  if (align && !sleep) throw new CliError("align=on and sleep=off are incompatible");
  let s: number | "auto";
  if (shift !== "auto") {
    const r = parseI64(shift);
    if (!r.ok || r.value < 0n || r.value > 10n) throw new CliError("icount: Invalid shift value");
    s = Number(r.value);
  } else {
    if (align) throw new CliError("shift=auto and align=on are incompatible");
    if (!sleep) throw new CliError("shift=auto and sleep=off are incompatible");
    s = "auto";
  }
  const ic: IcountConfig = { shift: s, align, sleep };
  const rr = v.get("rr") as string | undefined;
  if (rr !== undefined) {
    if (rr !== "off" && rr !== "record" && rr !== "replay") {
      throw new CliError(`Invalid icount rr option: ${rr}`);
    }
    ic.rr = rr;
  }
  const rrfile = v.get("rrfile") as string | undefined;
  if (rrfile !== undefined) ic.rrfile = rrfile;
  return ic;
}

/** parse_cpu_option: MODEL[,+feat|-feat|feat=on|feat|prop=value...]. */
export function applyCpu(p: Pending): void {
  if (p.cpu === undefined) return;
  const parts = p.cpu.split(",");
  const model = parts[0];
  if (!CPU_MODELS.some((c) => c.name === model)) throw new CliError(`unable to find CPU model '${model}'`);
  const cpu = p.cfg.cpu;
  cpu.model = model;
  for (const f of parts.slice(1)) {
    if (f === "") continue;
    if (f[0] === "+" || f[0] === "-") {
      cpu.features.push({ name: f.slice(1), on: f[0] === "+" });
      continue;
    }
    const eq = f.indexOf("=");
    if (eq < 0) {
      cpu.features.push({ name: f, on: true });
      continue;
    }
    const name = f.slice(0, eq);
    const value = f.slice(eq + 1);
    const b = parseBoolWord(value);
    if (b !== null) cpu.features.push({ name, on: b });
    else cpu.props[name] = value;
  }
  const bad = cpuFlagError(model, cpu.features);
  if (bad !== null) throw new CliError(bad);
}
