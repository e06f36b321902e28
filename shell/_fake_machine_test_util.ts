/**
 * A small MachineIface for monitor tests: 1 MiB of RAM, a CMOS-like index/data port pair at 0x70/0x71,
 * a virtio-mmio-like magic register at 0xfeb00000, a manual clock with one timer, an IRQ line the tests
 * can toggle, and CPU#0 registers taken from QEMU 7.2's `info registers -a` capture
 * (tcg-legacy-blk-net.hmp.txt), so formatting compares byte for byte. Test-only.
 * @module
 */
import type { CpuRegisters, SegmentState } from "../core/accel.ts";
import { UserError } from "../core/types.ts";
import { FakeMemory, ManualClock } from "../tests/fakes.ts";
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

function seg(selector: number, base: number, limit: number, attrs: number): SegmentState {
  return { selector, base, limit, attrs };
}

/** CPU#0 of the capture (long mode, halted in the idle loop). */
export function captureCpu0(): CpuRegisters {
  return {
    gpr: {
      rax: 0n,
      rbx: 0n,
      rcx: 0n,
      rdx: 0n,
      rsi: 0x46n,
      rdi: 0x51d4n,
      rbp: 0xffffffff81a13600n,
      rsp: 0xffffffff81a03ed0n,
      r8: 0n,
      r9: 0xffff88801f41fec0n,
      r10: 1n,
      r11: 0xffff88801f41ff40n,
      r12: 0n,
      r13: 0n,
      r14: 0xffffffff81a13120n,
      r15: 0n,
      rip: 0xffffffff812ba653n,
      rflags: 0x246n,
    },
    seg: {
      es: seg(0, 0, 0, 0),
      cs: seg(0x10, 0, 0xffffffff, 0xa09b),
      ss: seg(0x18, 0, 0xffffffff, 0xc093),
      ds: seg(0, 0, 0, 0),
      fs: seg(0, 0, 0, 0),
      // 0xffff88801f400000 as a (rounded-exactly) double: its low bits are zero, so it is representable.
      gs: seg(0, Number(0xffff88801f400000n), 0, 0),
      ldt: seg(0, 0, 0, 0x82),
      tr: seg(0x40, Number(0xfffffe0000003000n), 0x67, 0x89),
    },
    gdt: { base: Number(0xfffffe0000001000n), limit: 0x7f },
    idt: { base: Number(0xfffffe0000000000n), limit: 0xfff },
    cr: { cr0: 0x80050033n, cr2: 0x3c6cf730n, cr3: 0xa93000n, cr4: 0x7506b0n, cr8: 0n },
    efer: 0xd01n,
    halted: true,
  };
}

/** What the fake recorded. */
export interface FakeLog {
  calls: string[];
  logItems: string[];
  logFile: string;
}

/** Options of makeFakeMachine. */
export interface FakeMachineOptions {
  accel?: "tcg" | "kvm" | "qtest";
  runState?: RunState;
  cpus?: CpuRegisters[];
}

/** The fake machine plus handles the tests poke at. */
export interface FakeMachine extends MachineIface {
  readonly mem: FakeMemory;
  readonly manual: ManualClock;
  readonly log: FakeLog;
  readonly cmos: Uint8Array;
  /** Set the level of the fake device's IRQ output line `n` (intercepted by irq_intercept_out "fakedev"). */
  raiseOut(n: number, level: boolean): void;
  /** Levels driven through set_irq_in. */
  readonly inLevels: Map<string, boolean>;
  emit(ev: MachineEvent): void;
}

