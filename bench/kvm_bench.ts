/**
 * KVM exit throughput and start-up latency, TypeScript vs a C reference (bench/c/kvm_exits.c, built
 * with gcc here). Guests are tight real-mode loops: `out 0x80,al; jmp` (port I/O) and `mov [0],al` with
 * DS=0x2000 (MMIO at GPA 0x20000, outside RAM). Rows:
 *   C                     plain ioctl(KVM_RUN) loop in C
 *   TS raw FFI            KvmVcpu + Deno FFI KVM_RUN loop, reading the exit like C does
 *   TS KvmAccelerator     the real run loop: dispatch to board.io/board.mmio, clock polling, yields
 * Doorbells (virtio QueueNotify at 0xfeb00050, 32-bit guest), as MMIO exits vs ioeventfd (kernel-completed
 * write, poller thread kick, ring on the device thread):
 *   round trip            guest notifies, then spins until the device side bumps a counter in RAM
 *   storm                 guest notifies in a loop without waiting (guest writes/s; rings coalesce)
 * Usage: deno run -A bench/kvm_bench.ts [exits=200000]
 * @module
 */
import type { AccelBoard, DoorbellSource, IoBus, MmioBus } from "../core/accel.ts";
import type { Clock, MsiSink, Timer } from "../core/types.ts";
import { KvmAccelerator, KvmSystem, probeKvm } from "../core/kvm/mod.ts";
import { UserError } from "../core/types.ts";
import * as K from "../core/kvm/kvm_api.ts";
import {
  alignedSharedBytes,
  FlatRam,
  prot32Entry,
  realModeEntry,
  SMP_INIT_SIPI,
} from "../tests/kvm_guests.ts";

const PIO_LOOP = [0xe6, 0x80, 0xeb, 0xfc];
const MMIO_LOOP = [0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xa2, 0x00, 0x00, 0xeb, 0xfb];
const FIRST = [0xe6, 0xf4, 0xf4];

class StillClock implements Clock {
  now(): number {
    return 0;
  }
  timer(_cb: () => void): Timer {
    return { arm() {}, cancel() {}, armed: false, deadline: Infinity };
  }
}

/** A board that counts exits and asks the accelerator to stop after `limit`. */
class CountingBoard implements AccelBoard {
  readonly ram = new FlatRam(alignedSharedBytes(0x10000));
  readonly phys = this.ram;
  readonly clock = new StillClock();
  msi: MsiSink | null = null;
  ncpus = 1;
  readonly lapics = [];
  readonly cpuModel = "host";
  readonly cpuFeatures = [];
  readonly msrHandlers = [];
  readonly tscKhz = 1000000;
  count = 0;
  firstAt = -1;
  stop: () => void = () => {};
  readonly io: IoBus;
  readonly mmio: MmioBus;
  constructor(readonly limit: number, code: number[]) {
    this.ram.write(0x1000, new Uint8Array(code));
    const hit = () => {
      if (this.firstAt < 0) this.firstAt = Date.now() + (performance.now() % 1);
      if (++this.count >= this.limit) this.stop();
    };
    this.io = { read: () => 0xff, write: hit };
    this.mmio = { read: () => 0xffffffff, write: hit };
  }
}

const NOTIFY = 0xfeb00050;
/** top: mov eax,[600h]; mov dword [NOTIFY],0; wait: cmp [600h],eax; je wait; jmp top */
// deno-fmt-ignore
const RT_LOOP = [
  0xa1, 0x00, 0x06, 0x00, 0x00,
  0xc7, 0x05, 0x50, 0x00, 0xb0, 0xfe, 0x00, 0x00, 0x00, 0x00,
  0x39, 0x05, 0x00, 0x06, 0x00, 0x00,
  0x74, 0xf8,
  0xeb, 0xe7,
];
/** top: mov dword [NOTIFY],0; inc dword [604h]; jmp top */
// deno-fmt-ignore
const STORM_LOOP = [
  0xc7, 0x05, 0x50, 0x00, 0xb0, 0xfe, 0x00, 0x00, 0x00, 0x00,
  0xff, 0x05, 0x04, 0x06, 0x00, 0x00,
  0xeb, 0xee,
];

