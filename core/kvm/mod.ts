/**
 * The KVM accelerator (Deno FFI on /dev/kvm): `KvmAccelerator implements Accelerator`.
 *
 * Threading: vCPU 0 runs on the thread that calls `run()` (the device thread), in synchronous KVM_RUN
 * slices; its PIO/MMIO exits are dispatched to `board.io`/`board.mmio` right there (STYLE.md §2.5). A
 * per-thread POSIX timer sends SIGUSR2 to end a slice; SIGUSR2 is blocked outside KVM_RUN and unblocked
 * inside it (KVM_SET_SIGNAL_MASK), so a kick landing while an exit is dispatched makes the next KVM_RUN
 * return at once instead of being lost, and the pending signal is then consumed (sigtimedwait).
 * Between slices `run()` yields to the event loop with a MessageChannel macrotask.
 * APs (vCPU 1..n-1) each run in a Worker (worker.ts) and forward their exits to the device thread through
 * a SharedArrayBuffer mailbox plus a SIGUSR2 kick (`apThreads: false`: round-robin on one thread).
 *
 * Interrupts: `irqchip: "split"` (QEMU microvm's default) keeps the LAPICs in the kernel; the board's
 * IOAPIC delivers through `board.msi` (KVM_SIGNAL_MSI; level-triggered messages also get an MSI route so
 * KVM reports their EOI through `onEoi`), the PIC through `extInt`/`extIntLevel` + `extIntAck`
 * (KVM_INTERRUPT when the vCPU opens an interrupt window). `"on"` adds the in-kernel PIC/IOAPIC/PIT
 * (`gsiLine(n)` drives KVM_IRQ_LINE); the board is handed those lines through `useKernelIrqchip`, with
 * irqfd edge lines (`pulse`) for its notification interrupts. kvmclock is in-kernel; CPUID advertises it.
 *
 * Doorbells (`board.doorbells`, virtio-mmio QueueNotify with ioeventfd=on) complete in the kernel
 * (KVM_IOEVENTFD with datamatch); a poller thread (ioevent.ts) kicks this thread, which runs `ring()` for
 * each. They are deassigned while `doorbells.enabled` is false (plugin hooks must see every access).
 * On this host (kvm_pvm) a doorbell round trip costs ~4x an MMIO exit (thread hop + kick), so boards keep
 * ioeventfd off unless asked (`-global virtio-mmio.ioeventfd=on`); see bench/kvm_bench.ts. With
 * kernel-irqchip=off a vCPU halted in userspace is not woken by the kick (next slice, ≤ sliceMs).
 *
 * `reset()` is system_reset: entry state on the BSP, APs back to wait-for-SIPI, in-kernel LAPICs (and with
 * kernel-irqchip=on the PIC, IOAPIC and PIT) back to the state KVM gave them at creation, pending events
 * dropped, paravirtual MSRs (kvmclock, async PF, steal time, PV EOI) off.
 * @module
 */
import type {
  AccelBoard,
  Accelerator,
  CpuEntryState,
  CpuRegisters,
  DebugSettings,
  Doorbell,
  KernelIrqLines,
  RunExit,
} from "../accel.ts";
import { KvmDebug, kvmDebugFits } from "./debug.ts";
import type { IrqLine, MsiSink } from "../types.ts";
import { UserError } from "../types.ts";
import { EAGAIN, EFD_CLOEXEC, EFD_NONBLOCK, EINTR, Libc, SIGUSR2, type ThreadTimer } from "./ffi.ts";
import * as K from "./kvm_api.ts";
import { shapeCpuid } from "./cpuid.ts";
import { KvmSystem, type KvmVm } from "./vm.ts";
import { type KvmVcpu, MSR_IA32_APICBASE } from "./vcpu.ts";
import { IoEventPoller } from "./ioevent.ts";
import { probeKvm } from "./probe.ts";
import { type KvmStateHost, loadKvmState, saveKvmState, validateKvmState } from "./state.ts";
import {
  type ApStart,
  CTL_PAUSE,
  CTL_QUIT,
  CTL_RUN,
  EVT_RESET,
  EVT_SHUTDOWN,
  EVT_TRIPLE_FAULT,
  MB,
  REQ_EOI,
  REQ_EVENT,
  REQ_IO_READ,
  REQ_IO_WRITE,
  REQ_MMIO_READ,
  REQ_MMIO_WRITE,
} from "./worker.ts";

