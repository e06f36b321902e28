/**
 * KVM accelerator tests: struct layouts and ioctl numbers against the C headers (gcc), the guests'
 * listings (iced-x86), CPUID shaping and host probing (no /dev/kvm needed), then every test guest on
 * KVM against the trace-recording board, plus interrupt delivery (MSI under split irqchip, PIC ExtINT).
 * The KVM part prints one `SKIP: …` line when /dev/kvm is absent.
 */
import assert from "node:assert/strict";
import { Decoder, DecoderOptions, Formatter, FormatterSyntax } from "iced-x86";
import * as K from "../core/kvm/kvm_api.ts";
import { checkKvmUsable, KvmAccelerator, probeKvm, PVM_WARNING, shapeCpuid } from "../core/kvm/mod.ts";
import type { CpuidEntry } from "../core/kvm/vm.ts";
import { UserError } from "../core/types.ts";
import {
  IRQ_REQUEST_PORT,
  IRQ_TEST_GUESTS,
  KERNEL_PIC,
  KVM_TEST_GUESTS,
  realModeEntry,
  runGuest,
  SMP_INIT_SIPI,
  type TestGuest,
  TraceBoard,
  WAIT_FLAG,
} from "./kvm_guests.ts";

const KVM_PRESENT = probeKvm().usable;
if (!KVM_PRESENT) console.log("SKIP: /dev/kvm is absent or unusable: KVM guest tests not run");

// ---------------------------------------------------------------------------------------------------
// Layouts against the C headers.

