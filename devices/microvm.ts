/**
 * The microvm board: QEMU 7.2's `-M microvm,acpi=off` memory map, devices and wiring, in one readable
 * function (hw/i386/microvm.c is the reference). Only this file knows addresses, IRQ numbers and which
 * host backend feeds which device.
 *
 * Memory map (acpi=off): RAM at 0 (ram-below-4g, ≤ 3 GiB) and 4 GiB (ram-above-4g); eight virtio-mmio
 * transports at 0xfeb00000 + 0x200·i with GSI 5+i; IOAPIC at 0xfec00000 (24 pins); the LAPIC/MSI window at
 * 0xfee00000; pc.bios (64 KiB) at 0xffff0000 with its isa-bios alias at 0xf0000.
 * I/O: PIC 0x20/0xa0 + ELCR 0x4d0/0x4d1, PIT 0x40, RTC 0x70, kvmvapic 0x7e, COM1 0x3f8, fw_cfg 0x510/0x514.
 * @module
 */
import { writeResetVector } from "./reset_vector.ts";
import type {
  AccelBoard,
  CpuEntryState,
  Doorbell,
  DoorbellSource,
  KernelIrqLines,
  LocalApicPort,
  MsrHandler,
} from "../core/accel.ts";
import type { DeviceConfig, DeviceRegistry, DriveConfig, VmConfig } from "../core/config.ts";
import {
  type BlockBackend,
  type CharBackend,
  type Device,
  type GuestLog,
  type IrqLine,
  type MsiSink,
  type NetBackend,
  NO_IRQ,
  type PropDef,
  type RegionOps,
  UserError,
} from "../core/types.ts";
import { AddressSpace, createCpuAddressSpaces, MemoryRegion, renderMtree } from "../core/region.ts";
import { GuestRam } from "../core/memory.ts";
import { GsiRouter } from "../core/irq.ts";
import type { VirtualClock } from "../core/clock.ts";
import { type LinuxBootInfo, loadLinux } from "../core/boot/mod.ts";
import { resetEntryState } from "../core/boot/reset_entry.ts";
import { Uart16550 } from "./uart16550.ts";
import { I8259Pair } from "./i8259.ts";
import { I8254 } from "./i8254.ts";
import { Mc146818Rtc } from "./mc146818.ts";
import { Ioapic } from "./ioapic.ts";
import { ApicBus, Lapic } from "./lapic.ts";
import { FwCfg, fwCfgBootTimes, uuidBytes } from "./fw_cfg.ts";
import { KvmClock } from "./kvmclock.ts";
import { VIRTIO_MMIO_QUEUE_NOTIFY, VirtioMmio } from "./virtio/mmio.ts";
import { VirtioBlk } from "./virtio/blk.ts";
import { VirtioSerial } from "./virtio/console.ts";
import { VirtioRng } from "./virtio/rng.ts";
import { VirtioNet } from "./virtio/net.ts";
import type { VirtioDevice } from "./virtio/device.ts";
import type { FsBackend } from "../core/fsdev.ts";
import type { VsockBackend } from "../core/vsock.ts";
import { HOSTDEV_DEVICES, makeHostDevice } from "./hostdev.ts";
import { propLine, propLines, type QBus, type QNode, renderQtree } from "./_qtree.ts";

/** First virtio-mmio transport (QEMU VIRTIO_MMIO_BASE). */
export const VIRTIO_MMIO_BASE = 0xfeb00000;
/** Transports and their GSI base with acpi=off. */
export const VIRTIO_NUM_TRANSPORTS = 8;
export const VIRTIO_IRQ_BASE = 5;
export const IOAPIC_BASE = 0xfec00000;
export const APIC_MSI_BASE = 0xfee00000;
export const FW_CFG_IO_BASE = 0x510;
/** RAM below 4 GiB at most (microvm_memory_init: lowmem = 3 GiB). */
export const MICROVM_LOWMEM = 0xc0000000;
/** Guest TSC frequency advertised to the guest (kHz). 1 GHz: TSC ticks are nanoseconds of virtual time. */
export const TSC_KHZ = 1_000_000;

