/**
 * The running VM as the monitors see it: `MachineView` implements `MachineIface` (shell/machine_iface.ts)
 * over the runner (shell/vm.ts) and the board (devices/microvm.ts).
 * @module
 */
import { type CpuRegisters, GPR_NAMES } from "../core/accel.ts";
import type { MigrationController } from "./migration/migrate.ts";
import type { DeviceRegistry } from "../core/config.ts";
import { formatIrqStats } from "../core/irq.ts";
import { UserError } from "../core/types.ts";
import { SlirpBackend } from "../core/host/slirp.ts";
import { formatInfoPic } from "../devices/i8259.ts";
import { MICROVM_DEVICES } from "../devices/microvm.ts";
import { findBalloon, hostDevQomProps } from "../devices/hostdev.ts";
import type {
  BalloonControl,
  BlockView,
  ChardevView,
  CpuView,
  IrqIntercept,
  MachineEvent,
  MachineIface,
  MonitorClock,
  QomObject,
  RunState,
  UsernetView,
} from "./machine_iface.ts";
import type { VmRunner } from "./vm.ts";

/** Version package string shown by `info version` and QMP. */
export const VERSION_PACKAGE = " (microvm.ts 0.1.0)";

function resetRegisters(): CpuRegisters {
  const seg = (sel: number, base: number, attrs: number) => ({ selector: sel, base, limit: 0xffff, attrs });
  return {
    gpr: Object.fromEntries(
      GPR_NAMES.map((k) => [k, 0n]).concat([["rip", 0xfff0n], ["rflags", 2n]]),
    ),
    seg: {
      es: seg(0, 0, 0x93),
      cs: seg(0xf000, 0xffff0000, 0x9b),
      ss: seg(0, 0, 0x93),
      ds: seg(0, 0, 0x93),
      fs: seg(0, 0, 0x93),
      gs: seg(0, 0, 0x93),
      ldt: seg(0, 0, 0x82),
      tr: seg(0, 0, 0x8b),
    },
    gdt: { base: 0, limit: 0xffff },
    idt: { base: 0, limit: 0xffff },
    cr: { cr0: 0x60000010n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n },
    efer: 0n,
    halted: false,
  };
}

/** MachineIface over a VmRunner. */
export class MachineView implements MachineIface {
  readonly #r: VmRunner;
  readonly #listeners = new Set<(ev: MachineEvent) => void>();
  readonly #irqIn = new Set<(line: number, level: boolean) => void>();
  readonly deviceTypes: DeviceRegistry = MICROVM_DEVICES;
  /** HMP `gdbserver` (set by shell/monitors.ts with the runner's gdb server). */
  gdbserver?: (device: string | undefined) => string;
  readonly clock: MonitorClock;

