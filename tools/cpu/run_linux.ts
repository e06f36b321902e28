/**
 * Development script: boot the default guest's kernel on the software CPU with the harness board
 * (no devices): `deno run -A tools/cpu/run_linux.ts [vmlinux|bzImage] [seconds] [extra cmdline]`.
 * Prints the serial console, MIPS, and the last instructions on a triple fault or timeout.
 * @module
 */
import { loadLinux } from "../../core/boot/mod.ts";
import { guestFile } from "../../core/host/guest_files.ts";
import { makeHarnessBoard } from "../../core/cpu/harness.ts";
import { SoftCpuAccelerator } from "../../core/cpu/mod.ts";
import { VirtualClock } from "../../core/clock.ts";
import type { LocalApicPort } from "../../core/accel.ts";

const kernelName = Deno.args[0] ?? "vmlinux";
const seconds = Number(Deno.args[1] ?? 20);
const extra = Deno.args[2] ?? "";
const kernel = await Deno.readFile(await guestFile(kernelName));
const initrd = await Deno.readFile(await guestFile("initramfs.cpio.gz"));
const enc = new TextEncoder();
let line = "";
// core/ must not import devices/: this harness has no LAPIC (the APIC is hidden from the guest);
// boot through main.ts for the full machine.
const clock = new VirtualClock({ mode: "host" });
const lapics: LocalApicPort[] = [];
const ncpus = 1;
const useLapic = false;
const { board, ram } = makeHarnessBoard({
  ramBytes: 512 << 20,
  kvmclock: true,
  clock,
  lapics,
  cpuFeatures: useLapic ? [] : [{ name: "apic", on: false }],
  ncpus,
  onSerial: (b) => {
    Deno.stdout.writeSync(new Uint8Array([b]));
    line = b === 10 ? "" : line + String.fromCharCode(b);
    if (line.endsWith("Run /init") || line.endsWith("GUEST-INIT-OK")) {
      const dt = (performance.now() - t0) / 1000;
      const st = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
      const cpuS = (Number(st[11]) + Number(st[12])) / 100;
      console.error(
        `\n[cpu] "${line.slice(-13)}" after ${dt.toFixed(2)} s (process cpu ${
          cpuS.toFixed(2)
        } s), ${accel.icount} instructions`,
      );
    }
  },
});
const boot = loadLinux(ram, {
  kernel,
  kernelName,
  initrd,
  initrdName: "initramfs.cpio.gz",
  cmdline: `earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t lpj=1000000 ${extra}`,
  layout: { below4g: 512 << 20, above4g: 0 },
  ncpus,
});
let t0 = performance.now();
const samples: number[] = [];
const stopAt = Number(Deno.env.get("CPU_STOP_AT") ?? 0);
const RING = 64;
const ring = new Float64Array(RING);
let ri = 0;
const accel = new SoftCpuAccelerator({
  log: (m) => console.error(`[cpu] ${m}`),
  logInterrupts: Deno.env.get("CPU_LOG_INT") === "1",
  jit: Deno.env.get("CPU_JIT") !== "0",
  sample: (_cpu, rip) => {
    if (sampler) samples.push(rip);
    if (stopAt && accel.cpus[0].icount >= stopAt) accel.requestStop();
  },
  trace: Deno.env.get("CPU_RING") === "1"
    ? (_cpu, rip) => {
      ring[ri++ & (RING - 1)] = rip;
    }
    : undefined,
});
accel.init(board, boot.entry);
t0 = performance.now();
const sampler = Deno.env.get("CPU_SAMPLE") === "1";
const timer = setTimeout(() => accel.requestStop(), seconds * 1000);
const exit = await accel.run();
clearTimeout(timer);
if (sampler) {
  Deno.writeTextFileSync(
    "/tmp/cpu_samples.txt",
    samples.map((r) => BigInt.asUintN(64, BigInt(r)).toString(16)).join("\n"),
  );
}
const dt = (performance.now() - t0) / 1000;
const n = accel.icount;
console.error(
  `\n[cpu] exit ${JSON.stringify(exit)} after ${n} instructions in ${dt.toFixed(2)} s = ${
    (n / dt / 1e6).toFixed(1)
  } MIPS`,
);
console.error(`[cpu] ${accel.infoJit().trimEnd().replaceAll("\n", "\n[cpu] ")}`);
const r = accel.registers(0);
console.error(
  `[cpu] rip=${r.gpr.rip.toString(16)} rsp=${r.gpr.rsp.toString(16)} cr0=${r.cr.cr0.toString(16)} cr3=${
    r.cr.cr3.toString(16)
  } efer=${r.efer.toString(16)} halted=${r.halted}`,
);
if (Deno.env.get("CPU_RING") === "1") {
  const out: string[] = [];
  for (let i = 0; i < RING; i++) out.push(ring[(ri + i) & (RING - 1)].toString(16));
  console.error(`[cpu] last rips: ${out.join(" ")}`);
}
void enc;
void line;