/** What the runner gives the board: already-opened host resources and the kernel bytes. */
export interface MicrovmHost {
  log: GuestLog;
  clock: VirtualClock;
  /** The accelerator that will run the board (QEMU's kvm_enabled() decisions depend on it). */
  accel: "tcg" | "kvm" | "qtest";
  /** An opened chardev by id (throws UserError if unknown). */
  chardev(id: string): CharBackend;
  /** Open the image of a -drive. */
  drive(cfg: DriveConfig): BlockBackend;
  /** An opened -netdev by id. */
  netdev?(id: string): NetBackend;
  /** An opened -fsdev by id (throws UserError if unknown). */
  fsdev?(id: string): FsBackend;
  /** Open the Unix-socket backend of a virtio-vsock-device listening at `udsPath`. */
  vsock?(udsPath: string): VsockBackend;
  /** Wall-clock time (ms since the epoch) at virtual time 0, for the RTC and kvmclock. */
  wallClockMs: number;
  kernel?: { name: string; bytes: Uint8Array };
  initrd?: { name: string; bytes: Uint8Array };
  /**
   * `-incoming`: the migration stream supplies RAM and vCPU state, so the kernel is not loaded (its bytes
   * not read) until the first reset; entry() is the power-on state meanwhile.
   */
  incoming?: boolean;
  /** CPUID.01H EAX/EDX of the vCPU model (copied into the MP table as QEMU+qboot do). */
  cpuSignature: number;
  cpuFeatures: number;
  /** KVM: host page offset of a buffer's data (GuestRam aligns RAM to host pages with it). */
  hostPageOffset?: (buf: SharedArrayBuffer) => number;
  /** Extra e820 reservations the accelerator needs (KVM's TSS/identity map page). */
  accelReserved?: { addr: number; size: number; type: number }[];
}

/** One node of `info qtree`: a device, its properties and child buses. */
export interface QtreeNode {
  typeName: string;
  id: string;
  lines: string[];
  bus?: { name: string; type: string; children: QtreeNode[] };
}

/** The -device drivers this board builds (the command line checks against it). */
export const MICROVM_DEVICES: DeviceRegistry = [
  {
    driver: "virtio-blk-device",
    desc: "",
    bus: "virtio-bus",
    category: "Storage",
    props: [...VirtioBlk.PROPS],
  },
  {
    driver: "virtio-serial-device",
    desc: "",
    bus: "virtio-bus",
    category: "Input",
    props: [...VirtioSerial.PROPS],
  },
  {
    driver: "virtconsole",
    desc: "",
    bus: "virtio-serial-bus",
    category: "Display",
    qomParent: "virtserialport",
    props: [{ name: "chardev", type: "chr" }, { name: "nr", type: "uint32" }, { name: "name", type: "str" }],
  },
  {
    driver: "virtserialport",
    desc: "",
    bus: "virtio-serial-bus",
    category: "Input",
    props: [{ name: "chardev", type: "chr" }, { name: "nr", type: "uint32" }, { name: "name", type: "str" }],
  },
  { driver: "virtio-rng-device", desc: "", bus: "virtio-bus", category: "Misc", props: [...VirtioRng.PROPS] },
  {
    driver: "virtio-net-device",
    desc: "",
    bus: "virtio-bus",
    category: "Network",
    props: [...VirtioNet.PROPS],
  },
  ...HOSTDEV_DEVICES,
];

function onOffAuto(v: "on" | "off" | "auto", auto: boolean): boolean {
  return v === "on" || (v === "auto" && auto);
}

function hex(n: number): string {
  return n.toString(16);
}

/** Ops of a region that reads all-ones and ignores writes (QEMU's kvmvapic port as seen from a TCG guest). */
const ONES_OPS: RegionOps = {
  read: (_o, size) => size === 4 ? 0xffffffff : (1 << (size * 8)) - 1,
  write: () => {},
};

/**
 * The assembled machine. Construct with `new Microvm(config, host)`; `accelBoard()` is what an
 * accelerator runs; `reset()` is system_reset (devices to power-on state, kernel reloaded).
 */