/** A 32-bit guest ringing the QueueNotify doorbell; the device side bumps the counter at 0x600. */
class DoorbellBoard extends CountingBoard {
  readonly doorbells?: DoorbellSource;
  rings = 0;
  constructor(limit: number, code: number[], ioeventfd: boolean) {
    super(limit, []);
    this.ram.write(0x1000, new Uint8Array(code));
    const gdt = SMP_INIT_SIPI.memory.find((m) => m.gpa === 0x500)!;
    this.ram.write(gdt.gpa, gdt.bytes);
    const ring = () => {
      this.rings++;
      this.ram.writeU32(0x600, this.ram.readU32(0x600) + 1);
      if (++this.count >= this.limit) this.stop();
    };
    (this as { mmio: MmioBus }).mmio = {
      read: () => 0xffffffff,
      write: (a, s, v) => {
        if (a === NOTIFY && s === 4 && v === 0) ring();
      },
    };
    if (ioeventfd) {
      this.doorbells = { list: () => [{ addr: NOTIFY, size: 4, value: 0, ring }], enabled: true };
    }
  }
}

/** Round trips per second, or (storm) guest doorbell writes per second over `ms` of wall time. */
async function tsDoorbell(
  ioeventfd: boolean,
  mode: "rt" | "storm",
  n: number,
): Promise<{ rate: number; rings: number; exits: number }> {
  const board = new DoorbellBoard(
    mode === "rt" ? n : Infinity,
    mode === "rt" ? RT_LOOP : STORM_LOOP,
    ioeventfd,
  );
  const accel = new KvmAccelerator({ warn: () => {} });
  board.stop = () => accel.requestStop();
  accel.init(board, prot32Entry());
  // Let the poller thread start before timing (its first module load is not what is measured).
  if (ioeventfd) await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.now();
  const timer = mode === "storm" ? setTimeout(() => accel.requestStop(), 1000) : undefined;
  await accel.run();
  clearTimeout(timer);
  const s = (performance.now() - t0) / 1000;
  const writes = mode === "rt" ? board.rings : board.ram.readU32(0x604);
  const exits = accel.stats.mmio + accel.stats.intr;
  accel.destroy();
  return { rate: writes / s, rings: board.rings / s, exits: exits / s };
}

/** The AP (in its worker) loops on `out 0x80,al`; the BSP sent INIT/SIPI and halts in the kernel. */
async function tsApForwarded(n: number): Promise<number> {
  const board = new CountingBoard(n, []);
  board.ncpus = 2;
  board.ram.write(0x1000, SMP_INIT_SIPI.code.subarray(0, 40)); // SVR + INIT + SIPI (4 x 10 bytes)
  board.ram.write(0x1028, new Uint8Array([0xfa, 0xf4, 0xeb, 0xfd])); // cli; hlt; jmp $-1
  board.ram.write(0x2000, new Uint8Array(PIO_LOOP));
  const accel = new KvmAccelerator({ warn: () => {} });
  board.stop = () => accel.requestStop();
  accel.init(board, prot32Entry());
  const gdt = SMP_INIT_SIPI.memory.find((m) => m.gpa === 0x500)!;
  board.ram.write(gdt.gpa, gdt.bytes);
  const t0 = performance.now();
  await accel.run();
  const s = (performance.now() - t0) / 1000;
  accel.destroy();
  return board.count / s;
}

async function tsAccel(code: number[], n: number): Promise<number> {
  const board = new CountingBoard(n, code);
  const accel = new KvmAccelerator({ warn: () => {} });
  board.stop = () => accel.requestStop();
  accel.init(board, realModeEntry());
  const t0 = performance.now();
  await accel.run();
  const s = (performance.now() - t0) / 1000;
  accel.destroy();
  return board.count / s;
}

function tsRaw(code: number[], n: number): number {
  const board = new CountingBoard(n, code);
  const sys = KvmSystem.open();
  const vm = sys.createVm();
  vm.setSystemAddresses();
  vm.mapMemory(board.phys);
  const vcpu = vm.createVcpu(0);
  vcpu.setEntryState(realModeEntry());
  const ioctl = sys.libc.ioctlFast;
  const run = vcpu.run;
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (ioctl(vcpu.fd, K.KVM_RUN, 0n) < 0) throw new Error(`KVM_RUN errno ${sys.libc.errno()}`);
    const r = run.getUint32(K.RUN.exit_reason, true);
    if (r === K.KVM_EXIT_IO) sink += run.getUint8(Number(run.getBigUint64(K.RUN.io_data_offset, true)));
    else if (r === K.KVM_EXIT_MMIO) sink += run.getUint8(K.RUN.mmio_data);
    else throw new Error(`exit ${K.exitReasonName(r)}`);
  }
  const s = (performance.now() - t0) / 1000;
  vcpu.close();
  vm.close();
  sys.close();
  if (sink < 0) console.log(sink);
  return n / s;
}

