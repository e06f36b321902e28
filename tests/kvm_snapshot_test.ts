/**
 * KVM accelerator snapshots: run a guest to a midpoint (right after an OUT, or after an IN whose data KVM
 * has not consumed yet), saveState, push the record through the snapshot codec, load it into a fresh KVM
 * VM with a copy of RAM, continue; the joined trace and final registers must equal an uninterrupted run.
 * Bad records are refused with StateError and change nothing. Prints one `SKIP:` line without /dev/kvm.
 */
import assert from "node:assert/strict";
import { KvmAccelerator, probeKvm } from "../core/kvm/mod.ts";
import { decodeValue, encodeValue } from "../core/snapshot/codec.ts";
import { StateError, UserError } from "../core/types.ts";
import type { KvmState } from "../core/kvm/state.ts";
import * as S from "../core/kvm/state.ts";
import { guestFile } from "../core/host/guest_files.ts";
import { exitSeq, guest, runGuest, type TestGuest, TraceBoard } from "./kvm_guests.ts";

const KVM_PRESENT = probeKvm().usable;
if (!KVM_PRESENT) console.log("SKIP: /dev/kvm is absent or unusable: KVM snapshot tests not run");

/**
 * Long mode: set CR4.OSFXSR (sregs must carry it), count 1..10 out to port 0x80, read LSR (0x60) each round and
 * fold it into ebx (kvm_pvm cannot run SSE here, so XSAVE contents are carried but not exercised).
 */
const COUNTER: TestGuest = guest(
  "counter",
  "long",
  (a) => {
    a.b(0x0f, 0x20, 0xe0).b(0x0d).imm(0x600, 4).b(0x0f, 0x22, 0xe0); // cr4 |= OSFXSR | OSXMMEXCPT
    a.b(0xb9).imm(10, 4).b(0x31, 0xf6).b(0x31, 0xdb); // mov ecx,10; xor esi,esi; xor ebx,ebx
    a.label("top");
    a.b(0xff, 0xc6).b(0x01, 0xf3).b(0x89, 0xf0); // inc esi; add ebx,esi; mov eax,esi
    a.b(0x66, 0xba).imm(0x80, 2).b(0xee); // out 0x80, al
    a.b(0x8d, 0x3c, 0x1b); // lea edi,[rbx+rbx]
    a.b(0x66, 0xba).imm(0x3fd, 2).b(0xec); // in al, 0x3fd
    a.b(0x01, 0xc3); // add ebx,eax
    a.b(0xff, 0xc9).j8(0x75, "top"); // dec ecx; jnz top
    exitSeq(a);
  },
  [],
  { exit: "paused", trace: [], serial: "", regs: {} },
);

type Stop = { on: "out" | "in"; n: number };

/** Run COUNTER on a fresh KVM VM until the stop point; returns the board and the saved record (codec round trip). */
async function runToMidpoint(stop: Stop): Promise<{ board: TraceBoard; record: unknown }> {
  const board = new TraceBoard();
  board.load(COUNTER);
  const accel = new KvmAccelerator({ warn: () => {} });
  let seen = 0;
  if (stop.on === "out") {
    board.onIoWrite = (port) => {
      if (port === 0x80 && ++seen === stop.n) accel.requestStop();
    };
  } else {
    const read = board.io.read;
    (board.io as { read: typeof read }).read = (port, size) => {
      if (port === 0x3fd && ++seen === stop.n) accel.requestStop();
      return read(port, size);
    };
  }
  board.onExit = () => accel.requestStop();
  accel.init(board, COUNTER.entry);
  try {
    assert.equal((await accel.run()).kind, "paused");
    assert.equal(seen, stop.n);
    return { board, record: decodeValue(encodeValue(accel.saveState())) };
  } finally {
    accel.destroy();
  }
}