export class Microvm {
  readonly config: VmConfig;
  readonly host: MicrovmHost;
  readonly clock: VirtualClock;
  readonly ram: GuestRam;
  readonly system: MemoryRegion;
  readonly ioRoot: MemoryRegion;
  readonly memory: AddressSpace;
  readonly io: AddressSpace;
  readonly gsi: GsiRouter;
  /**
   * The device registry: every device with state, in creation order (snapshots, reset, the fuzzer's state
   * features): IOAPIC, the LAPICs, the virtio-mmio transports (with their devices), legacy chips, fw_cfg, kvmclock.
   */
  readonly devices: Device[] = [];
  readonly transports: VirtioMmio[] = [];
  readonly lapics: Lapic[] = [];
  readonly apicBus: ApicBus;
  readonly ioapic: Ioapic;
  readonly pic: I8259Pair | null = null;
  readonly pit: I8254 | null = null;
  readonly rtc: Mc146818Rtc | null = null;
  readonly serial: Uart16550 | null = null;
  readonly fwcfg: FwCfg;
  readonly kvmclock: KvmClock;
  readonly ncpus: number;
  /** Observer of every GSI level change (qtest irq_intercept_in on the IOAPIC). */
  onGsi: ((gsi: number, level: boolean) => void) | null = null;
  /** Level of the PIC's INT output (KVM injects ExtINT from it). */
  picOutput = false;
  /** The host-integration devices (9p, balloon, vsock) by the -device that made them. */
  readonly hostDevices = new Map<DeviceConfig, VirtioDevice>();
  /** Number of -device/device_add devices added so far. */
  userDevices = 0;
  /** Kernel command line as the guest receives it (after auto-kernel-cmdline). */
  kernelCmdline = "";
  boot: LinuxBootInfo | null = null;
  /** Backing pages the boot loader wrote (one byte per page): an incoming migration zeroes them first. */
  loaderPages: Uint8Array | null = null;
  /** -incoming: the kernel load waits for the first reset (MicrovmHost.incoming). */
  #kernelDeferred = false;
  /** Where each plugged virtio device lives: transport index → device. */
  readonly #virtio = new Map<number, VirtioDevice>();
  readonly #serials: VirtioSerial[] = [];
  #nextSlot = VIRTIO_NUM_TRANSPORTS - 1;
  #nicCount = 0;
  #msi: MsiSink | null = null;
  #cpuSpaces: AddressSpace[] | null = null;
  /** kernel-irqchip=on: the accelerator's GSI lines replace our IOAPIC and PIC (null: ours). */
  #kernelGsi: IrqLine[] | null = null;
  /** -global virtio-mmio.ioeventfd=on: QueueNotify writes are offered to the accelerator as doorbells. */
  #ioeventfd = false;
  /** `memory.write` while no hook is installed (hooks swap it; doorbells must then exit, STYLE.md §2.4). */
  #plainWrite: AddressSpace["write"] | null = null;