export { checkKvmUsable, type KvmProbe, probeKvm, PVM_WARNING } from "./probe.ts";
export { type CpuidEntry, IDENTITY_MAP_ADDR, KvmSystem, KvmVm, TSS_ADDR } from "./vm.ts";
export { KvmVcpu } from "./vcpu.ts";
export { IoEventPoller } from "./ioevent.ts";
export { FEATURE_BITS, hasFeature, shapeCpuid } from "./cpuid.ts";

/** How interrupts are split between the kernel and us (QEMU's `-accel kvm,kernel-irqchip=`). */
export type KernelIrqchip = "split" | "on" | "off";

/** Options of the KVM accelerator. */
export interface KvmOptions {
  /** Default "split" (QEMU microvm default). */
  irqchip?: KernelIrqchip;
  /** PIC interrupt acknowledge (INTA): returns the vector to inject for an ExtINT, or -1. */
  extIntAck?: () => number;
  /** PIC INT output level, polled before each KVM_RUN (alternative to driving `extInt`), e.g. `() => pic.output`. */
  extIntLevel?: () => boolean;
  /** Called with the vector when the guest EOIs a level-triggered IOAPIC interrupt (split irqchip). */
  onEoi?: (vector: number) => void;
  /** Longest time between event-loop yields, in ms (default 4). */
  sliceMs?: number;
  /** Device node (default /dev/kvm). */
  path?: string;
  /** One-line warnings (default: console.error). */
  warn?: (line: string) => void;
  /**
   * Run each AP (vCPU 1..n-1) in its own Worker, forwarding its PIO/MMIO exits to this thread (default
   * true). False: all vCPUs share this thread in round-robin slices.
   */
  apThreads?: boolean;
}

/** One AP worker: its Worker and the mailbox shared with it. */
interface ApThread {
  index: number;
  worker: Worker;
  mb: Int32Array;
}

/** Exit counters since init (cheap: plain increments). */
export interface KvmStats {
  runs: number;
  io: number;
  mmio: number;
  intr: number;
  hlt: number;
  irqWindow: number;
  eoi: number;
  msi: number;
  extInt: number;
  /** Doorbell writes completed in the kernel and rung on this thread (ioeventfd). */
  ioevent: number;
  /** Interrupts injected through irqfd (kernel-irqchip=on pulse lines). */
  irqfd: number;
}

/** Paravirtual MSRs QEMU zeroes on reset (kvm_put_msrs at KVM_PUT_RESET_STATE): kvmclock, async PF, steal time, PV EOI. */
const PV_RESET_MSRS: readonly number[] = [
  0x12, // MSR_KVM_SYSTEM_TIME
  0x4b564d01, // MSR_KVM_SYSTEM_TIME_NEW
  0x4b564d02, // MSR_KVM_ASYNC_PF_EN
  0x4b564d03, // MSR_KVM_STEAL_TIME
  0x4b564d04, // MSR_KVM_PV_EOI_EN
  0x4b564d06, // MSR_KVM_ASYNC_PF_INT
  0x6e0, // IA32_TSC_DEADLINE
];
/** IA32_APIC_BASE at reset: 0xfee00000, enabled (bit 11), BSP (bit 8) on vCPU 0 (SDM Vol. 3 §10.4.4). */
const APIC_BASE_RESET = 0xfee00000n | 0x800n;
const APIC_BASE_BSP = 0x100n;

type PollClock = { nextDeadline?: () => number; runDue?: () => void };

/** Milliseconds of host time (accelerator bookkeeping only; devices never see it). */
function hostMs(): number {
  return performance.now();
}

/** The KVM accelerator. */
export class KvmAccelerator implements Accelerator {
  readonly name = "kvm" as const;
  /** PIC INTR output → ExtINT injection into vCPU 0 (wire the PIC's output IrqLine here). */
  readonly extInt: IrqLine;
  readonly stats: KvmStats = {
    runs: 0,
    io: 0,
    mmio: 0,
    intr: 0,
    hlt: 0,
    irqWindow: 0,
    eoi: 0,
    msi: 0,
    extInt: 0,
    ioevent: 0,
    irqfd: 0,
  };