/** Build a fresh fake machine. */
export function makeFakeMachine(opts: FakeMachineOptions = {}): FakeMachine {
  const mem = new FakeMemory(1 << 20);
  const manual = new ManualClock();
  let nextDeadline = 1000;
  manual.timer(() => {
    nextDeadline = Infinity;
  }).arm(1000);
  const listeners = new Set<(ev: MachineEvent) => void>();
  const log: FakeLog = { calls: [], logItems: [], logFile: "" };
  const cmos = new Uint8Array(128);
  let cmosIndex = 0;
  let state: RunState = opts.runState ?? "running";
  const regs = opts.cpus ?? [captureCpu0()];
  const outIntercepts = new Set<(line: number, level: boolean) => void>();
  const inLevels = new Map<string, boolean>();
  const devices: QomObject[] = [
    { path: "/machine", type: "microvm-machine", props: [{ name: "acpi", type: "OnOffAuto", value: "off" }] },
    { path: "/machine/peripheral", type: "container", props: [] },
    { path: "/machine/peripheral-anon", type: "container", props: [] },
    {
      path: "/machine/unattached/device[0]",
      type: "max-x86_64-cpu",
      props: [{ name: "apic-id", type: "uint32", value: 0 }],
    },
    { path: "/machine/unattached", type: "container", props: [] },
  ];
  let counter = 1;
  const emit = (ev: MachineEvent) => {
    for (const l of listeners) l(ev);
  };
  const clock: MonitorClock = {
    get mode() {
      return (opts.accel ?? "qtest") === "qtest" ? "manual" as const : "host" as const;
    },
    now: () => manual.now(),
    step: (ns) => manual.step(ns),
    set: (ns) => manual.set(ns),
    nextDeadline: () => nextDeadline,
  };
  const cpuViews: CpuView[] = regs.map((r, i) => ({
    index: i,
    threadId: 7678 + i,
    qomPath: `/machine/unattached/device[${i}]`,
    registers: () => r,
  }));
  const m: FakeMachine = {
    mem,
    manual,
    log,
    cmos,
    inLevels,
    emit,
    name: "fakevm",
    versionPackage: " (microvm.ts test)",
    accel: opts.accel ?? "qtest",
    ramSize: mem.size,
    get runState() {
      return state;
    },
    stop() {
      log.calls.push("stop");
      if (state === "running") {
        state = "paused";
        emit({ event: "STOP" });
      }
    },
    cont() {
      log.calls.push("cont");
      if (state === "shutdown" || state === "internal-error") {
        throw new UserError("Resetting the Virtual Machine is required");
      }
      if (state !== "running") {
        state = "running";
        emit({ event: "RESUME" });
      }
    },
    systemReset() {
      log.calls.push("system_reset");
      emit({ event: "RESET", data: { guest: false, reason: "host-qmp-system-reset" } });
    },
    quit() {
      log.calls.push("quit");
      emit({ event: "SHUTDOWN", data: { guest: false, reason: "host-qmp-quit" } });
    },
    on(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    cpus: () => cpuViews,
    memRead(addr, len) {
      const out = new Uint8Array(len).fill(0xff);
      for (let i = 0; i < len; i++) {
        const a = addr + i;
        if (a < mem.size) out[i] = mem.bytes[a];
        else if (a >= 0xfeb00000 && a < 0xfeb00004) out[i] = [0x76, 0x69, 0x72, 0x74][a - 0xfeb00000];
      }
      return out;
    },
    memWrite(addr, data) {
      for (let i = 0; i < data.length; i++) if (addr + i < mem.size) mem.bytes[addr + i] = data[i];
    },
    memReadN(addr, size) {
      const b = m.memRead(addr, size);
      let v = 0;
      for (let i = size - 1; i >= 0; i--) v = v * 256 + b[i];
      return v;
    },
    memWriteN(addr, size, value) {
      const b = new Uint8Array(size);
      for (let i = 0; i < size; i++) b[i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
      m.memWrite(addr, b);
    },
    ioRead(port, size) {
      if (port === 0x71 && size === 1) return cmos[cmosIndex];
      if (port === 0x70) return 0xff;
      return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    },
    ioWrite(port, size, value) {
      if (port === 0x70 && size === 1) cmosIndex = value & 0x7f;
      else if (port === 0x71 && size === 1) cmos[cmosIndex] = value & 0xff;
    },
    clock,
    interceptIrqOut(path, cb): IrqIntercept {
      if (path !== "fakedev" && path !== "/machine/fakedev") {
        throw new UserError(`Device '${path}' not found`);
      }
      outIntercepts.add(cb);
      return { release: () => outIntercepts.delete(cb) };
    },
    interceptIrqIn(path, cb): IrqIntercept {
      if (path !== "ioapic") throw new UserError(`Device '${path}' not found`);
      const f = (l: number, v: boolean) => cb(l, v);
      return { release: () => void f };
    },
    setIrqIn(path, name, line, level) {
      if (path !== "ioapic") throw new UserError(`Device '${path}' not found`);
      inLevels.set(`${name}:${line}`, level);
    },
    raiseOut(n, level) {
      for (const cb of outIntercepts) cb(n, level);
    },
    deviceTypes: [
      {
        driver: "virtio-blk-device",
        desc: "",
        bus: "virtio-bus",
        category: "Storage",
        props: [{ name: "drive", type: "drive" }],
      },
      { driver: "virtio-rng-device", desc: "", bus: "virtio-bus", category: "Misc", props: [] },
    ],
    deviceAdd(driver, props, id) {
      if (state !== "prelaunch") throw new UserError("Bus 'virtio-mmio-bus.7' does not support hotplugging");
      const path = id ? `/machine/peripheral/${id}` : `/machine/peripheral-anon/device[${counter++}]`;
      devices.push({
        path,
        type: driver,
        props: Object.entries(props).map(([k, v]) => ({ name: k, type: "str", value: v })),
      });
      log.calls.push(`device_add ${driver} ${JSON.stringify(props)} ${id ?? ""}`);
      return path;
    },
    deviceDel(id) {
      const i = devices.findIndex((d) => d.path === `/machine/peripheral/${id}` || d.path === id);
      if (i < 0) throw new UserError(`Device '${id}' not found`);
      throw new UserError(`Bus 'virtio-mmio-bus.7' does not support hotplugging`);
    },
    infoMtree: (flat) => (flat ? "FlatView #0\n" : "address-space: memory\n"),
    infoQtree: () => "bus: main-system-bus\n  type System\n",
    qomObjects: () => devices,
    chardevs: (): ChardevView[] => [
      { label: "compat_monitor0", filename: "unix:mon.sock,server=on", frontendOpen: true },
      { label: "serial0", filename: "stdio", frontendOpen: true },
    ],
    blocks: (): BlockView[] => [{
      device: "test",
      nodeName: "#block116",
      file: "rootfs.ext4",
      format: "raw",
      readOnly: false,
      attachedTo: "/machine/peripheral-anon/device[0]",
      cache: { writeback: true, direct: false, noFlush: false },
      size: 64 << 20,
    }],
    infoNetwork: () => "",
    setLogItems(items) {
      log.logItems = items;
    },
    setLogFile(path) {
      log.logFile = path;
    },
  };
  return m;
}