const LAYOUT_C = `
#include <stdio.h>
#include <stddef.h>
#include <linux/kvm.h>
#define S(t) printf("size %s %zu\\n", #t, sizeof(struct t));
#define O(t,f,n) printf("off %s.%s %zu\\n", #t, n, offsetof(struct t, f));
#define I(n) printf("ioctl %s %lu\\n", #n, (unsigned long)(n));
#define C(n) printf("const %s %lu\\n", #n, (unsigned long)(n));
int main(void) {
  S(kvm_regs) S(kvm_sregs) S(kvm_segment) S(kvm_dtable) S(kvm_run) S(kvm_cpuid2) S(kvm_cpuid_entry2)
  S(kvm_msrs) S(kvm_msr_entry) S(kvm_userspace_memory_region) S(kvm_irq_level) S(kvm_msi) S(kvm_irqfd)
  S(kvm_ioeventfd) S(kvm_enable_cap) S(kvm_irq_routing) S(kvm_irq_routing_entry) S(kvm_pit_config)
  S(kvm_interrupt) S(kvm_vcpu_events) S(kvm_lapic_state) S(kvm_irqchip) S(kvm_pit_state2)
  O(kvm_vcpu_events,sipi_vector,"sipi_vector") O(kvm_vcpu_events,flags,"flags")
  O(kvm_regs,rax,"rax") O(kvm_regs,r8,"r8") O(kvm_regs,r15,"r15") O(kvm_regs,rip,"rip") O(kvm_regs,rflags,"rflags")
  O(kvm_regs,rsp,"rsp") O(kvm_regs,rbp,"rbp")
  O(kvm_sregs,cs,"cs") O(kvm_sregs,ds,"ds") O(kvm_sregs,es,"es") O(kvm_sregs,fs,"fs") O(kvm_sregs,gs,"gs")
  O(kvm_sregs,ss,"ss") O(kvm_sregs,tr,"tr") O(kvm_sregs,ldt,"ldt") O(kvm_sregs,gdt,"gdt") O(kvm_sregs,idt,"idt")
  O(kvm_sregs,cr0,"cr0") O(kvm_sregs,cr2,"cr2") O(kvm_sregs,cr3,"cr3") O(kvm_sregs,cr4,"cr4") O(kvm_sregs,cr8,"cr8")
  O(kvm_sregs,efer,"efer") O(kvm_sregs,apic_base,"apic_base") O(kvm_sregs,interrupt_bitmap,"interrupt_bitmap")
  O(kvm_segment,base,"base") O(kvm_segment,limit,"limit") O(kvm_segment,selector,"selector") O(kvm_segment,type,"type")
  O(kvm_segment,present,"present") O(kvm_segment,dpl,"dpl") O(kvm_segment,db,"db") O(kvm_segment,s,"s")
  O(kvm_segment,l,"l") O(kvm_segment,g,"g") O(kvm_segment,avl,"avl") O(kvm_segment,unusable,"unusable")
  O(kvm_dtable,base,"base") O(kvm_dtable,limit,"limit")
  O(kvm_run,request_interrupt_window,"request_interrupt_window") O(kvm_run,immediate_exit,"immediate_exit")
  O(kvm_run,exit_reason,"exit_reason") O(kvm_run,ready_for_interrupt_injection,"ready_for_interrupt_injection")
  O(kvm_run,if_flag,"if_flag") O(kvm_run,flags,"flags") O(kvm_run,cr8,"cr8") O(kvm_run,apic_base,"apic_base")
  O(kvm_run,io.direction,"io_direction") O(kvm_run,io.size,"io_size") O(kvm_run,io.port,"io_port")
  O(kvm_run,io.count,"io_count") O(kvm_run,io.data_offset,"io_data_offset")
  O(kvm_run,mmio.phys_addr,"mmio_phys_addr") O(kvm_run,mmio.data,"mmio_data") O(kvm_run,mmio.len,"mmio_len")
  O(kvm_run,mmio.is_write,"mmio_is_write") O(kvm_run,fail_entry.hardware_entry_failure_reason,"fail_entry_reason")
  O(kvm_run,internal.suberror,"internal_suberror") O(kvm_run,internal.ndata,"internal_ndata")
  O(kvm_run,internal.data,"internal_data") O(kvm_run,eoi.vector,"eoi_vector")
  O(kvm_run,system_event.type,"system_event_type") O(kvm_run,system_event.ndata,"system_event_ndata")
  O(kvm_run,kvm_valid_regs,"kvm_valid_regs") O(kvm_run,s,"s")
  O(kvm_cpuid2,nent,"nent") O(kvm_cpuid2,entries,"entries")
  O(kvm_cpuid_entry2,function,"function") O(kvm_cpuid_entry2,index,"index") O(kvm_cpuid_entry2,flags,"flags")
  O(kvm_cpuid_entry2,eax,"eax") O(kvm_cpuid_entry2,ebx,"ebx") O(kvm_cpuid_entry2,ecx,"ecx") O(kvm_cpuid_entry2,edx,"edx")
  O(kvm_msrs,nmsrs,"nmsrs") O(kvm_msrs,entries,"entries") O(kvm_msr_entry,index,"index") O(kvm_msr_entry,data,"data")
  O(kvm_userspace_memory_region,slot,"slot") O(kvm_userspace_memory_region,flags,"flags")
  O(kvm_userspace_memory_region,guest_phys_addr,"guest_phys_addr")
  O(kvm_userspace_memory_region,memory_size,"memory_size") O(kvm_userspace_memory_region,userspace_addr,"userspace_addr")
  O(kvm_irq_level,irq,"irq") O(kvm_irq_level,level,"level")
  O(kvm_msi,address_lo,"address_lo") O(kvm_msi,address_hi,"address_hi") O(kvm_msi,data,"data") O(kvm_msi,flags,"flags")
  O(kvm_msi,devid,"devid")
  O(kvm_irqfd,fd,"fd") O(kvm_irqfd,gsi,"gsi") O(kvm_irqfd,flags,"flags") O(kvm_irqfd,resamplefd,"resamplefd")
  O(kvm_ioeventfd,datamatch,"datamatch") O(kvm_ioeventfd,addr,"addr") O(kvm_ioeventfd,len,"len")
  O(kvm_ioeventfd,fd,"fd") O(kvm_ioeventfd,flags,"flags")
  O(kvm_enable_cap,cap,"cap") O(kvm_enable_cap,flags,"flags") O(kvm_enable_cap,args,"args")
  O(kvm_irq_routing,nr,"nr") O(kvm_irq_routing,entries,"entries")
  O(kvm_irq_routing_entry,gsi,"gsi") O(kvm_irq_routing_entry,type,"type") O(kvm_irq_routing_entry,flags,"flags")
  O(kvm_irq_routing_entry,u,"u")
  I(KVM_GET_API_VERSION) I(KVM_CREATE_VM) I(KVM_GET_MSR_INDEX_LIST) I(KVM_CHECK_EXTENSION) I(KVM_GET_VCPU_MMAP_SIZE)
  I(KVM_GET_SUPPORTED_CPUID) I(KVM_CREATE_VCPU) I(KVM_SET_USER_MEMORY_REGION) I(KVM_SET_TSS_ADDR)
  I(KVM_SET_IDENTITY_MAP_ADDR) I(KVM_CREATE_IRQCHIP) I(KVM_IRQ_LINE) I(KVM_IRQ_LINE_STATUS) I(KVM_SET_GSI_ROUTING)
  I(KVM_IRQFD) I(KVM_CREATE_PIT2) I(KVM_IOEVENTFD) I(KVM_RUN) I(KVM_GET_REGS) I(KVM_SET_REGS) I(KVM_GET_SREGS)
  I(KVM_SET_SREGS) I(KVM_INTERRUPT) I(KVM_GET_MSRS) I(KVM_SET_MSRS) I(KVM_SET_SIGNAL_MASK) I(KVM_GET_LAPIC)
  I(KVM_SET_LAPIC) I(KVM_SET_CPUID2) I(KVM_GET_CPUID2) I(KVM_GET_MP_STATE) I(KVM_SET_MP_STATE) I(KVM_NMI)
  I(KVM_GET_VCPU_EVENTS) I(KVM_SET_VCPU_EVENTS) I(KVM_SET_TSC_KHZ) I(KVM_GET_TSC_KHZ) I(KVM_ENABLE_CAP)
  I(KVM_SIGNAL_MSI) I(KVM_GET_IRQCHIP) I(KVM_SET_IRQCHIP) I(KVM_GET_PIT2) I(KVM_SET_PIT2)
  C(KVM_CAP_IRQCHIP) C(KVM_CAP_SET_TSS_ADDR) C(KVM_CAP_NR_MEMSLOTS) C(KVM_CAP_IRQ_ROUTING)
  C(KVM_CAP_SET_IDENTITY_MAP_ADDR) C(KVM_CAP_PIT2) C(KVM_CAP_IRQFD) C(KVM_CAP_IOEVENTFD) C(KVM_CAP_TSC_CONTROL)
  C(KVM_CAP_MAX_VCPUS) C(KVM_CAP_SIGNAL_MSI) C(KVM_CAP_READONLY_MEM) C(KVM_CAP_SPLIT_IRQCHIP) C(KVM_CAP_X2APIC_API)
  C(KVM_CAP_IMMEDIATE_EXIT) C(KVM_CAP_NR_VCPUS)
  C(KVM_EXIT_IO) C(KVM_EXIT_HLT) C(KVM_EXIT_MMIO) C(KVM_EXIT_IRQ_WINDOW_OPEN) C(KVM_EXIT_SHUTDOWN)
  C(KVM_EXIT_FAIL_ENTRY) C(KVM_EXIT_INTR) C(KVM_EXIT_INTERNAL_ERROR) C(KVM_EXIT_SYSTEM_EVENT) C(KVM_EXIT_IOAPIC_EOI)
  C(KVM_MEM_READONLY) C(KVM_IOEVENTFD_FLAG_PIO) C(KVM_IOEVENTFD_FLAG_DATAMATCH) C(KVM_IRQ_ROUTING_MSI)
  C(KVM_MP_STATE_HALTED) C(KVM_MP_STATE_UNINITIALIZED) C(KVM_MP_STATE_RUNNABLE)
  C(KVM_IRQCHIP_PIC_MASTER) C(KVM_IRQCHIP_PIC_SLAVE) C(KVM_IRQCHIP_IOAPIC)
  C(KVM_VCPUEVENT_VALID_NMI_PENDING) C(KVM_VCPUEVENT_VALID_SHADOW) C(KVM_IOEVENTFD_FLAG_DEASSIGN)
  C(KVM_IRQFD_FLAG_DEASSIGN)
  return 0;
}
`;