async function cRef(bin: string, mode: string, n: number): Promise<number> {
  const out = await new Deno.Command(bin, { args: [mode, String(n)], stdout: "piped" }).output();
  const [, exits, secs] = new TextDecoder().decode(out.stdout).trim().split(" ");
  return Number(exits) / Number(secs);
}

/** Child mode: report the wall-clock ms of the first guest exit. */
async function firstExitChild(): Promise<void> {
  const board = new CountingBoard(1, FIRST);
  const accel = new KvmAccelerator({ warn: () => {} });
  board.stop = () => accel.requestStop();
  accel.init(board, realModeEntry());
  await accel.run();
  accel.destroy();
  console.log(`first ${board.firstAt.toFixed(3)} ${performance.now().toFixed(3)}`);
}

async function spawnLatency(cmd: string, args: string[]): Promise<number> {
  const t0 = Date.now();
  const out = await new Deno.Command(cmd, { args, stdout: "piped" }).output();
  const first = Number(new TextDecoder().decode(out.stdout).trim().split(" ")[1]);
  return first - t0;
}

function fmt(x: number): string {
  return Math.round(x).toLocaleString("en-US").padStart(12);
}

async function main(): Promise<void> {
  if (Deno.args[0] === "--first") return await firstExitChild();
  // No usable KVM (no /dev/kvm at all on many hosts): say why in one line, no stack trace.
  const probe = probeKvm();
  if (!probe.usable) throw new UserError(`cannot run: /dev/kvm: ${probe.error}`);
  const n = Number(Deno.args[0] ?? 200000);
  const dir = await Deno.makeTempDir({ prefix: "kvm_bench_" });
  const bin = `${dir}/kvm_exits`;
  const src = new URL("./c/kvm_exits.c", import.meta.url).pathname;
  let cc: Deno.CommandOutput;
  try {
    cc = await new Deno.Command("gcc", { args: ["-O2", "-o", bin, src] }).output();
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw new UserError(`cannot build the C reference: gcc: ${(e as Error).message}`);
  }
  if (!cc.success) throw new UserError("gcc failed: " + new TextDecoder().decode(cc.stderr).split("\n")[0]);
  try {
    const rows: Array<[string, number, number]> = [];
    for (const [mode, code] of [["pio", PIO_LOOP], ["mmio", MMIO_LOOP]] as const) {
      const c = await cRef(bin, mode, n);
      const raw = tsRaw([...code], n);
      const acc = await tsAccel([...code], n);
      rows.push([`${mode} C reference`, c, 1]);
      rows.push([`${mode} TS raw FFI`, raw, raw / c]);
      rows.push([`${mode} TS KvmAccelerator`, acc, acc / c]);
      if (mode === "pio") {
        const ap = await tsApForwarded(Math.min(n, 50000));
        rows.push([`pio TS AP worker→main hop`, ap, ap / c]);
      }
    }
    console.log(`KVM exits/s (${n} exits per row; host /dev/kvm${probePvm() ? " = kvm_pvm" : ""})`);
    console.log("row".padEnd(28) + "exits/s".padStart(12) + "   vs C");
    for (const [name, v, ratio] of rows) console.log(name.padEnd(28) + fmt(v) + `   ${ratio.toFixed(2)}x`);
    const cLat = await spawnLatency(bin, ["first"]);
    const tsLat = await spawnLatency(Deno.execPath(), [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--first",
    ]);
    console.log(
      "process spawn → first guest exit (ms):  C " + cLat.toFixed(1) + "   TS (deno run) " + tsLat.toFixed(1),
    );
    console.log(
      "\ndoorbell (QueueNotify) path".padEnd(36) + "per s".padStart(12) + "  rings/s".padStart(12) +
        "  exits/s".padStart(12),
    );
    for (const mode of ["rt", "storm"] as const) {
      for (const io of [false, true]) {
        const r = await tsDoorbell(io, mode, Math.min(n, 50000));
        const name = `${mode === "rt" ? "round trip" : "storm (guest writes)"}, ${
          io ? "ioeventfd" : "MMIO exit"
        }`;
        console.log(name.padEnd(35) + fmt(r.rate) + fmt(r.rings) + fmt(r.exits));
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function probePvm(): boolean {
  try {
    Deno.statSync("/sys/module/kvm_pvm");
    return true;
  } catch (_e: unknown) {
    return false;
  }
}

try {
  await main();
} catch (e) {
  if (!(e instanceof UserError)) throw e;
  console.error(`kvm_bench: ${e.message}`);
  Deno.exit(1);
}