for (const stop of [{ on: "out", n: 4 }, { on: "in", n: 7 }] as Stop[]) {
  Deno.test({
    name:
      `KVM saveState/loadState mid-guest (after ${stop.on} #${stop.n}) continues like an uninterrupted run`,
    ignore: !KVM_PRESENT,
    async fn() {
      const ref = await runGuest(new KvmAccelerator({ warn: () => {} }), COUNTER);
      assert.equal(ref.exit.kind, "paused");
      assert.equal(ref.trace.filter((l) => l.startsWith("io.w 0x80 ")).length, 10);
      // ebx = sum(1..10) + 10 * 0x60; edi = 2 * (ebx before the last IN fold).
      assert.equal(ref.regs.gpr.rbx, 55n + 10n * 0x60n);
      assert.equal(ref.regs.gpr.rdi, 2n * (55n + 9n * 0x60n));

      const mid = await runToMidpoint(stop);
      const s = mid.record as KvmState;
      assert.equal(s.kind, "kvm");
      console.log("saved MSRs:", s.cpus[0].msrIndex.map((m) => m.toString(16)).join(" "));
      assert.ok(s.cpus[0].msrIndex.includes(0xc0000082), "LSTAR saved"); // EFER travels in sregs
      assert.ok(mid.board.trace.length > 0 && mid.board.trace.length < ref.trace.length);

      const board = new TraceBoard();
      board.ram.u8.set(mid.board.ram.u8);
      const accel = new KvmAccelerator({ warn: () => {} });
      board.onExit = () => accel.requestStop();
      // A different entry state: everything must come from the record.
      accel.init(board, { ...COUNTER.entry, regs: { ...COUNTER.entry.regs, rip: 0x5000n } });
      try {
        accel.loadState(mid.record);
        assert.equal((await accel.run()).kind, "paused");
        assert.deepEqual([...mid.board.trace, ...board.trace], ref.trace);
        assert.deepEqual(accel.registers(0).gpr, ref.regs.gpr);
        assert.deepEqual(accel.registers(0).cr, ref.regs.cr);
        assert.equal(accel.registers(0).efer, ref.regs.efer);
      } finally {
        accel.destroy();
      }
    },
  });
}

Deno.test({
  name: "KVM loadState refuses bad records with StateError and applies nothing",
  ignore: !KVM_PRESENT,
  async fn() {
    const { record } = await runToMidpoint({ on: "out", n: 2 });
    const s = record as KvmState;
    const board = new TraceBoard();
    board.load(COUNTER);
    const accel = new KvmAccelerator({ warn: () => {} });
    accel.init(board, COUNTER.entry);
    try {
      const before = accel.registers(0);
      const c0 = s.cpus[0];
      const bad: unknown[] = [
        null,
        { ...s, kind: "tcg" },
        { ...s, ncpus: 2 },
        { ...s, cpus: [{ ...c0, regs: c0.regs.slice(0, 100) }] },
        { ...s, cpus: [{ ...c0, events: "x" }] },
        { ...s, cpus: [{ ...c0, msrValue: c0.msrValue.slice(1) }] },
        { ...s, cpus: [{ ...c0, msrValue: c0.msrValue.map(() => -1n) }] },
        { ...s, cpus: [{ ...c0, lapic: null }] },
        { ...s, clock: new Uint8Array(3) },
      ];
      for (const b of bad) {
        assert.throws(() => accel.loadState(b), StateError, encodeValue(b).slice(0, 80));
      }
      assert.deepEqual(accel.registers(0), before);
      // The good record still loads.
      accel.loadState(record);
      assert.notDeepEqual(accel.registers(0).gpr.rip, before.gpr.rip);
    } finally {
      accel.destroy();
    }
  },
});

Deno.test({
  name: "KVM saveState refuses vCPUs in AP threads with one line",
  ignore: !KVM_PRESENT,
  fn() {
    const board = new TraceBoard({ ncpus: 2 });
    board.load(COUNTER);
    const accel = new KvmAccelerator({ warn: () => {} });
    accel.init(board, COUNTER.entry);
    try {
      assert.throws(
        () => accel.saveState(),
        UserError,
        "Migration with -accel kvm supports one vCPU only (-smp 1)",
      );
    } finally {
      accel.destroy();
    }
  },
});