/** Our table of what the C program prints, keyed like its lines. */
function ourLayout(): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, v] of Object.entries(K.SIZE)) m.set(`size ${k}`, v);
  const off = (struct: string, table: Record<string, number>) => {
    for (const [f, v] of Object.entries(table)) m.set(`off ${struct}.${f}`, v);
  };
  off("kvm_regs", K.REGS);
  off("kvm_sregs", K.SREGS);
  off("kvm_segment", K.SEG);
  off("kvm_dtable", K.DTABLE);
  off("kvm_run", K.RUN);
  off("kvm_cpuid2", K.CPUID2);
  off("kvm_cpuid_entry2", K.CPUID_ENTRY);
  off("kvm_msrs", K.MSRS);
  off("kvm_msr_entry", K.MSR_ENTRY);
  off("kvm_userspace_memory_region", K.MEMREG);
  off("kvm_irq_level", K.IRQ_LEVEL);
  off("kvm_msi", K.MSI);
  off("kvm_irqfd", K.IRQFD);
  off("kvm_ioeventfd", K.IOEVENTFD);
  off("kvm_enable_cap", K.ENABLE_CAP);
  off("kvm_irq_routing", K.IRQ_ROUTING);
  off("kvm_irq_routing_entry", K.IRQ_ROUTING_ENTRY);
  off("kvm_vcpu_events", K.VCPU_EVENTS);
  for (const [k, v] of Object.entries(K)) {
    if (typeof v !== "number") continue;
    m.set(`ioctl ${k}`, v);
    m.set(`const ${k}`, v);
  }
  return m;
}