  readonly #opts: Required<Pick<KvmOptions, "irqchip" | "sliceMs" | "path">> & KvmOptions;
  #libc: Libc | null = null;
  #sys: KvmSystem | null = null;
  #vm: KvmVm | null = null;
  #vcpus: KvmVcpu[] = [];
  /** Guest debugging of vCPU 0 (gdbstub), or null. */
  #debug: KvmDebug | null = null;
  #board: AccelBoard | null = null;
  #timer: ThreadTimer | null = null;
  #signalHandler: (() => void) | null = null;
  #stop = false;
  #running = false;
  #extIntLevel = false;
  #halted: boolean[] = [];
  #generation = -1;
  #levelRoutes = new Map<number, number>();
  #routeList: Array<{ gsi: number; address: number; data: number }> = [];
  #aps: ApThread[] = [];
  /** Power-on register pages of the in-kernel LAPICs (KVM_GET_LAPIC at creation), for reset(). */
  #lapicReset: Uint8Array[] = [];
  /** Power-on PIC/IOAPIC and PIT state (kernel-irqchip=on), for reset(). */
  #irqchipReset: Uint8Array[] = [];
  #pitReset: Uint8Array | null = null;
  #poller: IoEventPoller | null = null;
  #doorbells: Array<{ db: Doorbell; fd: number }> = [];
  #doorbellsOn = false;
  #irqfds = new Map<number, number>();
  /** Last level sent per GSI through gsiLine (forgotten on reset, when the in-kernel chips restart). */
  readonly #gsiLevels = new Map<number, boolean>();
  readonly #one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  /** Host is kvm_pvm (set by init). */
  pvm = false;

