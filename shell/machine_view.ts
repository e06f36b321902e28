/**
 * The running VM as the monitors see it: `MachineView` implements `MachineIface` (shell/machine_iface.ts)
 * over the runner (shell/vm.ts) and the board (devices/microvm.ts).
 * @module
 */
import type { CpuRegisters } from "../core/accel.ts";
import type { DeviceRegistry } from "../core/config.ts";
import { formatIrqStats } from "../core/irq.ts";
import { UserError } from "../core/types.ts";
import { formatInfoPic } from "../devices/i8259.ts";
import { MICROVM_DEVICES } from "../devices/microvm.ts";
import type {
  BlockView,
  ChardevView,
  CpuView,
  IrqIntercept,
  MachineEvent,
  MachineIface,
  MonitorClock,
  QomObject,
  RunState,
} from "./machine_iface.ts";
import type { VmRunner } from "./vm.ts";

/** Version package string shown by `info version` and QMP. */
export const VERSION_PACKAGE = " (microvm.ts 0.1.0)";

function resetRegisters(): CpuRegisters {
  const seg = (sel: number, base: number, attrs: number) => ({ selector: sel, base, limit: 0xffff, attrs });
  return {
    gpr: Object.fromEntries(
      [
        "rax",
        "rbx",
        "rcx",
        "rdx",
        "rsi",
        "rdi",
        "rbp",
        "rsp",
        "r8",
        "r9",
        "r10",
        "r11",
        "r12",
        "r13",
        "r14",
        "r15",
      ]
        .map((k) => [k, 0n]).concat([["rip", 0xfff0n], ["rflags", 2n]]),
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
  infoPic(): string {
    const m = this.#r.machine;
    return (m.pic ? formatInfoPic(m.pic.saveState()) : "") + formatIoapic(m.ioapic.saveState());
  }
  infoIrq(): string {
    const m = this.#r.machine;
    const counts = m.gsi.counts();
    let s = "";
    if (m.pic) s += formatIrqStats("isa-i8259", counts.slice(0, 16));
    s += formatIrqStats("ioapic", counts);
    return s;
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