async function gccLayout(): Promise<Map<string, number> | null> {
  const dir = await Deno.makeTempDir({ prefix: "kvm_layout_" });
  try {
    await Deno.writeTextFile(`${dir}/l.c`, LAYOUT_C);
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command("gcc", { args: ["-o", `${dir}/l`, `${dir}/l.c`], stderr: "piped" })
        .output();
    } catch (_e: unknown) {
      return null; // no gcc
    }
    if (!out.success) return null; // no kernel headers
    const run = await new Deno.Command(`${dir}/l`, { stdout: "piped" }).output();
    const m = new Map<string, number>();
    for (const line of new TextDecoder().decode(run.stdout).trim().split("\n")) {
      const parts = line.split(" ");
      m.set(`${parts[0]} ${parts[1]}`, Number(parts[2]));
    }
    return m;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kvm_api struct sizes, offsets and ioctl numbers match <linux/kvm.h>", async () => {
  // Spot checks that hold without a compiler (values from the x86-64 uapi headers).
  assert.equal(K.SIZE.kvm_run, 2352);
  assert.equal(K.SIZE.kvm_sregs, 312);
  assert.equal(K.KVM_RUN, 0xae80);
  assert.equal(K.KVM_GET_SREGS, 0x8138ae83);
  assert.equal(K.KVM_SET_USER_MEMORY_REGION, 0x4020ae46);
  assert.equal(K.KVM_ENABLE_CAP, 0x4068aea3);
  assert.equal(K.KVM_SIGNAL_MSI, 0x4020aea5);
  const c = await gccLayout();
  if (c === null) {
    console.log("SKIP: gcc or <linux/kvm.h> unavailable: layout cross-check against C not run");
    return;
  }
  const ours = ourLayout();
  const diffs: string[] = [];
  for (const [k, v] of c) {
    const mine = ours.get(k);
    if (mine !== v) diffs.push(`${k}: C says ${v}, kvm_api.ts says ${mine}`);
  }
  assert.deepEqual(diffs, []);
  assert.ok(c.size > 150, `only ${c.size} layout facts compared`);
});

// ---------------------------------------------------------------------------------------------------
// Guests disassemble to their listings.

function disassemble(g: TestGuest): string[] {
  const bits = g.mode === "real" ? 16 : g.mode === "prot32" ? 32 : 64;
  const d = new Decoder(bits, g.code.subarray(0, g.codeSize), DecoderOptions.None);
  d.ip = BigInt(g.codeAddr);
  const f = new Formatter(FormatterSyntax.Nasm);
  const out: string[] = [];
  for (const ins of d.decodeAll()) {
    out.push(f.format(ins));
    ins.free();
  }
  d.free();
  f.free();
  return out;
}

Deno.test("kvm test guests disassemble to their listings", () => {
  for (const g of [...KVM_TEST_GUESTS, ...IRQ_TEST_GUESTS, SMP_INIT_SIPI, KERNEL_PIC, WAIT_FLAG]) {
    assert.deepEqual(disassemble(g), g.listing, g.name);
  }
});

// ---------------------------------------------------------------------------------------------------
// CPUID shaping and probing (pure).

function entry(fn: number, idx: number, eax: number, ebx: number, ecx: number, edx: number): CpuidEntry {
  return { function: fn, index: idx, flags: 0, eax, ebx, ecx, edx };
}