  constructor(config: VmConfig, host: MicrovmHost) {
    this.config = config;
    this.host = host;
    this.clock = host.clock;
    const m = config.machine;
    if (m.acpi === "on") {
      throw new UserError(
        "Property 'microvm-machine.acpi' cannot be 'on': microvm.ts has no ACPI tables; use acpi=off",
      );
    }
    if (m.pcie === "on") {
      throw new UserError("Property 'microvm-machine.pcie' cannot be 'on': PCIe needs ACPI");
    }
    this.ncpus = config.smp.cpus;
    const kvm = host.accel === "kvm";
    const log = host.log;

    // --- memory (microvm_memory_init) ---
    const size = config.memory.sizeBytes;
    const below = Math.min(size, MICROVM_LOWMEM);
    const above = size - below;
    this.ram = new GuestRam({
      size,
      below4g: below,
      ...(host.hostPageOffset ? { hostPageOffset: host.hostPageOffset } : {}),
    });
    this.system = MemoryRegion.container("system", 2 ** 64);
    this.ioRoot = MemoryRegion.io("io", 0x10000, null);
    const ramRegion = MemoryRegion.ram("microvm.ram", size, this.ram, 0);
    this.system.addSubregion(0, MemoryRegion.alias("ram-below-4g", ramRegion, 0, below));
    if (above > 0) {
      this.system.addSubregion(0x1_0000_0000, MemoryRegion.alias("ram-above-4g", ramRegion, below, above));
    }

    // --- interrupt fabric ---
    this.apicBus = new ApicBus();
    const msi: MsiSink = { sendMsi: (a, d) => (this.#msi ?? this.apicBus).sendMsi(a, d) };
    this.ioapic = new Ioapic({ id: "ioapic", msi, log });
    this.gsi = new GsiRouter(24);
    for (let i = 0; i < 24; i++) {
      const pin = this.ioapic.pin(i);
      this.gsi.connect(i, { set: (level) => (this.#kernelGsi?.[i] ?? pin).set(level) });
      this.gsi.connect(i, { set: (level) => this.onGsi?.(i, level) });
    }
    this.system.addSubregion(
      IOAPIC_BASE,
      MemoryRegion.io("ioapic", 0x1000, this.ioapic.ops, { owner: "ioapic" }),
    );
    for (let i = 0; i < this.ncpus; i++) {
      const lapic = new Lapic({ id: i, clock: this.clock, tscKhz: TSC_KHZ, bus: this.apicBus, log });
      this.lapics.push(lapic);
    }
    this.apicBus.setEoiListener((vector: number) => this.ioapic.eoi(vector));
    const msiOps: RegionOps = {
      read: () => 0xffffffff,
      write: (offset, _size, value) => msi.sendMsi(APIC_MSI_BASE + offset, value),
      valid: { min: 4, max: 4 },
    };
    this.system.addSubregion(
      APIC_MSI_BASE,
      MemoryRegion.io(kvm ? "kvm-apic-msi" : "apic-msi", 0x100000, msiOps, { priority: 4096 }),
    );
    this.devices.push(this.ioapic, ...this.lapics);

    // --- virtio-mmio transports (created 0..7; QEMU fills them from the top) ---
    this.#ioeventfd = this.#globalBool("virtio-mmio", "ioeventfd", false);
    for (let i = 0; i < VIRTIO_NUM_TRANSPORTS; i++) {
      const base = VIRTIO_MMIO_BASE + i * 0x200;
      const t = new VirtioMmio({
        id: `virtio-mmio@${hex(base)}`,
        irq: this.gsi.line(VIRTIO_IRQ_BASE + i),
        mem: this.ram,
        log,
        forceLegacy: this.#globalBool("virtio-mmio", "force-legacy", true),
        ioeventfd: this.#ioeventfd,
      });
      this.transports.push(t);
      this.devices.push(t);
      this.system.addSubregion(
        base,
        MemoryRegion.io(VirtioMmio.REGION_NAME, VirtioMmio.REGION_SIZE, t.ops, { owner: t.id }),
      );
    }

    // --- legacy ISA devices ---
    if (onOffAuto(m.pic, true)) {
      const lint0: IrqLine = {
        set: (level) => {
          this.picOutput = level;
          this.lapics[0]?.setLint0(level);
        },
      };
      const pic = new I8259Pair({ id: "pic", output: lint0, log });
      this.pic = pic;
      for (let i = 0; i < 16; i++) {
        const line = pic.irqLine(i);
        this.gsi.connect(i, {
          set: (level) => {
            if (this.#kernelGsi === null) line.set(level);
          },
        });
      }
      for (const l of this.lapics) l.setExtIntAck(() => pic.intAck());
      this.ioRoot.addSubregion(0x20, MemoryRegion.io("pic", 2, pic.masterOps, { owner: "pic" }));
      this.ioRoot.addSubregion(0xa0, MemoryRegion.io("pic", 2, pic.slaveOps, { owner: "pic" }));
      this.ioRoot.addSubregion(0x4d0, MemoryRegion.io("elcr", 1, pic.elcrMasterOps, { owner: "pic" }));
      this.ioRoot.addSubregion(0x4d1, MemoryRegion.io("elcr", 1, pic.elcrSlaveOps, { owner: "pic" }));
    }
    if (onOffAuto(m.pit, true)) {
      const pit = new I8254({ id: "pit", irq: this.gsi.line(0), clock: this.clock, log });
      this.pit = pit;
      this.ioRoot.addSubregion(0x40, MemoryRegion.io("pit", 4, pit.ops, { owner: "pit" }));
    }
    if (onOffAuto(m.rtc, !kvm)) {
      const rtc = new Mc146818Rtc({
        id: "rtc",
        irq: this.gsi.line(8),
        clock: this.clock,
        log,
        baseTimeMs: host.wallClockMs,
        baseYear: 2000,
      });
      rtc.setMemorySize({ belowGb4: below, aboveGb4: above });
      this.rtc = rtc;
      const rtcRegion = MemoryRegion.io("rtc", 2, rtc.ops, { owner: "rtc" });
      rtcRegion.addSubregion(0, MemoryRegion.io("rtc-index", 1, rtc.indexOps, { owner: "rtc" }));
      this.ioRoot.addSubregion(0x70, rtcRegion);
    }
    this.ioRoot.addSubregion(0x7e, MemoryRegion.io("kvmvapic", 2, ONES_OPS));
    if (m.isaSerial) {
      const chr = config.serials[0]?.chardev;
      const uart = new Uart16550({
        id: "serial0",
        irq: this.gsi.line(4),
        clock: this.clock,
        log,
        backend: chr ? host.chardev(chr) : null,
      });
      this.serial = uart;
      this.ioRoot.addSubregion(0x3f8, MemoryRegion.io("serial", 8, uart.ops, { owner: "serial0" }));
    }
    for (const d of [this.serial, this.rtc, this.pit, this.pic]) if (d) this.devices.push(d);

    // --- fw_cfg and kvmclock ---
    this.fwcfg = new FwCfg({ id: "fw_cfg", mem: this.ram, log });
    this.ioRoot.addSubregion(
      FW_CFG_IO_BASE,
      MemoryRegion.io("fwcfg", 2, this.fwcfg.ops, { owner: "fw_cfg" }),
    );
    this.ioRoot.addSubregion(
      FW_CFG_IO_BASE + 4,
      MemoryRegion.io("fwcfg.dma", 8, this.fwcfg.dmaOps, { owner: "fw_cfg" }),
    );
    this.devices.push(this.fwcfg);
    this.kvmclock = new KvmClock({
      mem: this.ram,
      clock: this.clock,
      tscKhz: TSC_KHZ,
      wallClockMs: host.wallClockMs,
      log,
    });
    this.devices.push(this.kvmclock);

    // --- BIOS ROM (no firmware runs; the region exists as in QEMU) ---
    const bios = MemoryRegion.rom("pc.bios", 0x10000, this.ram, { readonly: false });
    this.system.addSubregion(0xffff0000, bios);
    this.system.addSubregion(0xf0000, MemoryRegion.alias("isa-bios", bios, 0, 0x10000, { priority: 1 }));

    // --- user devices ---
    for (const d of config.devices) this.addDevice(d);

    this.memory = new AddressSpace("memory", this.system);
    this.#plainWrite = this.memory.write;
    this.io = new AddressSpace("I/O", this.ioRoot);
    this.#kernelDeferred = host.incoming === true;
    this.#loadKernel();
  }

  #globalBool(driver: string, prop: string, dflt: boolean): boolean {
    let v = dflt;
    for (const g of this.config.globals) {
      if (g.driver !== driver || g.property !== prop) continue;
      if (/^(on|yes|true|y)$/.test(g.value)) v = true;
      else if (/^(off|no|false|n)$/.test(g.value)) v = false;
      else {
        throw new UserError(
          `can't apply global ${driver}.${prop}=${g.value}: Parameter '${prop}' expects 'on' or 'off'`,
        );
      }
    }
    return v;
  }

  /** Add a -device (before boot). Virtio devices take transports from the top slot down, as QEMU does. */
  addDevice(d: DeviceConfig): void {
    this.userDevices++;
    const p = { ...d.props };
    for (const g of this.config.globals) {
      if (g.driver === d.driver && !(g.property in p)) p[g.property] = g.value;
    }
    const id = d.id ?? "";
    const bool = (k: string, dflt: boolean) => p[k] === undefined ? dflt : /^(on|yes|true)$/.test(p[k]);
    const common = {
      indirectDesc: bool("indirect_desc", true),
      eventIdx: bool("event_idx", true),
    };
    switch (d.driver) {
      case "virtio-blk-device": {
        const driveId = p.drive;
        if (!driveId) throw new UserError(`Property 'virtio-blk-device.drive' can't be empty`);
        const cfg = this.config.drives.find((x) => x.id === driveId);
        if (!cfg) throw new UserError(`Property 'virtio-blk-device.drive' can't find value '${driveId}'`);
        const drive = this.host.drive(cfg);
        this.#plug(
          new VirtioBlk({
            id,
            drive,
            driveName: driveId,
            driveWriteback: cfg.cache.writeback,
            serial: p.serial ?? cfg.serial ?? "",
            ...common,
          }),
        );
        return;
      }
      case "virtio-serial-device": {
        const mp = p.max_ports;
        if (mp !== undefined && !/^\d+$/.test(mp)) {
          throw new UserError(`Parameter 'max_ports' expects integer`);
        }
        const s = new VirtioSerial({ id, ...common, ...(mp !== undefined ? { maxPorts: Number(mp) } : {}) });
        this.#serials.push(s);
        this.#plug(s);
        return;
      }
      case "virtconsole":
      case "virtserialport": {
        const bus = this.#serials[this.#serials.length - 1];
        if (!bus) throw new UserError(`No 'virtio-serial-bus' bus found for device '${d.driver}'`);
        const chrId = p.chardev;
        if (!chrId) throw new UserError(`Property '${d.driver}.chardev' can't be empty`);
        const chardev = this.host.chardev(chrId);
        bus.addPort({
          console: d.driver === "virtconsole",
          chardev,
          chardevName: chrId,
          ...(p.nr !== undefined ? { nr: Number(p.nr) } : {}),
          ...(p.name !== undefined ? { name: p.name } : {}),
          id,
        });
        return;
      }
      case "virtio-rng-device":
        this.#plug(new VirtioRng({ id, clock: this.clock, ...common }));
        return;
      case "virtio-net-device": {
        const nd = p.netdev;
        if (!nd) throw new UserError(`Property 'virtio-net-device.netdev' can't be empty`);
        if (!this.host.netdev) {
          throw new UserError(`Property 'virtio-net-device.netdev' can't find value '${nd}'`);
        }
        const backend = this.host.netdev(nd);
        this.#plug(
          VirtioNet.fromProps({ id, netdev: backend, netdevName: nd, props: p, index: this.#nicCount++ }),
        );
        return;
      }
      default: {
        const env = { host: this.host, clock: this.clock, ram: this.ram, common };
        const dev = makeHostDevice(d.driver, id, p, env);
        if (dev === null) throw new UserError(`'${d.driver}' is not a valid device model name`);
        this.#plug(dev);
        this.hostDevices.set(d, dev);
      }
    }
  }

  #plug(dev: VirtioDevice): void {
    if (this.#nextSlot < 0) throw new UserError(`No 'virtio-bus' bus found for device '${dev.typeName}'`);
    const slot = this.#nextSlot--;
    this.transports[slot].plug(dev);
    this.#virtio.set(slot, dev);
  }

  /** Kernel command line after QEMU 7.2's auto-kernel-cmdline (transports listed top slot first). */
  #buildCmdline(): string {
    let cmdline = this.config.append;
    if (this.config.machine.autoKernelCmdline) {
      for (let i = VIRTIO_NUM_TRANSPORTS - 1; i >= 0; i--) {
        if (!this.#virtio.has(i)) continue;
        cmdline += ` virtio_mmio.device=512@0x${hex(VIRTIO_MMIO_BASE + i * 0x200)}:${VIRTIO_IRQ_BASE + i}`;
      }
    }
    return cmdline;
  }

  /** Rebuild the kernel command line and reload the kernel (after device_add before boot). */
  reloadKernel(): void {
    this.#kernelDeferred = false;
    this.ram.clear();
    this.#loadKernel();
  }

  #loadKernel(): void {
    writeResetVector(this.ram);
    this.kernelCmdline = this.#buildCmdline();
    const h = this.host;
    this.fwcfg.setMachineItems({
      nbCpus: this.ncpus,
      maxCpus: this.config.smp.maxCpus,
      ramSize: this.config.memory.sizeBytes,
      nographic: !this.config.machine.graphics,
      bootMenu: /^(on|yes|true|y)$/.test(this.config.boot.props.menu ?? ""),
      uuid: uuidBytes(this.config.uuid),
      ...fwCfgBootTimes(this.config.boot.props),
    });
    if (!h.kernel || this.#kernelDeferred) return;
    const dirty = this.ram.dirty;
    this.ram.dirty = this.loaderPages = new Uint8Array(Math.ceil(this.ram.u8.length / 4096));
    this.boot = loadLinux(this.ram, {
      kernel: h.kernel.bytes,
      kernelName: h.kernel.name,
      ...(h.initrd ? { initrd: h.initrd.bytes, initrdName: h.initrd.name } : {}),
      cmdline: this.kernelCmdline,
      layout: { below4g: this.ram.below4g, above4g: this.ram.size - this.ram.below4g },
      ncpus: this.ncpus,
      ioapic: true,
      irq0Override: true,
      cpuSignature: h.cpuSignature,
      cpuFeatures: h.cpuFeatures,
      ...(h.accelReserved ? { accelReserved: h.accelReserved } : {}),
    });
    this.ram.dirty = dirty;
    this.fwcfg.setKernelItems(this.boot.fwCfg, this.boot.e820File);
  }

  /** The entry state of the boot CPU (or a real-mode reset state when no kernel was given). */
  entry(): CpuEntryState | null {
    if (this.#kernelDeferred && this.host.kernel) return resetEntryState();
    return this.boot?.entry ?? null;
  }

  /** Install the accelerator's interrupt fabric (KVM split irqchip); null = our LAPICs. */
  setMsiSink(sink: MsiSink | null): void {
    this.#msi = sink;
  }

  /** What an accelerator runs. */
  accelBoard(): AccelBoard {
    const memory = this.memory;
    const io = this.io;
    const msrHandlers: MsrHandler[] = [this.kvmclock];
    const getMsi = (): MsiSink => this.#msi ?? this.apicBus;
    const setMsi = (sink: MsiSink | null) => this.setMsiSink(sink === this.apicBus ? null : sink);
    return {
      get msi(): MsiSink | null {
        return getMsi();
      },
      set msi(sink: MsiSink | null) {
        setMsi(sink);
      },
      io: { read: (p, s) => io.read(p, s), write: (p, s, v) => io.write(p, s, v) },
      mmio: { read: (a, s) => memory.read(a, s), write: (a, s, v) => memory.write(a, s, v) },
      phys: this.memory.physMap(),
      ram: this.ram,
      clock: this.clock,
      ncpus: this.ncpus,
      lapics: this.lapics as readonly LocalApicPort[],
      cpuModel: this.config.cpu.model,
      cpuFeatures: this.config.cpu.features,
      msrHandlers,
      tscKhz: TSC_KHZ,
      doorbells: this.#doorbellSource(),
      useKernelIrqchip: (lines: KernelIrqLines | null) => this.#useKernelIrqchip(lines),
    };
  }

  /** QueueNotify of every queue of every populated transport (ioeventfd=on), rung through dispatch. */
  #doorbellSource(): DoorbellSource {
    const list: Doorbell[] = [];
    const memory = this.memory;
    if (this.#ioeventfd) {
      this.transports.forEach((t, i) => {
        const addr = VIRTIO_MMIO_BASE + i * 0x200 + VIRTIO_MMIO_QUEUE_NOTIFY;
        t.queues.forEach((_q, value) =>
          list.push({ addr, size: 4, value, ring: () => memory.write(addr, 4, value) })
        );
      });
    }
    const plain = this.#plainWrite;
    return {
      list: () => list,
      get enabled(): boolean {
        return memory.write === plain;
      },
    };
  }

  /** kernel-irqchip=on: GSIs go to the in-kernel controllers; virtio transports as irqfd edges (one per notification). */
  #useKernelIrqchip(lines: KernelIrqLines | null): void {
    if (lines === null) {
      this.#kernelGsi = null;
      return;
    }
    const gsis: IrqLine[] = [];
    for (let g = 0; g < this.gsi.count; g++) {
      const slot = g - VIRTIO_IRQ_BASE;
      const virtio = slot >= 0 && slot < VIRTIO_NUM_TRANSPORTS && this.transports[slot].device !== null;
      gsis.push(virtio ? lines.pulse(g) : lines.line(g));
    }
    this.#kernelGsi = gsis;
  }

  /** system_reset: every device to its power-on state, RAM cleared, kernel reloaded. */
  reset(): void {
    this.#kernelDeferred = false;
    for (const d of this.devices) d.reset();
    this.ram.clear();
    this.#loadKernel();
  }

  /** Address spaces as `info mtree` lists them: memory, I/O, then QEMU's per-CPU spaces. */
  mtreeSpaces(): AddressSpace[] {
    this.#cpuSpaces ??= createCpuAddressSpaces(this.system, {
      ncpus: this.ncpus,
      smm: this.host.accel !== "kvm",
    });
    return [this.memory, this.io, ...this.#cpuSpaces];
  }

  /**
   * `info mtree [-f]` text. QEMU prints address spaces in hash-table order, which varies between runs;
   * `order` picks one (default: memory, I/O, then the CPU spaces).
   */
  infoMtree(flat = false, order?: string[]): string {
    const kvm = this.host.accel === "kvm";
    return renderMtree(this.mtreeSpaces(), {
      flat,
      ...(order ? { order } : {}),
      ...(kvm ? { accel: { name: "KVM", spaces: ["memory"] } } : {}),
    });
  }

  /** `info qtree` in QEMU 7.2's format. */
  infoQtree(): string {
    const pad = (n: number) => n.toString(16).padStart(16, "0");
    const sys: QBus = { name: "main-system-bus", type: "System", devices: [] };
    for (let i = VIRTIO_NUM_TRANSPORTS - 1; i >= 0; i--) {
      const t = this.transports[i];
      const bus: QBus = { name: `virtio-mmio-bus.${i}`, type: "virtio-mmio-bus", devices: [] };
      const dev = t.device;
      if (dev) {
        const props = (dev.constructor as { PROPS?: readonly PropDef[] }).PROPS ?? [];
        const node: QNode = {
          type: dev.typeName,
          id: dev.id,
          lines: propLines(dev.propertyValues(), props),
          buses: [],
        };
        if (dev instanceof VirtioSerial) {
          node.buses.push({
            name: `virtio-serial-bus.${this.#serials.indexOf(dev)}`,
            type: "virtio-serial-bus",
            devices: dev.ports.map((p) => ({
              type: p.typeName,
              id: p.id,
              lines: [...propLines(p.propertyValues(), []), p.describe()],
              buses: [],
            })),
          });
        }
        bus.devices.push(node);
      }
      sys.devices.push({
        type: "virtio-mmio",
        id: "",
        lines: [
          `gpio-out "sysbus-irq" 1`,
          ...propLines(t.propertyValues(), VirtioMmio.PROPS),
          `mmio ${pad(VIRTIO_MMIO_BASE + i * 0x200)}/${pad(0x200)}`,
        ],
        buses: [bus],
      });
    }
    sys.devices.push({
      type: "ioapic",
      id: "",
      lines: [`gpio-in "" 24`, propLine("version", 0x20), `mmio ${pad(IOAPIC_BASE)}/${pad(0x1000)}`],
      buses: [],
    });
    const isa: QBus = { name: "isa.0", type: "ISA", devices: [] };
    if (this.serial) {
      isa.devices.push({
        type: "isa-serial",
        id: "",
        lines: [propLine("index", 0), propLine("iobase", 0x3f8), propLine("irq", 4)],
        buses: [],
      });
    }
    if (this.rtc) {
      isa.devices.push({
        type: "mc146818rtc",
        id: "",
        lines: [
          `gpio-out "" 1`,
          propLine("base_year", 0),
          propLine("iobase", 0x70),
          propLine("irq", 8),
          propLine("lost_tick_policy", "discard"),
        ],
        buses: [],
      });
    }
    if (this.pit) {
      isa.devices.push({
        type: "isa-pit",
        id: "",
        lines: [`gpio-in "" 1`, `gpio-out "" 1`, propLine("iobase", 0x40)],
        buses: [],
      });
    }
    if (this.pic) {
      for (
        const [base, elcr, mask, master] of [[0xa0, 0x4d1, 0xde, false], [0x20, 0x4d0, 0xf8, true]] as const
      ) {
        isa.devices.push({
          type: "isa-i8259",
          id: "",
          lines: [
            `gpio-in "" 8`,
            `gpio-out "" 1`,
            propLine("iobase", base),
            propLine("elcr_addr", elcr),
            propLine("elcr_mask", mask),
            propLine("master", master),
          ],
          buses: [],
        });
      }
    }
    sys.devices.push({ type: "isabus-bridge", id: "", lines: [], buses: [isa] });
    sys.devices.push({ type: "kvmvapic", id: "", lines: [], buses: [] });
    sys.devices.push({
      type: "fw_cfg_io",
      id: "",
      lines: [propLine("dma_enabled", true), propLine("x-file-slots", 32), propLine("acpi-mr-restore", true)],
      buses: [],
    });
    return renderQtree(sys);
  }

  /** The virtio devices by transport slot (for info qtree and the cmdline tests). */
  virtioDevices(): ReadonlyMap<number, VirtioDevice> {
    return this.#virtio;
  }
}

export { NO_IRQ };
