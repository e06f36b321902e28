/**
 * The KVM accelerator (Deno FFI on /dev/kvm): `KvmAccelerator implements Accelerator`.
 *
 * Threading: every vCPU runs on the thread that calls `run()` (the main thread), in synchronous
 * KVM_RUN slices; PIO/MMIO exits are dispatched to `board.io`/`board.mmio` right there, so devices run on
 * the vCPU thread as STYLE.md §2.5 asks. A per-thread POSIX timer sends SIGUSR2 to end a slice; SIGUSR2 is
 * blocked outside KVM_RUN and unblocked inside it (KVM_SET_SIGNAL_MASK), so a kick that lands while we
 * are dispatching an exit makes the next KVM_RUN return at once instead of being lost. Between slices
 * `run()` yields to the event loop with a MessageChannel macrotask. With more than one vCPU the slices
 * round-robin (a halted AP costs its slice: fine for bring-up, slow for SMP workloads).
 *
 * Interrupts: `irqchip: "split"` (QEMU microvm's default) keeps the LAPICs in the kernel; the board's
 * IOAPIC delivers through `board.msi` (KVM_SIGNAL_MSI), the PIC through `extInt` (KVM_INTERRUPT when the
 * vCPU opens an interrupt window). `"on"` adds the in-kernel PIC/IOAPIC/PIT (`gsiLine(n)` raises GSIs).
 * kvmclock is in-kernel; CPUID advertises it.
 * @module
 */
import type {
  AccelBoard,
  Accelerator,
  CpuEntryState,
  CpuRegisters,
  RunExit,
} from "../accel.ts";
import type { IrqLine, MsiSink } from "../types.ts";
import { UserError } from "../types.ts";
import { EAGAIN, EINTR, Libc, SIGUSR2, type ThreadTimer } from "./ffi.ts";
import * as K from "./kvm_api.ts";
import { shapeCpuid } from "./cpuid.ts";
import { KvmSystem, type KvmVm } from "./vm.ts";
import type { KvmVcpu } from "./vcpu.ts";
import { probeKvm, PVM_WARNING } from "./probe.ts";

export { checkKvmUsable, type KvmProbe, probeKvm, PVM_WARNING } from "./probe.ts";
export { type CpuidEntry, KvmSystem, KvmVm } from "./vm.ts";
export { KvmVcpu } from "./vcpu.ts";
export { FEATURE_BITS, hasFeature, shapeCpuid } from "./cpuid.ts";

/** How interrupts are split between the kernel and us (QEMU's `-accel kvm,kernel-irqchip=`). */
export type KernelIrqchip = "split" | "on" | "off";

/** Options of the KVM accelerator. */
export interface KvmOptions {
  /** Default "split" (QEMU microvm default). */
  irqchip?: KernelIrqchip;
  /** PIC interrupt acknowledge (INTA): returns the vector to inject for an ExtINT, or -1. */
  extIntAck?: () => number;
  /** Called with the vector when the guest EOIs a level-triggered IOAPIC interrupt (split irqchip). */
  onEoi?: (vector: number) => void;
  /** Longest time between event-loop yields, in ms (default 4). */
  sliceMs?: number;
  /** Device node (default /dev/kvm). */
  path?: string;
  /** One-line warnings (default: console.error). */
  warn?: (line: string) => void;
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
}

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
  readonly stats: KvmStats = { runs: 0, io: 0, mmio: 0, intr: 0, hlt: 0, irqWindow: 0, eoi: 0, msi: 0, extInt: 0 };

  readonly #opts: Required<Pick<KvmOptions, "irqchip" | "sliceMs" | "path">> & KvmOptions;
  #libc: Libc | null = null;
  #sys: KvmSystem | null = null;
  #vm: KvmVm | null = null;
  #vcpus: KvmVcpu[] = [];
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

  /** kernel-irqchip=on: an IrqLine driving in-kernel GSI `gsi` (KVM_IRQ_LINE). */
  gsiLine(gsi: number): IrqLine {
    return { set: (level: boolean) => void this.vm.irqLine(gsi, level) };
  }

  init(board: AccelBoard, entry: CpuEntryState): void {
    const warn = this.#opts.warn ?? ((l: string) => console.error(l));
    const probe = probeKvm({ path: this.#opts.path });
    if (!probe.present) throw new UserError("Could not access KVM kernel module: No such file or directory");
    this.pvm = probe.pvm;
    if (probe.pvm) warn(PVM_WARNING);
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
    this.#setupSignals(libc);
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
    try {
      for (;;) {
        const r = this.#slice();
        if (r !== null) return r;
        if (this.#allHalted()) await this.#idle();
        else await yieldNow();
        if (this.#stop) return { kind: "paused" };
      }
    } finally {
      this.#timer?.setPeriodUs(0);
      ch.port1.close();
      ch.port2.close();
      this.#running = false;
    }
  }

  /** Halted with no in-kernel LAPIC (irqchip=off): sleep until a clock deadline, an ExtINT or a stop. */
  #allHalted(): boolean {
    return this.#halted.length > 0 && this.#halted.every((h) => h) && !this.#extIntLevel;
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
    const n = this.#vcpus.length;
    const budgetMs = this.#opts.sliceMs / n;
    for (let i = 0; i < n; i++) {
      if (this.#halted[i] && !(i === 0 && this.#extIntLevel)) continue;
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
          return null;
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
      if (this.#stop) return { kind: "paused" };
      if ((++checks & 31) === 0) {
        const dl = clock.nextDeadline?.() ?? Infinity;
        if (dl <= clock.now()) clock.runDue?.();
        if (hostMs() >= endMs) return null;
      }
    }
  }

  #injectExtInt(vcpu: KvmVcpu): void {
    const run = vcpu.run;
    if (!this.#extIntLevel || this.#opts.extIntAck === undefined) {
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
      for (let j = 0; j < nd; j++) data.push("0x" + run.getBigUint64(K.RUN.internal_data + 8 * j, true).toString(16));
      return `KVM internal error. Suberror: ${sub}` + (data.length ? ` extra data: ${data.join(" ")}` : "");
    }
    if (reason === K.KVM_EXIT_FAIL_ENTRY) {
      const hw = run.getBigUint64(K.RUN.fail_entry_reason, true);
      return `KVM: entry failed, hardware error 0x${hw.toString(16)}`;
    }
    return `KVM: unexpected exit reason ${name}`;
  }

  requestStop(): void {
    // Callers run on the vCPU thread between KVM_RUNs (device handlers, event-loop callbacks), so the
    // flag is seen after the current exit; a Worker design would also tgkill the vCPU thread.
    this.#stop = true;
  }

  registers(index: number): CpuRegisters {
    const v = this.#vcpus[index];
    if (v === undefined) throw new UserError(`CPU ${index} does not exist`);
    const r = v.registers();
    if (this.#halted[index]) r.halted = true;
    return r;
  }

  reset(entry: CpuEntryState): void {
    this.#vcpus.forEach((v, i) => {
      this.#halted[i] = false;
      if (i === 0) v.setEntryState(entry);
      else if (this.#opts.irqchip !== "off") v.setMpState(K.KVM_MP_STATE_UNINITIALIZED);
    });
  }

  destroy(): void {
    this.#timer?.delete();
    this.#timer = null;
    if (this.#signalHandler !== null) {
      Deno.removeSignalListener("SIGUSR2", this.#signalHandler);
      this.#signalHandler = null;
      this.#libc?.unblockSignal(SIGUSR2);
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