  constructor(runner: VmRunner) {
    this.#r = runner;
    const c = runner.clock;
    this.clock = {
      get mode() {
        return c.mode;
      },
      now: () => c.now(),
      step: (ns) => c.step(ns),
      set: (ns) => c.set(ns),
      nextDeadline: () => c.nextDeadline(),
    };
    runner.onEvent = (ev) => this.emit(ev);
    runner.machine.onGsi = (gsi: number, level: boolean) => {
      for (const cb of this.#irqIn) cb(gsi, level);
    };
  }

  /** Send an event to every subscriber (STOP, RESUME, RESET, SHUTDOWN). */
  emit(ev: MachineEvent): void {
    for (const l of this.#listeners) l(ev);
  }

  get name(): string | undefined {
    return this.#r.config.name;
  }
  get uuid(): string | undefined {
    return this.#r.config.uuid;
  }
  get versionPackage(): string {
    return VERSION_PACKAGE;
  }
  get accel(): "tcg" | "kvm" | "qtest" {
    return this.#r.accel?.name ?? "qtest";
  }
  get ramSize(): number {
    return this.#r.config.memory.sizeBytes;
  }
  get runState(): RunState {
    return this.#r.runState;
  }

  stop(): void {
    this.#r.stop();
  }
  cont(): void {
    const s = this.#r.runState;
    if (s === "shutdown" || s === "internal-error") {
      throw new UserError("Resetting the Virtual Machine is required");
    }
    this.#r.cont();
  }
  systemReset(): void {
    this.#r.systemReset("host-qmp-system-reset");
  }
  quit(): void {
    this.#r.quit(0, "host-qmp-quit");
  }
  on(cb: (ev: MachineEvent) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  cpus(): CpuView[] {
    const n = this.#r.config.smp.cpus;
    const accel = this.#r.accel;
    const out: CpuView[] = [];
    for (let i = 0; i < n; i++) {
      out.push({
        index: i,
        threadId: Deno.pid + 1 + i,
        qomPath: `/machine/unattached/device[${i}]`,
        registers: () => accel ? accel.registers(i) : resetRegisters(),
      });
    }
    return out;
  }

  memRead(addr: number, len: number): Uint8Array {
    const ram = this.#r.machine.ram;
    if (ram.isRam(addr, len)) return ram.read(addr, len) ?? new Uint8Array(len).fill(0xff);
    const out = new Uint8Array(len);
    for (let i = 0; i < len;) {
      const a = addr + i;
      if (ram.isRam(a, 1)) {
        out[i++] = ram.readU8(a);
      } else if (a % 4 === 0 && len - i >= 4) {
        // Device registers are read with their own width (virtio-mmio accepts 4-byte accesses only).
        const v = this.#r.machine.memory.read(a, 4);
        for (let k = 0; k < 4; k++) out[i++] = (v >>> (8 * k)) & 0xff;
      } else {
        out[i++] = this.#r.machine.memory.read(a, 1);
      }
    }
    return out;
  }
  memWrite(addr: number, data: Uint8Array): void {
    const ram = this.#r.machine.ram;
    if (ram.write(addr, data)) return;
    for (let i = 0; i < data.length; i++) {
      const a = addr + i;
      if (!ram.writeU8(a, data[i])) this.#r.machine.memory.write(a, 1, data[i]);
    }
  }
  memReadN(addr: number, size: 1 | 2 | 4): number {
    const ram = this.#r.machine.ram;
    if (ram.isRam(addr, size)) {
      return size === 1 ? ram.readU8(addr) : size === 2 ? ram.readU16(addr) : ram.readU32(addr);
    }
    return this.#r.machine.memory.read(addr, size);
  }
  memWriteN(addr: number, size: 1 | 2 | 4, value: number): void {
    const ram = this.#r.machine.ram;
    if (ram.isRam(addr, size)) {
      if (size === 1) ram.writeU8(addr, value);
      else if (size === 2) ram.writeU16(addr, value);
      else ram.writeU32(addr, value);
      return;
    }
    this.#r.machine.memory.write(addr, size, value);
  }
  ioRead(port: number, size: 1 | 2 | 4): number {
    return this.#r.machine.io.read(port, size);
  }
  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    this.#r.machine.io.write(port, size, value);
  }

  interceptIrqIn(path: string, cb: (line: number, level: boolean) => void): IrqIntercept {
    if (!/^(\/machine\/)?(unattached\/)?ioapic$|^\/machine\/ioapic$/.test(path) && path !== "ioapic") {
      throw new UserError(`Could not find device '${path}'`);
    }
    this.#irqIn.add(cb);
    return { release: () => this.#irqIn.delete(cb) };
  }
  setIrqIn(path: string, _name: string, line: number, level: boolean): void {
    if (path !== "ioapic" && !path.endsWith("/ioapic")) {
      throw new UserError(`Could not find device '${path}'`);
    }
    if (line < 0 || line >= 24) throw new UserError(`Invalid IRQ line ${line}`);
    this.#r.machine.gsi.line(line).set(level);
  }

  deviceAdd(driver: string, props: Record<string, string>, id?: string): string {
    if (this.#r.runState !== "prelaunch") {
      throw new UserError(`Bus 'virtio-mmio-bus.0' does not support hotplugging`);
    }
    const n = this.#r.machine.userDevices;
    this.#r.machine.addDevice({ driver, props, ...(id ? { id } : {}) });
    this.#r.reloadKernel();
    return id ? `/machine/peripheral/${id}` : `/machine/peripheral-anon/device[${n}]`;
  }
  deviceDel(id: string): void {
    const known = this.qomObjects().some((o) => o.path === id || o.path === `/machine/peripheral/${id}`);
    if (!known) throw new UserError(`Device '${id}' not found`);
    throw new UserError(`Bus 'virtio-mmio-bus.0' does not support hotplugging`);
  }

  balloon(): BalloonControl | null {
    return findBalloon(this.#r.machine.virtioDevices().values());
  }
  infoMtree(flat: boolean): string {
    return this.#r.machine.infoMtree(flat);
  }
  infoQtree(): string {
    return this.#r.machine.infoQtree();
  }
  qomObjects(): QomObject[] {
    const m = this.#r.machine;
    const cfg = this.#r.config;
    const objs: QomObject[] = [
      {
        path: "/machine",
        type: "microvm-machine",
        props: [
          { name: "type", type: "string", value: "microvm-machine" },
          { name: "pic", type: "OnOffAuto", value: cfg.machine.pic },
          { name: "pit", type: "OnOffAuto", value: cfg.machine.pit },
          { name: "rtc", type: "OnOffAuto", value: cfg.machine.rtc },
          { name: "isa-serial", type: "bool", value: cfg.machine.isaSerial },
          { name: "auto-kernel-cmdline", type: "bool", value: cfg.machine.autoKernelCmdline },
          { name: "kernel-cmdline", type: "string", value: m.kernelCmdline },
        ],
      },
    ];
    cfg.devices.forEach((d, i) => {
      const hostDev = m.hostDevices.get(d);
      objs.push({
        path: d.id ? `/machine/peripheral/${d.id}` : `/machine/peripheral-anon/device[${i}]`,
        type: d.driver,
        props: [
          { name: "type", type: "string", value: d.driver },
          ...Object.entries(d.props).map(([k, v]) => ({
            name: k,
            type: "string",
            value: v,
          })),
          ...(hostDev ? hostDevQomProps(hostDev) : []),
        ],
      });
    });
    for (let i = 0; i < cfg.smp.cpus; i++) {
      objs.push({ path: `/machine/unattached/device[${i}]`, type: `${cfg.cpu.model}-x86_64-cpu`, props: [] });
    }
    return objs;
  }
  chardevs(): ChardevView[] {
    const out: ChardevView[] = [];
    for (const [label, c] of this.#r.chardevs) out.push({ label, filename: c.filename, frontendOpen: true });
    return out;
  }
  blocks(): BlockView[] {
    const cfg = this.#r.config;
    return cfg.drives.map((d, i) => {
      const devIndex = cfg.devices.findIndex((x) => x.props.drive === d.id);
      const dev = cfg.devices[devIndex];
      const size = this.#r.drives.find((b) => b.id === d.id)?.size ?? 0;
      return {
        device: d.id,
        nodeName: `#block${100 + i * 16 + 16}`,
        file: d.file,
        format: d.format ?? "raw",
        readOnly: d.readOnly,
        ...(dev
          ? {
            attachedTo: dev.id
              ? `/machine/peripheral/${dev.id}`
              : `/machine/peripheral-anon/device[${devIndex}]`,
          }
          : {}),
        cache: d.cache,
        size,
      };
    });
  }
  netdevIds(): string[] {
    return [...this.#r.netdevById.keys()];
  }
  usernets(): UsernetView[] {
    const out: UsernetView[] = [];
    for (const [id, b] of this.#r.netdevById) {
      if (!(b instanceof SlirpBackend)) continue;
      out.push({
        id,
        hostfwdAdd: (rule) => b.hostfwdAdd(rule),
        hostfwdRemove: (spec) => b.hostfwdRemove(spec),
        connectionInfo: () => b.connectionInfo(),
      });
    }
    return out;
  }
  infoPic(): string {
    const m = this.#r.machine;
    return (m.pic ? formatInfoPic(m.pic.saveState()) : "") + formatIoapic(m.ioapic.saveState());
  }
  infoLapic(cpu: number): string {
    const l = this.#r.machine.lapics[cpu];
    if (!l || this.#r.accel?.name !== "tcg") return "local apic state not available\n";
    const x2apic = (l.saveState().apicBase & 0x400) !== 0;
    const reg = (off: number): number => {
      if (!x2apic) return l.mmioRead(off) >>> 0;
      // x2APIC mode: the same registers through their MSRs (ICR is one 64-bit MSR; DFR does not exist).
      if (off === 0xe0) return 0xffffffff;
      if (off === 0x300 || off === 0x310) {
        const icr = l.readMsr(0x830) ?? 0n;
        return Number(off === 0x300 ? icr & 0xffffffffn : icr >> 32n);
      }
      return Number((l.readMsr(0x800 + (off >> 4)) ?? 0n) & 0xffffffffn);
    };
    return formatLapic(cpu, reg, x2apic);
  }

  infoJit(): string {
    const a = this.#r.accel as { name?: string; infoJit?: () => string } | null;
    if (a?.name !== "tcg" || !a.infoJit) return "JIT information is only available with accel=tcg\n";
    return a.infoJit();
  }

  infoIrq(): string {
    const m = this.#r.machine;
    const counts = m.gsi.counts();
    let s = "";
    if (m.pic) s += formatIrqStats("isa-i8259", counts.slice(0, 16));
    s += formatIrqStats("ioapic", counts);
    return s;
  }

  get migration(): MigrationController {
    return this.#r.migration;
  }

  get plugins(): MachineIface["plugins"] {
    const pm = this.#r.plugins;
    if (!pm) return undefined;
    return {
      info: () => pm.infoPlugins(),
      load: (line) => {
        pm.hmpPluginLoad(line).then(
          (t) => t && Deno.stderr.writeSync(new TextEncoder().encode(t.endsWith("\n") ? t : t + "\n")),
          (e) => Deno.stderr.writeSync(new TextEncoder().encode(`Error: ${(e as Error).message}\n`)),
        );
      },
      unload: (name) => {
        try {
          pm.unload(name);
          return "";
        } catch (e) {
          return `Error: ${(e as Error).message}\n`;
        }
      },
      command: (name, args) => pm.runCommand(name, args),
    };
  }

  setLogItems(items: string[]): void {
    this.#r.log.setItems(items);
  }
  setLogFile(path: string): void {
    this.#r.log.setFile(path);
  }
}

const DELIVERY = ["fixed", "lowest", "SMI", "...", "NMI", "...", "INIT", "ExtINT"];

function irrDump(name: string, bitmap: number): string {
  let s = `${name.padEnd(10)} `;
  if (bitmap === 0) return s + "(none)\n";
  for (let i = 0; i < 24; i++) if (bitmap & (1 << i)) s += `${String(i).padEnd(2)} `;
  return s + "\n";
}

/** The IOAPIC part of `info pic`, as QEMU 7.2's ioapic_print_redtbl prints it. */
export function formatIoapic(st: { id: number; ioregsel: number; irr: number; redtbl: number[][] }): string {
  let s = `ioapic0: ver=0x20 id=0x${st.id.toString(16).padStart(2, "0")} sel=0x${
    st.ioregsel.toString(16).padStart(2, "0")
  }`;
  s += st.ioregsel ? ` (redir[${(st.ioregsel - 0x10) >>> 1}])\n` : "\n";
  let remote = 0;
  st.redtbl.forEach(([lo, hi], i) => {
    const entry = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    const logical = (lo & 0x800) !== 0;
    const level = (lo & 0x8000) !== 0;
    const dest = (hi >>> 24) & (logical ? 0xff : 0xf);
    s += `  pin ${String(i).padEnd(2)} 0x${entry.toString(16).padStart(16, "0")} dest=${
      dest.toString(16)
    } vec=${String(lo & 0xff).padEnd(3)} ${lo & 0x2000 ? "active-lo" : "active-hi"} ${
      (level ? "level" : "edge").padEnd(5)
    } ${(lo & 0x10000 ? "masked" : "").padEnd(6)} ${DELIVERY[(lo >>> 8) & 7].padEnd(6)} ${
      logical ? "logical" : "physical"
    }\n`;
    if (level && lo & 0x4000) remote |= 1 << i;
  });
  return s + irrDump("  IRR", st.irr) + irrDump("  Remote IRR", remote);
}

const DM = ["Fixed", "...", "SMI", "...", "NMI", "INIT", "...", "ExtINT"];
const SHORTHAND = ["no-shorthand", "self", "all-self", "all"];
const h8 = (v: number) => (v >>> 0).toString(16).padStart(8, "0");

function lvtLine(name: string, lvt: number, timer: boolean): string {
  const dm = (lvt >>> 8) & 7;
  const mode = !timer ? "" : lvt & 0x20000 ? "periodic" : lvt & 0x40000 ? "tsc-deadline" : "one-shot";
  let s = `${name}\t 0x${h8(lvt)} ${lvt & 0x2000 ? "active-lo" : "active-hi"} ${
    (lvt & 0x8000 ? "level" : "edge").padEnd(5)
  } ${(lvt & 0x10000 ? "masked" : "").padEnd(6)} ${(lvt & 0x1000 ? "pending" : "").padEnd(7)} ${
    mode.padEnd(12)
  } ${DM[dm].padEnd(6)}`;
  s += dm !== 4 ? ` (vec ${lvt & 0xff})\n` : "\n";
  return s;
}

/** `info lapic` as QEMU 7.2's x86_cpu_dump_local_apic_state prints it, from the xAPIC register file. */
export function formatLapic(cpu: number, reg: (offset: number) => number, x2apic: boolean): string {
  let s = `dumping local APIC state for CPU ${String(cpu).padEnd(2)}\n\n`;
  s += lvtLine("LVT0", reg(0x350), false) + lvtLine("LVT1", reg(0x360), false) +
    lvtLine("LVTPC", reg(0x340), false);
  s += lvtLine("LVTERR", reg(0x370), false) + lvtLine("LVTTHMR", reg(0x330), false) +
    lvtLine("LVTT", reg(0x320), true);
  const dcr = reg(0x3e0);
  const dv = ((dcr & 8) >> 1) | (dcr & 3);
  s += `Timer\t DCR=0x${(dcr & 0xb).toString(16)} (divide by ${dv === 7 ? 1 : 2 << dv}) initial_count = ${
    reg(0x380)
  } current_count = ${reg(0x390)}\n`;
  const sv = reg(0xf0);
  s += `SPIV\t 0x${h8(sv)} APIC ${sv & 0x100 ? "enabled" : "disabled"}, focus=${
    sv & 0x200 ? "on" : "off"
  }, spurious vec ${sv & 0xff}\n`;
  const icr = reg(0x300), icr2 = reg(0x310);
  const sh = (icr >>> 18) & 3;
  const logical = (icr & 0x800) !== 0;
  s += `ICR\t 0x${h8(icr)} ${logical ? "logical" : "physical"} ${icr & 0x8000 ? "level" : "edge"} ${
    icr & 0x4000 ? "assert" : "de-assert"
  } ${SHORTHAND[sh]}\n`;
  s += `ICR2\t 0x${h8(icr2)}`;
  const dfr = (reg(0xe0) >>> 28) & 0xf;
  const dest = x2apic ? icr2 : icr2 >>> 24;
  const bits = (v: number, n: number) => (v >>> 0).toString(2).padStart(n, "0").slice(-n);
  if (sh !== 0) s += "\n";
  else if (!logical) s += x2apic ? ` cpu ${dest} (X2APIC ID)\n` : ` cpu ${dest & 0xff} (APIC ID)\n`;
  else if (dfr === 0xf) s += ` mask ${bits(icr2 >>> 24, 8)} (APIC ID)\n`;
  else if (dfr === 0) {
    s += x2apic
      ? ` cluster ${dest >>> 16} mask ${bits(dest & 0xffff, 16)} (X2APIC ID)\n`
      : ` cluster ${dest >>> 4} mask ${bits(dest & 0xf, 4)} (APIC ID)\n`;
  } else s += "\n";
  s += `ESR\t 0x${h8(reg(0x280))}\n`;
  for (const [name, base] of [["ISR", 0x100], ["IRR", 0x200]] as const) {
    let line = `${name}\t `;
    let empty = true;
    for (let v = 0; v < 256; v++) {
      if ((reg(base + (v >> 5) * 0x10) >>> (v & 31)) & 1) {
        line += `${v}${(reg(0x180 + (v >> 5) * 0x10) >>> (v & 31)) & 1 ? "(level)" : ""} `;
        empty = false;
      }
    }
    s += line + (empty ? "(none)" : "") + "\n";
  }
  const ldr = x2apic ? reg(0xd0) : reg(0xd0) >>> 24;
  s += `\nAPR 0x${(reg(0x90) & 0xff).toString(16).padStart(2, "0")} TPR 0x${
    (reg(0x80) & 0xff).toString(16).padStart(2, "0")
  } DFR 0x${dfr.toString(16).padStart(2, "0")} LDR 0x${ldr.toString(16).padStart(2, "0")}`;
  if (dfr === 0) s += `(cluster ${ldr >>> 4}: id ${ldr & 0xf})`;
  return s + ` PPR 0x${(reg(0xa0) & 0xff).toString(16).padStart(2, "0")}\n`;
}