  constructor(opts: KvmOptions = {}) {
    this.#opts = { irqchip: "split", sliceMs: 4, path: "/dev/kvm", ...opts };
    this.extInt = { set: (level: boolean) => (this.#extIntLevel = level) };
  }

  /** The KVM VM (after init): for irqfd/ioeventfd plumbing by the board. */
  get vm(): KvmVm {
    if (this.#vm === null) throw new Error("KvmAccelerator: init() has not run");
    return this.#vm;
  }

  /**
   * kernel-irqchip=on: an IrqLine driving in-kernel GSI `gsi` (KVM_IRQ_LINE). Only level changes reach the
   * kernel: repeating a level changes nothing there (no new edge, IRR already set), so it costs no ioctl.
   */
  gsiLine(gsi: number): IrqLine {
    const levels = this.#gsiLevels;
    return {
      set: (level: boolean) => {
        if (levels.get(gsi) === level) return;
        levels.set(gsi, level);
        this.vm.irqLine(gsi, level);
      },
    };
  }

  init(board: AccelBoard, entry: CpuEntryState): void {
    const warn = this.#opts.warn ?? ((l: string) => console.error(l));
    const probe = probeKvm({ path: this.#opts.path });
    if (!probe.present) throw new UserError("Could not access KVM kernel module: No such file or directory");
    // The PVM_WARNING line is the caller's to print (the CLI does, once, with its program prefix).
    this.pvm = probe.pvm;
    const libc = new Libc();
    this.#libc = libc;
    const sys = KvmSystem.open(this.#opts.path, libc);
    this.#sys = sys;
    const vm = sys.createVm();
    this.#vm = vm;
    this.#board = board;
    vm.setSystemAddresses();
    if (this.#opts.irqchip === "split") {
      vm.enableSplitIrqchip(24);
      try {
        vm.enableCap(K.KVM_CAP_X2APIC_API, [
          K.KVM_X2APIC_API_USE_32BIT_IDS | K.KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK,
        ]);
      } catch (_e: unknown) {
        // Older hosts: x2APIC ids above 255 are then unavailable, which an 8-vCPU microvm never needs.
      }
    } else if (this.#opts.irqchip === "on") {
      vm.createIrqchip(true);
    }
    vm.mapMemory(board.phys);
    this.#generation = board.phys.generation;
    board.msi = this.#msiSink(vm);
    const supported = sys.supportedCpuid();
    for (let i = 0; i < board.ncpus; i++) {
      const vcpu = vm.createVcpu(i);
      this.#vcpus.push(vcpu);
      this.#halted.push(false);
      vcpu.setCpuid(shapeCpuid(supported, {
        model: board.cpuModel,
        features: board.cpuFeatures,
        apicId: i,
        ncpus: board.ncpus,
        tscKhz: vcpu.tscKhz(),
        pvm: probe.pvm,
        warn: i === 0 ? warn : undefined,
      }));
    }
    this.#vcpus[0].setEntryState(entry);
    if (this.#opts.irqchip !== "off") this.#lapicReset = this.#vcpus.map((v) => v.getLapic());
    if (this.#opts.irqchip === "on") {
      this.#irqchipReset = [K.KVM_IRQCHIP_PIC_MASTER, K.KVM_IRQCHIP_PIC_SLAVE, K.KVM_IRQCHIP_IOAPIC].map((
        c,
      ) => vm.getIrqchip(c));
      this.#pitReset = vm.getPit2();
      const lines: KernelIrqLines = { line: (g) => this.gsiLine(g), pulse: (g) => this.irqfdLine(g) };
      board.useKernelIrqchip?.(lines);
    }
    this.#setupSignals(libc);
    this.#setupDoorbells(board, libc, warn);
    if (board.ncpus > 1 && this.#opts.apThreads !== false) this.#startAps(libc);
  }

  /**
   * kernel-irqchip=on: an edge IrqLine into in-kernel GSI `gsi` through KVM irqfd (an eventfd write per
   * set(true), no ioctl); one eventfd per GSI.
   */
  irqfdLine(gsi: number): { set(level: boolean): void } {
    const vm = this.vm;
    const libc = this.#libc!;
    let fd = this.#irqfds.get(gsi);
    if (fd === undefined) {
      fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      try {
        vm.irqfd(fd, gsi);
      } catch (e: unknown) {
        libc.close(fd);
        throw e;
      }
      this.#irqfds.set(gsi, fd);
    }
    const efd = fd;
    const one = this.#one;
    const st = this.stats;
    return {
      set: (level: boolean) => {
        if (!level) return;
        st.irqfd++;
        libc.write(efd, one);
      },
    };
  }

  /** Register the board's doorbells as ioeventfds served by a poller thread (nothing when it offers none). */
  #setupDoorbells(board: AccelBoard, libc: Libc, warn: (l: string) => void): void {
    const list = board.doorbells?.list() ?? [];
    if (list.length === 0) return;
    const poller = new IoEventPoller(libc, libc.gettid());
    const st = this.stats;
    for (const db of list) {
      const fd = poller.add(() => {
        st.ioevent++;
        db.ring();
      });
      if (fd === null) {
        warn(`warning: more than ${poller.size} doorbells: the rest use ordinary MMIO exits`);
        break;
      }
      this.#doorbells.push({ db, fd });
    }
    this.#poller = poller;
    this.#syncDoorbells();
    poller.start();
  }

  /** Assign or deassign every ioeventfd to follow `board.doorbells.enabled`. */
  #syncDoorbells(): void {
    const want = this.#board?.doorbells?.enabled ?? false;
    if (want === this.#doorbellsOn || this.#doorbells.length === 0) return;
    const vm = this.#vm!;
    const done: Array<{ db: Doorbell; fd: number }> = [];
    try {
      for (const d of this.#doorbells) {
        vm.ioeventfd(d.fd, d.db.addr, d.db.size, { datamatch: d.db.value, deassign: !want });
        done.push(d);
      }
    } catch (e: unknown) {
      // Undo a half-applied change so every doorbell is in one state (all exits when assignment failed).
      for (const d of done) {
        vm.ioeventfd(d.fd, d.db.addr, d.db.size, { datamatch: d.db.value, deassign: want });
      }
      if (want) {
        (this.#opts.warn ?? ((l: string) => console.error(l)))(
          `warning: ioeventfd unavailable (${(e as Error).message}): doorbells use ordinary MMIO exits`,
        );
        this.#doorbells = [];
        return;
      }
      throw e;
    }
    this.#doorbellsOn = want;
    // Writes that completed in the kernel before a deassign still have to reach their devices.
    if (!want) this.#poller?.drainAll();
  }

  #startAps(libc: Libc): void {
    const mainTid = libc.gettid();
    for (let i = 1; i < this.#vcpus.length; i++) {
      const mailbox = new SharedArrayBuffer(MB.length * 4);
      const mb = new Int32Array(mailbox);
      mb[MB.ctl] = CTL_PAUSE;
      const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
      const start: ApStart = { fd: this.#vcpus[i].fd, runSize: this.#sys!.runSize, mailbox, mainTid };
      worker.postMessage(start);
      this.#aps.push({ index: i, worker, mb });
    }
  }

  /** Serve pending AP requests on this (the device) thread; a RunExit when an AP stopped the machine. */
  #serviceAps(): RunExit | null {
    let exit: RunExit | null = null;
    const board = this.#board!;
    for (const ap of this.#aps) {
      const mb = ap.mb;
      if (Atomics.load(mb, MB.state) !== 1) continue;
      const addr = (mb[MB.addrLo] >>> 0) + (mb[MB.addrHi] >>> 0) * 0x100000000;
      const size = mb[MB.size] as 1 | 2 | 4;
      let value = mb[MB.value] >>> 0;
      try {
        switch (mb[MB.kind]) {
          case REQ_IO_READ:
            this.stats.io++;
            value = board.io.read(addr, size);
            break;
          case REQ_IO_WRITE:
            this.stats.io++;
            board.io.write(addr, size, value);
            break;
          case REQ_MMIO_READ:
            this.stats.mmio++;
            value = board.mmio.read(addr, size);
            break;
          case REQ_MMIO_WRITE:
            this.stats.mmio++;
            board.mmio.write(addr, size, value);
            break;
          case REQ_EOI:
            this.stats.eoi++;
            this.#opts.onEoi?.(value & 0xff);
            break;
          case REQ_EVENT:
            exit = value === EVT_TRIPLE_FAULT
              ? { kind: "shutdown", reason: "triple-fault" }
              : value === EVT_RESET
              ? { kind: "shutdown", reason: "guest-reset" }
              : value === EVT_SHUTDOWN
              ? { kind: "shutdown", reason: "guest-shutdown" }
              : { kind: "internal-error", message: `KVM internal error on CPU ${ap.index}` };
            break;
        }
      } catch (e: unknown) {
        exit = { kind: "internal-error", message: `device access from CPU ${ap.index} failed: ${String(e)}` };
      }
      mb[MB.value] = value | 0;
      Atomics.store(mb, MB.state, 2);
      Atomics.notify(mb, MB.state);
    }
    return exit;
  }

  /** Set every AP's control word and kick it out of KVM_RUN. */
  #controlAps(ctl: number): void {
    for (const ap of this.#aps) {
      Atomics.store(ap.mb, MB.ctl, ctl);
      Atomics.notify(ap.mb, MB.ctl);
      const tid = Atomics.load(ap.mb, MB.tid);
      if (ctl !== CTL_RUN && tid !== 0) this.#libc!.tgkill(tid, SIGUSR2);
    }
  }

  /** Wait (serving requests) until every AP is parked, at most `ms` milliseconds. */
  #waitApsParked(ms: number): void {
    const end = hostMs() + ms;
    for (;;) {
      this.#serviceAps();
      const waiting = this.#aps.filter((ap) => Atomics.load(ap.mb, MB.tid) !== 0 && ap.mb[MB.parked] !== 1);
      if (waiting.length === 0 || hostMs() > end) return;
      for (const ap of waiting) this.#libc!.tgkill(ap.mb[MB.tid], SIGUSR2);
      Atomics.wait(waiting[0].mb, MB.parked, 0, 1);
    }
  }

  #msiSink(vm: KvmVm): MsiSink {
    return {
      sendMsi: (address: number, data: number) => {
        this.stats.msi++;
        if ((data & 0x8000) !== 0 && this.#opts.onEoi !== undefined && this.#opts.irqchip === "split") {
          this.#ensureLevelRoute(vm, address, data);
        }
        vm.signalMsi(address, data);
      },
    };
  }

  /**
   * KVM only reports KVM_EXIT_IOAPIC_EOI for vectors it knows to be level-triggered IOAPIC routes, which
   * under split irqchip it learns from MSI routes on GSIs below the reserved pin count. Our IOAPIC talks
   * MSI only, so each distinct level-triggered message gets a pseudo-route on one of the 24 GSIs.
   */
  #ensureLevelRoute(vm: KvmVm, address: number, data: number): void {
    const key = (address >>> 0) * 0x10000 + (data & 0xffff);
    if (this.#levelRoutes.has(key) || this.#routeList.length >= 24) return;
    const gsi = this.#routeList.length;
    this.#levelRoutes.set(key, gsi);
    this.#routeList.push({ gsi, address, data });
    vm.setMsiRoutes(this.#routeList);
  }

  #setupSignals(libc: Libc): void {
    // A handler must exist (SIGUSR2's default action kills the process); Deno's does nothing harmful.
    this.#signalHandler = () => {};
    Deno.addSignalListener("SIGUSR2", this.#signalHandler);
    const old = libc.blockSignal(SIGUSR2);
    old[(SIGUSR2 - 1) >> 3] &= ~(1 << ((SIGUSR2 - 1) & 7));
    for (const v of this.#vcpus) v.setSignalMask(old);
    this.#timer = libc.threadTimer(libc.gettid(), SIGUSR2);
  }

  async run(): Promise<RunExit> {
    if (this.#board === null) throw new Error("KvmAccelerator: init() has not run");
    if (this.#running) throw new Error("KvmAccelerator: run() is already active");
    this.#running = true;
    this.#stop = false;
    const ch = new MessageChannel();
    let wake: (() => void) | null = null;
    ch.port1.onmessage = () => wake?.();
    const yieldNow = () =>
      new Promise<void>((resolve) => {
        wake = resolve;
        ch.port2.postMessage(0);
      });
    const stepping = this.#debug !== null && this.#debug.settings.singleStep >= 0;
    if (!stepping) this.#controlAps(CTL_RUN);
    try {
      if (stepping) {
        // One instruction on vCPU 0, the APs stay parked (KVM_GUESTDBG_SINGLESTEP).
        if (this.#debug!.settings.singleStep !== 0) {
          return { kind: "debug", cpu: this.#debug!.settings.singleStep, reason: "step" };
        }
        const clock = this.#board.clock as PollClock & AccelBoard["clock"];
        return this.#runVcpu(0, hostMs() + 1000, clock) ?? { kind: "debug", cpu: 0, reason: "step" };
      }
      for (;;) {
        const r = this.#slice();
        if (r !== null) return r;
        if (this.#allHalted()) await this.#idle();
        else await yieldNow();
        if (this.#stop) return { kind: "paused" };
      }
    } finally {
      this.#controlAps(CTL_PAUSE);
      this.#waitApsParked(500);
      this.#timer?.setPeriodUs(0);
      ch.port1.close();
      ch.port2.close();
      this.#running = false;
    }
  }

  /** Halted with no in-kernel LAPIC (irqchip=off): sleep until a clock deadline, an ExtINT or a stop. */
  #allHalted(): boolean {
    return this.#halted.length > 0 && this.#halted.every((h) => h) && !this.#extIntPending();
  }

  async #idle(): Promise<void> {
    const clock = this.#board!.clock as PollClock & AccelBoard["clock"];
    const dl = clock.nextDeadline?.() ?? Infinity;
    const ms = Math.max(0, Math.min(this.#opts.sliceMs, (dl - clock.now()) / 1e6));
    await new Promise((r) => setTimeout(r, ms));
  }

  /** One slice: every vCPU runs in turn until the slice timer fires; null means "yield and go on". */
  #slice(): RunExit | null {
    const board = this.#board!;
    const clock = board.clock as PollClock & AccelBoard["clock"];
    clock.runDue?.();
    if (this.#stop) return { kind: "paused" };
    if (board.phys.generation !== this.#generation) {
      this.#vm!.mapMemory(board.phys);
      this.#generation = board.phys.generation;
    }
    const ap = this.#serviceAps();
    if (ap !== null) return ap;
    if (this.#poller !== null) {
      this.#syncDoorbells();
      this.#poller.drain();
    }
    // With AP workers this thread runs vCPU 0 only.
    const n = this.#aps.length > 0 ? 1 : this.#vcpus.length;
    const budgetMs = this.#opts.sliceMs / n;
    for (let i = 0; i < n; i++) {
      if (this.#halted[i] && !(i === 0 && this.#extIntPending())) continue;
      let us = budgetMs * 1000;
      const dl = clock.nextDeadline?.() ?? Infinity;
      if (dl !== Infinity) us = Math.min(us, Math.max(20, (dl - clock.now()) / 1000));
      this.#timer!.setPeriodUs(us);
      const r = this.#runVcpu(i, hostMs() + budgetMs, clock);
      if (r !== null) {
        this.#timer!.setPeriodUs(0);
        return r;
      }
    }
    this.#timer!.setPeriodUs(0);
    return null;
  }

  #runVcpu(i: number, endMs: number, clock: PollClock & AccelBoard["clock"]): RunExit | null {
    const vcpu = this.#vcpus[i];
    const run = vcpu.run;
    const board = this.#board!;
    const libc = this.#libc!;
    const ioctl = libc.ioctlFast;
    const fd = vcpu.fd;
    const st = this.stats;
    let checks = 0;
    for (;;) {
      if (i === 0 && this.#opts.irqchip !== "on") this.#injectExtInt(vcpu);
      this.#halted[i] = false;
      const rc = ioctl(fd, K.KVM_RUN, 0n);
      st.runs++;
      if (rc < 0) {
        const e = libc.errno();
        if (e === EINTR || e === EAGAIN) {
          st.intr++;
          libc.eatSignal(SIGUSR2);
          // A kick from the ioeventfd poller: ring the doorbells and go on while the slice lasts.
          const rang = this.#poller !== null && this.#poller.drain() > 0;
          // A kick from an AP (or the slice timer): serve the APs, go on while the slice lasts.
          if (this.#aps.length === 0 && !rang) return null;
          const ap = this.#serviceAps();
          if (ap !== null) return ap;
          if (this.#stop) return { kind: "paused" };
          if (hostMs() >= endMs) return null;
          continue;
        }
        return { kind: "internal-error", message: `KVM_RUN failed: ${libc.strerror(e)} (errno ${e})` };
      }
      const reason = run.getUint32(K.RUN.exit_reason, true);
      try {
        switch (reason) {
          case K.KVM_EXIT_IO:
            st.io++;
            vcpu.dispatchIo(board.io);
            break;
          case K.KVM_EXIT_MMIO:
            st.mmio++;
            vcpu.dispatchMmio(board.mmio);
            break;
          case K.KVM_EXIT_INTR:
            st.intr++;
            return null;
          case K.KVM_EXIT_HLT:
            st.hlt++;
            this.#halted[i] = true;
            return null;
          case K.KVM_EXIT_IRQ_WINDOW_OPEN:
            st.irqWindow++;
            break;
          case K.KVM_EXIT_IOAPIC_EOI:
            st.eoi++;
            this.#opts.onEoi?.(run.getUint8(K.RUN.eoi_vector));
            break;
          case K.KVM_EXIT_SHUTDOWN:
            return { kind: "shutdown", reason: "triple-fault" };
          case K.KVM_EXIT_DEBUG:
            if (this.#debug) return this.#debug.exit(run, i);
            return { kind: "internal-error", message: this.#describeExit(vcpu, reason) };
          case K.KVM_EXIT_SYSTEM_EVENT: {
            const t = run.getUint32(K.RUN.system_event_type, true);
            if (t === K.KVM_SYSTEM_EVENT_RESET) return { kind: "shutdown", reason: "guest-reset" };
            if (t === K.KVM_SYSTEM_EVENT_SHUTDOWN) return { kind: "shutdown", reason: "guest-shutdown" };
            return { kind: "internal-error", message: `KVM system event ${t}` };
          }
          default:
            return { kind: "internal-error", message: this.#describeExit(vcpu, reason) };
        }
      } catch (e: unknown) {
        return { kind: "internal-error", message: `device access on KVM exit failed: ${String(e)}` };
      }
      if (this.#aps.length > 0) {
        const ap = this.#serviceAps();
        if (ap !== null) return ap;
      }
      if (this.#stop) return { kind: "paused" };
      if ((++checks & 31) === 0) {
        const dl = clock.nextDeadline?.() ?? Infinity;
        if (dl <= clock.now()) clock.runDue?.();
        if (hostMs() >= endMs) return null;
      }
    }
  }

  #extIntPending(): boolean {
    return this.#extIntLevel || (this.#opts.extIntLevel?.() ?? false);
  }

  #injectExtInt(vcpu: KvmVcpu): void {
    const run = vcpu.run;
    if (this.#opts.extIntAck === undefined || !this.#extIntPending()) {
      run.setUint8(K.RUN.request_interrupt_window, 0);
      return;
    }
    if (run.getUint8(K.RUN.ready_for_interrupt_injection) !== 0 && run.getUint8(K.RUN.if_flag) !== 0) {
      const vector = this.#opts.extIntAck();
      if (vector >= 0) {
        this.stats.extInt++;
        vcpu.interrupt(vector);
      }
      run.setUint8(K.RUN.request_interrupt_window, 0);
    } else {
      run.setUint8(K.RUN.request_interrupt_window, 1);
    }
  }

  #describeExit(vcpu: KvmVcpu, reason: number): string {
    const run = vcpu.run;
    const name = K.exitReasonName(reason);
    if (reason === K.KVM_EXIT_INTERNAL_ERROR) {
      const sub = run.getUint32(K.RUN.internal_suberror, true);
      const nd = Math.min(16, run.getUint32(K.RUN.internal_ndata, true));
      const data: string[] = [];
      for (let j = 0; j < nd; j++) {
        data.push("0x" + run.getBigUint64(K.RUN.internal_data + 8 * j, true).toString(16));
      }
      return `KVM internal error. Suberror: ${sub}` + (data.length ? ` extra data: ${data.join(" ")}` : "");
    }
    if (reason === K.KVM_EXIT_FAIL_ENTRY) {
      const hw = run.getBigUint64(K.RUN.fail_entry_reason, true);
      return `KVM: entry failed, hardware error 0x${hw.toString(16)}`;
    }
    return `KVM: unexpected exit reason ${name}`;
  }

  /** KVM_SET_GUEST_DEBUG on vCPU 0 (see debug.ts); null turns it off. */
  setDebug(d: DebugSettings | null): void {
    const v = this.#vcpus[0];
    if (!v || !this.#libc) return;
    const active = d !== null && (d.breakpoints.length + d.watchpoints.length > 0 || d.singleStep >= 0);
    if (!active) {
      if (this.#debug) KvmDebug.clear(this.#libc, v.fd);
      this.#debug = null;
      return;
    }
    const dbg = new KvmDebug(d);
    dbg.apply(this.#libc, v.fd, d.singleStep === 0);
    this.#debug = dbg;
  }

  /** Null when setDebug can arm `d` (four debug registers, no read-only watchpoints). */
  checkDebug(d: DebugSettings): string | null {
    return kvmDebugFits(d);
  }

  requestStop(): void {
    // Callers run on the vCPU thread between KVM_RUNs (device handlers, event-loop callbacks), so the
    // flag is seen after the current exit; a Worker design would also tgkill the vCPU thread.
    this.#stop = true;
  }

  registers(index: number): CpuRegisters {
    const v = this.#vcpus[index];
    if (v === undefined) throw new UserError(`CPU ${index} does not exist`);
    // An AP inside KVM_RUN holds its vCPU; a kick makes it let go.
    const ap = this.#aps.find((a) => a.index === index);
    if (ap !== undefined && ap.mb[MB.parked] !== 1 && ap.mb[MB.tid] !== 0) {
      this.#libc!.tgkill(ap.mb[MB.tid], SIGUSR2);
    }
    const r = v.registers();
    if (this.#halted[index]) r.halted = true;
    return r;
  }

  /** Snapshot/migration (core/kvm/state.ts). vCPUs in AP Worker threads are out of reach: -smp 1 only. */
  saveState(): unknown {
    return saveKvmState(this.#stateHost());
  }

  /** Restore saveState's record; StateError (nothing applied) on a bad one. */
  loadState(state: unknown): void {
    const h = this.#stateHost();
    validateKvmState(h, state);
    this.#poller?.discardAll();
    loadKvmState(h, state);
    this.#halted.fill(false);
  }

  #stateHost(): KvmStateHost {
    const [vm, sys] = [this.#vm, this.#sys];
    if (vm === null || sys === null) throw new Error("KvmAccelerator: init() has not run");
    if (this.#aps.length > 0) {
      throw new UserError("Migration with -accel kvm supports one vCPU only (-smp 1)");
    }
    const lapic = this.#opts.irqchip !== "off";
    const hasCap = (cap: number) => sys.checkExtension(cap) > 0;
    return { libc: this.#libc!, sysFd: sys.fd, vmFd: vm.fd, vcpus: this.#vcpus, lapic, hasCap };
  }

  reset(entry: CpuEntryState): void {
    const vm = this.#vm;
    if (vm === null) throw new Error("KvmAccelerator: init() has not run");
    // Doorbell writes from before the reset belong to the old guest: drop them.
    this.#poller?.discardAll();
    if (this.#opts.irqchip === "on") {
      this.#gsiLevels.clear();
      for (const chip of this.#irqchipReset) vm.setIrqchip(chip);
      if (this.#pitReset !== null) vm.setPit2(this.#pitReset);
    }
    this.#vcpus.forEach((v, i) => {
      this.#halted[i] = false;
      // APIC base first: KVM_SET_LAPIC reads the ID in the format of the current (xAPIC/x2APIC) mode.
      v.setMsrsLenient([
        { index: MSR_IA32_APICBASE, value: APIC_BASE_RESET | (i === 0 ? APIC_BASE_BSP : 0n) },
        ...PV_RESET_MSRS.map((index) => ({ index, value: 0n })),
      ]);
      const page = this.#lapicReset[i];
      if (page !== undefined) v.setLapic(page);
      v.clearEvents();
      if (i === 0) {
        v.setEntryState(entry);
        if (this.#opts.irqchip !== "off") v.setMpState(K.KVM_MP_STATE_RUNNABLE);
      } else if (this.#opts.irqchip !== "off") {
        v.setMpState(K.KVM_MP_STATE_UNINITIALIZED);
      }
    });
  }

  destroy(): void {
    this.#poller?.close();
    this.#poller = null;
    this.#doorbells = [];
    this.#doorbellsOn = false;
    for (const fd of this.#irqfds.values()) this.#libc?.close(fd);
    this.#irqfds.clear();
    if (this.#opts.irqchip === "on") this.#board?.useKernelIrqchip?.(null);
    if (this.#aps.length > 0) {
      this.#controlAps(CTL_QUIT);
      this.#waitApsParked(500);
      for (const ap of this.#aps) ap.worker.terminate();
      this.#aps = [];
    }
    this.#timer?.delete();
    this.#timer = null;
    if (this.#signalHandler !== null) {
      // Drop kicks still pending (slice timer, APs) before unblocking: with the listener gone the
      // default action of SIGUSR2 would end the process.
      this.#libc?.eatSignal(SIGUSR2);
      this.#libc?.unblockSignal(SIGUSR2);
      Deno.removeSignalListener("SIGUSR2", this.#signalHandler);
      this.#signalHandler = null;
    }
    for (const v of this.#vcpus) v.close();
    this.#vcpus = [];
    this.#vm?.close();
    this.#vm = null;
    this.#sys?.close();
    this.#sys = null;
    if (this.#board !== null) this.#board.msi = null;
    this.#board = null;
  }
}