/** Run main.ts with HMP on stdio, typing `cmds` one by one once the prompt is up; returns stdout+stderr. */
async function hmp(extra: string[], cmds: string[]): Promise<string> {
  const root = new URL("..", import.meta.url).pathname;
  const child = new Deno.Command("nice", {
    args: [
      "deno",
      "run",
      "-A",
      `${root}main.ts`,
      ...["-M", "microvm", "-accel", "kvm", "-m", "64m", "-smp", "1", "-kernel", await guestFile("vmlinux")],
      ...["-nodefaults", "-no-user-config", "-nographic", "-S", "-monitor", "stdio", ...extra],
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  let out = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) out += dec.decode(c);
  };
  const done = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const until = async (f: () => boolean) => {
    for (let i = 0; i < 1200 && !f(); i++) await new Promise((r) => setTimeout(r, 50));
  };
  const prompts = () => out.split("(qemu) ").length - 1;
  let sent = 0;
  const send = async (c: string) => {
    await until(() => prompts() > sent);
    sent++;
    await w.write(new TextEncoder().encode(c + "\n"));
  };
  for (const c of cmds) {
    await send(c);
    // Poll until a background migration has finished.
    for (
      let i = 0;
      i < 100 && c.startsWith("migrate ") && !/Migration status: (completed|failed)/.test(out);
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
      await send("info migrate");
    }
  }
  await until(() => prompts() > sent);
  await w.write(new TextEncoder().encode("quit\n"));
  await w.close().catch(() => {});
  await child.status;
  await done;
  return out;
}

Deno.test({
  name: "KVM migrate of a stopped VM to file: completes and a new process loads the stream",
  ignore: !KVM_PRESENT,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mvm-kvmsnap-" });
    try {
      const f = `${dir}/vm.mig`;
      const a = await hmp([], [`migrate file:${f}`]);
      assert.match(a, /Migration status: completed/, a);
      const b = await hmp(["-incoming", `file:${f}`], ["info status", "info registers"]);
      assert.match(b, /VM status: paused/, b);
      assert.match(b, /EIP=01000600/, b);
      assert.doesNotMatch(b, /refused|failed/, b);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("state.ts struct sizes, ioctl numbers and capabilities match <linux/kvm.h>", async () => {
  const names = [
    "KVM_GET_FPU",
    "KVM_SET_FPU",
    "KVM_GET_XSAVE",
    "KVM_SET_XSAVE",
    "KVM_GET_XCRS",
    "KVM_SET_XCRS",
    "KVM_GET_CLOCK",
    "KVM_SET_CLOCK",
    "KVM_CAP_ADJUST_CLOCK",
    "KVM_CAP_XSAVE",
    "KVM_CAP_XCRS",
  ] as const;
  const src = `#include <stdio.h>
#include <linux/kvm.h>
int main(void) {
  printf("%zu %zu %zu %zu\\n", sizeof(struct kvm_fpu), sizeof(struct kvm_xsave), sizeof(struct kvm_xcrs),
         sizeof(struct kvm_clock_data));
${names.map((n) => `  printf("%lu\\n", (unsigned long)(${n}));`).join("\n")}
  return 0;
}
`;
  const dir = await Deno.makeTempDir({ prefix: "kvm_state_layout_" });
  try {
    await Deno.writeTextFile(`${dir}/l.c`, src);
    let ok = false;
    try {
      ok =
        (await new Deno.Command("gcc", { args: ["-o", `${dir}/l`, `${dir}/l.c`], stderr: "null" }).output())
          .success;
    } catch (_e: unknown) {
      ok = false;
    }
    if (!ok) {
      console.log("SKIP: gcc or <linux/kvm.h> unavailable: state.ts layout cross-check not run");
      return;
    }
    const out = new TextDecoder().decode(
      (await new Deno.Command(`${dir}/l`, { stdout: "piped" }).output()).stdout,
    )
      .trim().split("\n");
    assert.deepEqual(out[0].split(" ").map(Number), [S.SIZE_FPU, S.SIZE_XSAVE, S.SIZE_XCRS, S.SIZE_CLOCK]);
    names.forEach((n, i) => assert.equal(Number(out[i + 1]), S[n], n));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