const SUPPORTED: CpuidEntry[] = [
  entry(0, 0, 0x1c, 0x68747541, 0x444d4163, 0x69746e65),
  entry(1, 0, 0x00a10f11, 0x01020800, 0x81202000, 0x078bfbff),
  entry(7, 0, 1, 0x01800002, 0x104, 0x20000000),
  entry(0xb, 0, 0, 0, 0, 1),
  entry(0x80000001, 0, 0x00a10f11, 0x40000000, 0x00400393, 0x23d3fbff),
  entry(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
  entry(0x40000001, 0, 0x01007efb, 0, 0, 0),
];

Deno.test("shapeCpuid sets APIC id and count, drops arch-capabilities on kvm_pvm, adds leaf 0x40000010", () => {
  const t = shapeCpuid(SUPPORTED, {
    model: "host",
    features: [],
    apicId: 3,
    ncpus: 4,
    tscKhz: 2500000,
    pvm: true,
  });
  const l1 = t.find((e) => e.function === 1)!;
  assert.equal(l1.ebx >>> 24, 3);
  assert.equal((l1.ebx >>> 16) & 0xff, 4);
  assert.equal((l1.edx >>> 28) & 1, 1);
  assert.equal((t.find((e) => e.function === 7)!.edx >>> 29) & 1, 0);
  const b1 = t.find((e) => e.function === 0xb && e.index === 1)!;
  assert.deepEqual([b1.eax, b1.ebx, b1.edx], [2, 4, 3]);
  assert.equal(t.find((e) => e.function === 0x40000000)!.eax, 0x40000010);
  assert.deepEqual(t.find((e) => e.function === 0x40000010)!.eax, 2500000);
  // The input is not modified.
  assert.equal(SUPPORTED[1].ebx, 0x01020800);
});

Deno.test("shapeCpuid applies -cpu +/- features and the qemu64 allow-list", () => {
  const warnings: string[] = [];
  const t = shapeCpuid(SUPPORTED, {
    model: "qemu64",
    features: [{ name: "x2apic", on: false }, { name: "kvmclock", on: false }, { name: "bogus", on: true }],
    apicId: 0,
    ncpus: 1,
    tscKhz: 0,
    pvm: false,
    warn: (l) => warnings.push(l),
  });
  const l1 = t.find((e) => e.function === 1)!;
  assert.equal((l1.ecx >>> 21) & 1, 0, "x2apic off");
  assert.equal((l1.ecx >>> 31) & 1, 1, "hypervisor stays on");
  assert.equal(t.find((e) => e.function === 7)!.ebx, 0, "qemu64 has no leaf 7 features");
  assert.equal(t.find((e) => e.function === 0x40000001)!.eax & 0x9, 0, "kvmclock bits 0 and 3 off");
  assert.equal(t.find((e) => e.function === 0x40000010), undefined);
  assert.deepEqual(warnings, ['warning: CPU feature "bogus" is not known to the KVM accelerator; ignored']);
});

Deno.test("probeKvm reports a missing device and checkKvmUsable throws QEMU's error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_probe_" });
  try {
    const p = probeKvm({ path: `${dir}/kvm`, sysModule: `${dir}/sys`, cpuinfo: `${dir}/cpuinfo` });
    assert.deepEqual(p, {
      present: false,
      usable: false,
      apiVersion: -1,
      pvm: false,
      error: "No such file or directory",
    });
    assert.throws(
      () => checkKvmUsable(p),
      (e: unknown) =>
        e instanceof UserError &&
        e.message === "Could not access KVM kernel module: No such file or directory",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("probeKvm detects kvm_pvm from sysfs or from cpuinfo without vmx/svm", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_probe_" });
  try {
    await Deno.mkdir(`${dir}/sys/kvm_pvm`, { recursive: true });
    await Deno.writeTextFile(`${dir}/cpuinfo`, "flags\t\t: fpu vme svm lm\n");
    assert.equal(
      probeKvm({ path: `${dir}/none`, sysModule: `${dir}/sys`, cpuinfo: `${dir}/cpuinfo` }).pvm,
      true,
    );
    await Deno.remove(`${dir}/sys/kvm_pvm`);
    assert.equal(
      probeKvm({ path: `${dir}/none`, sysModule: `${dir}/sys`, cpuinfo: `${dir}/cpuinfo` }).pvm,
      false,
    );
    await Deno.writeTextFile(`${dir}/cpuinfo`, "flags\t\t: fpu vme lm hypervisor\n");
    assert.equal(
      probeKvm({ path: `${dir}/none`, sysModule: `${dir}/sys`, cpuinfo: `${dir}/cpuinfo` }).pvm,
      true,
    );
    assert.equal(
      checkKvmUsable({ present: true, usable: true, apiVersion: 12, pvm: true, error: null }),
      PVM_WARNING,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("KvmAccelerator.init throws UserError when the device is missing", () => {
  const accel = new KvmAccelerator({ path: "/nonexistent/kvm", warn: () => {} });
  assert.throws(
    () => accel.init(new TraceBoard(), realModeEntry()),
    (e: unknown) =>
      e instanceof UserError && e.message === "Could not access KVM kernel module: No such file or directory",
  );
});

// ---------------------------------------------------------------------------------------------------
// Guests on KVM.

for (const g of KVM_TEST_GUESTS) {
  Deno.test({
    name: `KvmAccelerator runs guest "${g.name}" (${g.mode}) with the expected trace and registers`,
    ignore: !KVM_PRESENT,
    async fn() {
      const warnings: string[] = [];
      const r = await runGuest(new KvmAccelerator({ warn: (l) => warnings.push(l) }), g);
      assert.equal(r.exit.kind, g.expect.exit, JSON.stringify(r.exit));
      if (g.expect.reason !== undefined) assert.equal((r.exit as { reason: string }).reason, g.expect.reason);
      assert.deepEqual(r.trace, g.expect.trace);
      assert.equal(r.serial, g.expect.serial);
      for (const [name, v] of Object.entries(g.expect.regs)) {
        assert.equal(r.regs.gpr[name], v, `${name} = 0x${r.regs.gpr[name].toString(16)}`);
      }
      if (g.expect.halted !== undefined) assert.equal(r.regs.halted, g.expect.halted);
      assert.ok(warnings.length <= 1);
    },
  });
}

const IRQ_CASES = IRQ_TEST_GUESTS.flatMap((g) =>
  g.irq.kind === "extint"
    ? [{ g, how: "a PIC ExtINT (pushed on accel.extInt)", poll: false }, {
      g,
      how: "a PIC ExtINT (polled through extIntLevel)",
      poll: true,
    }]
    : [{ g, how: "a level-triggered MSI (split irqchip) and reports its EOI", poll: false }]
);

for (const { g, how, poll } of IRQ_CASES) {
  Deno.test({
    name: `KvmAccelerator delivers ${how} to guest "${g.name}"`,
    ignore: !KVM_PRESENT,
    async fn() {
      const board = new TraceBoard();
      const eois: number[] = [];
      let acks = 0;
      let picOutput = false;
      const accel = new KvmAccelerator({
        warn: () => {},
        onEoi: (v) => eois.push(v),
        extIntAck: () => {
          acks++;
          picOutput = false;
          accel.extInt.set(false);
          return g.irq.vector;
        },
        ...(poll ? { extIntLevel: () => picOutput } : {}),
      });
      board.onIoWrite = (port) => {
        if (port !== IRQ_REQUEST_PORT) return;
        if (g.irq.kind !== "extint") board.msi!.sendMsi(0xfee00000, g.irq.msiData);
        else if (poll) picOutput = true;
        else accel.extInt.set(true);
      };
      const r = await runGuest(accel, g, { board });
      assert.equal(r.exit.kind, g.expect.exit, JSON.stringify(r.exit));
      assert.deepEqual(r.trace, g.expect.trace);
      assert.equal(board.ram.readU8(0x600), 1, "handler ran");
      if (g.irq.kind === "extint") assert.equal(acks, 1);
      else assert.deepEqual(eois, [g.irq.vector], "level-triggered EOI reported through onEoi");
    },
  });
}

/** A clock on host time with the nextDeadline/runDue pair the lead's VirtualClock exposes. */
class PolledClock {
  readonly #t0 = performance.now();
  readonly #timers: Array<{ deadline: number; cb: () => void; armed: boolean }> = [];
  dueRuns = 0;
  now(): number {
    return Math.round((performance.now() - this.#t0) * 1e6);
  }
  timer(cb: () => void) {
    const t = { deadline: Infinity, cb, armed: false };
    this.#timers.push(t);
    return {
      arm(d: number) {
        t.deadline = d;
        t.armed = true;
      },
      cancel() {
        t.armed = false;
      },
      get armed() {
        return t.armed;
      },
      get deadline() {
        return t.deadline;
      },
    };
  }
  nextDeadline(): number {
    return Math.min(Infinity, ...this.#timers.filter((t) => t.armed).map((t) => t.deadline));
  }
  runDue(): void {
    this.dueRuns++;
    const now = this.now();
    for (const t of this.#timers) {
      if (t.armed && t.deadline <= now) {
        t.armed = false;
        t.cb();
      }
    }
  }
}

Deno.test({
  name: "KvmAccelerator fires clock timers from its run loop while the guest spins",
  ignore: !KVM_PRESENT,
  async fn() {
    const clock = new PolledClock();
    const board = new TraceBoard({ clock });
    clock.timer(() => board.ram.writeU8(0x600, 1)).arm(clock.now() + 2_000_000);
    const r = await runGuest(new KvmAccelerator({ warn: () => {} }), WAIT_FLAG, {
      board,
      maxYields: 1_000_000,
    });
    assert.equal(r.exit.kind, "paused");
    assert.deepEqual(r.trace, WAIT_FLAG.expect.trace);
    assert.ok(clock.dueRuns > 0);
  },
});

Deno.test({
  name: "KvmAccelerator runs the BSP with a second vCPU waiting for SIPI",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new TraceBoard({ ncpus: 2 });
    const r = await runGuest(new KvmAccelerator({ warn: () => {} }), KVM_TEST_GUESTS[0], { board });
    assert.equal(r.exit.kind, "paused");
    assert.equal(r.serial, "Hi!\n");
  },
});

Deno.test({
  name: "KvmAccelerator reports long-mode segment, control and EFER state through registers()",
  ignore: !KVM_PRESENT,
  async fn() {
    const g = KVM_TEST_GUESTS.find((x) => x.name === "long-mode")!;
    const r = await runGuest(new KvmAccelerator({ warn: () => {} }), g);
    assert.deepEqual(r.regs.seg.cs, g.entry.cs);
    assert.equal(r.regs.seg.ds.attrs & 0xff, 0x93);
    assert.equal(r.regs.efer & 0x500n, 0x500n);
    assert.equal(r.regs.cr.cr3, 0x10000n);
    assert.deepEqual(r.regs.gdt, g.entry.gdt);
  },
});

Deno.test({
  name: "KvmAccelerator.reset puts the BSP back to the entry state and the guest runs again",
  ignore: !KVM_PRESENT,
  async fn() {
    const g = KVM_TEST_GUESTS.find((x) => x.name === "rtc-cmos")!;
    const board = new TraceBoard();
    board.load(g);
    const accel = new KvmAccelerator({ warn: () => {} });
    board.onExit = () => accel.requestStop();
    accel.init(board, g.entry);
    try {
      assert.equal((await accel.run()).kind, "paused");
      accel.reset(g.entry);
      assert.equal(accel.registers(0).gpr.rip, 0x1000n);
      assert.equal((await accel.run()).kind, "paused");
      assert.deepEqual(board.trace, [...g.expect.trace, ...g.expect.trace]);
    } finally {
      accel.destroy();
    }
  },
});

Deno.test({
  name: "KvmAccelerator starts an AP with INIT/SIPI and forwards the AP's port I/O from its worker thread",
  ignore: !KVM_PRESENT,
  async fn() {
    for (const apThreads of [true, false]) {
      const board = new TraceBoard({ ncpus: 2 });
      const accel = new KvmAccelerator({ warn: () => {}, apThreads });
      const r = await runGuest(accel, SMP_INIT_SIPI, { board, maxYields: 100_000 });
      assert.equal(r.exit.kind, "paused", `apThreads=${apThreads}: ${JSON.stringify(r.exit)}`);
      assert.deepEqual(r.trace, SMP_INIT_SIPI.expect.trace);
      assert.equal(r.serial, "A");
    }
  },
});

Deno.test({
  name: "KvmAccelerator with kernel-irqchip=on raises a GSI through the in-kernel PIC (KVM_IRQ_LINE)",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new TraceBoard();
    const accel = new KvmAccelerator({ warn: () => {}, irqchip: "on" });
    board.onIoWrite = (port) => {
      if (port === IRQ_REQUEST_PORT) accel.gsiLine(4).set(true);
    };
    const r = await runGuest(accel, KERNEL_PIC, { board });
    assert.equal(r.exit.kind, "paused", JSON.stringify(r.exit));
    assert.deepEqual(r.trace, KERNEL_PIC.expect.trace);
    assert.equal(board.ram.readU8(0x600), 1, "handler ran");
  },
});
