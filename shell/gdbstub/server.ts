/**
 * The gdbstub: one GDB remote-protocol session over a character stream, answering as QEMU 7.2's gdbstub.c does
 * for x86-64 system emulation. vCPUs are threads (pid 1, tid = index + 1); breakpoints and watchpoints are
 * handed to the accelerator (`Accelerator.setDebug`), never patched into guest memory; `monitor …` runs HMP.
 * Packets and their answers are in {@link GdbSession.handle}; transport and run-state glue in {@link GdbStub}.
 * @module
 */
import type {
  Accelerator,
  CpuRegisters,
  DebugExit,
  DebugRegisters,
  DebugSettings,
  DebugWatch,
} from "../../core/accel.ts";
import { GPR_NAMES } from "../../core/accel.ts";
import type { MachineIface } from "../machine_iface.ts";
import type { MonitorStream } from "../monitor_server.ts";
import { HmpSession } from "../hmp.ts";
import { translate } from "../hmp_mem.ts";
import {
  bytesToText,
  escapeBinary,
  framePacket,
  fromHex,
  MAX_PACKET_LENGTH,
  PacketReader,
  textToBytes,
  toHex,
  utf8,
} from "./packet.ts";
import { FEATURE_FILES, readAll, readReg, REGS, writeAll, writeReg } from "./regs.ts";

/** What the stub needs from the running VM (shell/gdbstub/mod.ts builds it over the runner). */
export interface GdbTarget {
  readonly machine: MachineIface;
  /** The accelerator's debug access; null without a CPU (qtest). */
  readonly accel:
    | Pick<Accelerator, "setDebug" | "checkDebug" | "debugRegisters" | "setDebugRegisters">
    | null;
  readonly ncpus: number;
  /** Why the vCPUs last stopped in run state "debug". */
  readonly lastDebug: DebugExit | null;
  /** Stop the vCPUs (QEMU vm_stop(RUN_STATE_PAUSED)); nothing unless running. */
  stop(): void;
  /** Resume from prelaunch, paused or debug. */
  resume(): void;
  /** `k` / `vKill`: "QEMU: Terminated via GDBstub", exit 0. */
  kill(): void;
}

const GDB_SIGNAL_INT = 2, GDB_SIGNAL_QUIT = 3, GDB_SIGNAL_TRAP = 5, GDB_SIGNAL_ABRT = 6;
/** QEMU's single-step flags: SSTEP_ENABLE | SSTEP_NOIRQ | SSTEP_NOTIMER. */
const SSTEP_ALL = 7;

interface Bp {
  type: number;
  addr: number;
  len: number;
}

/** A parsed thread-id: all threads, one vCPU (index), or an error. */
type ThreadSel = { kind: "all" } | { kind: "one"; cpu: number | null } | { kind: "err" };

function hexNum(s: string): bigint | null {
  if (!/^[0-9a-fA-F]+$/.test(s)) return null;
  return BigInt("0x" + s);
}

/** A linear address from gdb (64-bit) as the CPU's signed number. */
function linear(a: bigint): number {
  return Number(BigInt.asIntN(64, a));
}

/**
 * One client's protocol state. `send` writes a framed packet; the owner feeds decoded packets to `handle` and
 * reports VM stops with `stopped()`.
 */
export class GdbSession {
  readonly #t: GdbTarget;
  readonly #send: (payload: Uint8Array) => void;
  multiprocess = false;
  #hasXml = false;
  #gCpu = 0;
  #cCpu = 0;
  #attached = true;
  #queryCpu = 0;
  #sstepFlags = SSTEP_ALL;
  #phyMem = false;
  readonly #bps: Bp[] = [];
  /** c/s/vCont sent: the next VM stop is reported. */
  waiting = false;
  #hmp: HmpSession | null = null;

  constructor(target: GdbTarget, send: (payload: Uint8Array) => void) {
    this.#t = target;
    this.#send = send;
  }

  #reply(s: string): void {
    this.#send(textToBytes(s));
  }

  #tid(cpu: number): string {
    const t = (cpu + 1).toString(16).padStart(2, "0");
    return this.multiprocess ? `p01.${t}` : t;
  }

  /** Remove every breakpoint and watchpoint (and hand the accelerator a clean state). */
  removeAll(): void {
    this.#bps.length = 0;
    this.#t.accel?.setDebug?.(null);
  }

  /** The stop reply for the current run state (gdb_vm_state_change). */
  stopReply(): string {
    const t = this.#t;
    const st = t.machine.runState;
    const d = t.lastDebug;
    if (st === "debug" && d) {
      this.#cCpu = this.#gCpu = d.cpu;
      if (d.reason === "watchpoint" && d.watch) {
        const kind = d.watch.type === "read" ? "r" : d.watch.type === "access" ? "a" : "";
        const addr = BigInt.asUintN(64, BigInt(d.watch.addr)).toString(16).padStart(16, "0");
        return `T${hex2(GDB_SIGNAL_TRAP)}thread:${this.#tid(d.cpu)};${kind}watch:${addr};`;
      }
      return `T${hex2(GDB_SIGNAL_TRAP)}thread:${this.#tid(d.cpu)};`;
    }
    const sig = st === "shutdown"
      ? GDB_SIGNAL_QUIT
      : st === "internal-error"
      ? GDB_SIGNAL_ABRT
      : GDB_SIGNAL_INT;
    return `T${hex2(sig)}thread:${this.#tid(this.#cCpu)};`;
  }

  /** The VM stopped: send the stop reply if gdb is waiting for one. */
  stopped(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.#t.accel?.setDebug?.(null);
    this.#reply(this.stopReply());
  }

  /** Handle one packet (its payload, escapes and run-lengths already decoded). */
  handle(data: Uint8Array): void {
    const p = bytesToText(data);
    if (p === "") return this.#reply("");
    const rest = p.slice(1);
    switch (p[0]) {
      case "?":
        this.#reply(`T${hex2(GDB_SIGNAL_TRAP)}thread:${this.#tid(this.#cCpu)};`);
        this.removeAll();
        return;
      case "c":
      case "s": {
        if (rest !== "") {
          const a = hexNum(rest);
          if (a === null) return this.#reply("");
          this.#setPc(this.#cCpu, a);
        }
        return this.#resume(p[0] === "s" ? this.#cCpu : -1);
      }
      case "C":
      case "S": {
        const m = /^([0-9a-fA-F]+)(?:;([0-9a-fA-F]+))?$/.exec(rest);
        if (!m) return this.#reply("");
        if (m[2] !== undefined) this.#setPc(this.#cCpu, BigInt("0x" + m[2]));
        return this.#resume(p[0] === "S" ? this.#cCpu : -1);
      }
      case "D":
        return this.#detach(rest);
      case "k":
        return this.#kill();
      case "g":
        return this.#withRegs(this.#gCpu, (r) => this.#reply(toHex(readAll(r))));
      case "G":
        if (rest === "") return;
        if (!this.#t.accel?.setDebugRegisters) return this.#reply("E14");
        return this.#withRegs(this.#gCpu, (r) => {
          writeAll(r, fromHex(rest));
          this.#t.accel?.setDebugRegisters?.(this.#gCpu, r);
          this.#reply("OK");
        });
      case "p": {
        if (!this.#hasXml) return this.#reply("");
        const n = hexNum(rest);
        if (n === null) return this.#reply(rest === "" ? "E14" : "");
        return this.#withRegs(this.#gCpu, (r) => {
          const b = n < BigInt(REGS.length) ? readReg(r, Number(n)) : new Uint8Array(0);
          this.#reply(b.length ? toHex(b) : "E14");
        });
      }
      case "P": {
        if (!this.#hasXml) return this.#reply("");
        const m = /^([0-9a-fA-F]+)=([0-9a-fA-F]*)$/.exec(rest);
        if (!m) return this.#reply(/^[0-9a-fA-F]+$/.test(rest) ? "E22" : "");
        const n = Number(BigInt("0x" + m[1]));
        if (!this.#t.accel?.setDebugRegisters) return this.#reply("E14");
        return this.#withRegs(this.#gCpu, (r) => {
          writeReg(r, n, fromHex(m[2]));
          this.#t.accel?.setDebugRegisters?.(this.#gCpu, r);
          this.#reply("OK");
        });
      }
      case "m":
        return this.#readMem(rest);
      case "M":
        return this.#writeMem(rest, false, data);
      case "X":
        return this.#writeMem(rest, true, data);
      case "Z":
      case "z":
        return this.#breakpoint(p[0] === "Z", rest);
      case "H":
        return this.#setThread(rest);
      case "T": {
        const sel = this.#thread(rest);
        if (sel.kind === "err") return this.#reply("");
        return this.#reply(sel.kind === "one" && sel.cpu === null ? "E22" : "OK");
      }
      case "q":
        return this.#query(rest);
      case "Q":
        return this.#set(rest);
      case "v":
        return this.#v(rest);
      default:
        return this.#reply("");
    }
  }

  // --- run control ----------------------------------------------------------------------------------

  #resume(stepCpu: number): void {
    const t = this.#t;
    const st = t.machine.runState;
    if (st === "shutdown" || st === "internal-error") return; // runstate_needs_reset: nothing runs
    if (stepCpu >= 0 && !t.accel?.setDebug) return this.#reply("E22");
    t.accel?.setDebug?.(this.#settings(stepCpu));
    this.waiting = true;
    t.resume();
  }

  #settings(singleStep: number, bps: Bp[] = this.#bps): DebugSettings {
    const watch: DebugWatch[] = bps.filter((b) => b.type >= 2).map((b) => ({
      addr: b.addr,
      len: b.len,
      type: b.type === 2 ? "write" : b.type === 3 ? "read" : "access",
    }));
    return { breakpoints: bps.filter((b) => b.type <= 1).map((b) => b.addr), watchpoints: watch, singleStep };
  }

  #setPc(cpu: number, a: bigint): void {
    this.#withRegs(cpu, (r) => {
      r.rip = a;
      this.#t.accel?.setDebugRegisters?.(cpu, r);
    });
  }

  #detach(rest: string): void {
    if (this.multiprocess) {
      const m = /^;([0-9a-fA-F]+)$/.exec(rest);
      if (!m) return this.#reply("E22");
      if (BigInt("0x" + m[1]) !== 1n) return this.#reply("E22");
    }
    this.removeAll();
    this.#attached = false;
    this.#reply("OK");
    this.waiting = false;
    this.#t.resume();
  }

  #kill(): void {
    this.#t.kill();
  }

  // --- registers and memory -------------------------------------------------------------------------

  #withRegs(cpu: number, fn: (r: DebugRegisters) => void): void {
    const a = this.#t.accel;
    if (a?.debugRegisters) return fn(a.debugRegisters(cpu));
    // Accelerators without a debug register file (KVM): the monitor's registers, x87/SSE as at reset.
    const c = this.#t.machine.cpus()[cpu];
    if (!c) return this.#reply("E14");
    fn(fromCpuRegisters(c.registers()));
  }

  /** Guest-physical address of each page piece of [addr, addr+len), or null when unmapped. */
  #pieces(addr: bigint, len: number): Array<{ pa: number; n: number }> | null {
    const out: Array<{ pa: number; n: number }> = [];
    const m = this.#t.machine;
    const regs = this.#phyMem ? null : m.cpus()[this.#gCpu]?.registers();
    let a = addr;
    let left = len;
    while (left > 0) {
      const n = Math.min(left, 4096 - Number(a & 0xfffn));
      let pa: bigint | null = BigInt.asUintN(64, a);
      if (regs) pa = translate(regs, a, (p, l) => m.memRead(p, l));
      if (pa === null || pa + BigInt(n) > BigInt(Number.MAX_SAFE_INTEGER)) return null;
      out.push({ pa: Number(pa), n });
      a += BigInt(n);
      left -= n;
    }
    return out;
  }

  #readMem(rest: string): void {
    const m = /^([0-9a-fA-F]+)(?:,([0-9a-fA-F]*))?$/.exec(rest);
    if (!m) return this.#reply("");
    if (m[2] === undefined) return this.#reply("E22");
    if (m[2] === "") return this.#reply("");
    const addr = BigInt("0x" + m[1]);
    const len = BigInt("0x" + m[2]);
    if (len > BigInt(MAX_PACKET_LENGTH / 2)) return this.#reply("E22");
    const pieces = this.#pieces(addr, Number(len));
    if (!pieces) return this.#reply("E14");
    const out = new Uint8Array(Number(len));
    let off = 0;
    for (const pc of pieces) {
      out.set(this.#t.machine.memRead(pc.pa, pc.n), off);
      off += pc.n;
    }
    this.#reply(toHex(out));
  }

  #writeMem(rest: string, binary: boolean, raw: Uint8Array): void {
    const m = /^([0-9a-fA-F]+),([0-9a-fA-F]+)(:?)/.exec(rest);
    if (!m) return this.#reply(/^[0-9a-fA-F]+,?$/.test(rest) ? "E22" : "");
    if (m[3] !== ":") return this.#reply("E22");
    const addr = BigInt("0x" + m[1]);
    const len = Number(BigInt("0x" + m[2]));
    const bodyOff = 1 + m[0].length;
    let bytes: Uint8Array;
    if (binary) {
      bytes = raw.subarray(bodyOff);
      if (len > bytes.length) return this.#reply("E22");
    } else {
      const hex = rest.slice(m[0].length);
      if (len > hex.length / 2) return this.#reply("E22");
      bytes = fromHex(hex);
      if (bytes.length < len) return this.#reply("E14");
    }
    if (len === 0) return this.#reply("OK");
    const pieces = this.#pieces(addr, len);
    if (!pieces) return this.#reply("E14");
    let off = 0;
    for (const pc of pieces) {
      this.#t.machine.memWrite(pc.pa, bytes.slice(off, off + pc.n));
      off += pc.n;
    }
    this.#reply("OK");
  }

  // --- breakpoints ----------------------------------------------------------------------------------

  #breakpoint(insert: boolean, rest: string): void {
    const f = rest.split(/[,;]/);
    if (f.length < 3 || f.slice(0, 3).some((x) => hexNum(x) === null)) {
      return this.#reply(f.length < 3 && f.every((x) => hexNum(x) !== null) ? "E22" : "");
    }
    const type = Number(hexNum(f[0]));
    const addr = linear(hexNum(f[1])!);
    const len = Number(hexNum(f[2])!);
    if (type > 4 || !this.#t.accel?.setDebug) return this.#reply("");
    if (type >= 2 && (len === 0 || len > 0x1000)) {
      console.error(
        `microvm.ts: tried to set invalid watchpoint at ${hexNum(f[1])!.toString(16)}, len=${len}`,
      );
      return this.#reply("E22");
    }
    if (insert) {
      const bp = { type: type === 1 ? 0 : type, addr, len: type >= 2 ? len : 1 };
      // Hardware limits (KVM: four debug registers, no read-only watchpoints): QEMU's ENOSYS / ENOBUFS.
      const why = this.#t.accel.checkDebug?.(this.#settings(-1, [...this.#bps, bp]));
      if (why) return this.#reply(type === 3 ? "" : "E22");
      this.#bps.push(bp);
      return this.#reply("OK");
    }
    const t = type === 1 ? 0 : type;
    const i = this.#bps.findIndex((b) => b.type === t && b.addr === addr && (t < 2 || b.len === len));
    if (i < 0) return this.#reply("E22");
    this.#bps.splice(i, 1);
    this.#reply("OK");
  }

  // --- threads --------------------------------------------------------------------------------------

  /** read_thread_id: "p1.2", "p1.-1", "-1", "0", "2". */
  #thread(s: string): ThreadSel {
    let tidText = s;
    if (s.startsWith("p")) {
      const dot = s.indexOf(".");
      const pidText = dot < 0 ? s.slice(1) : s.slice(1, dot);
      if (pidText !== "-1" && hexNum(pidText) === null) return { kind: "err" };
      if (dot < 0) return { kind: "all" };
      if (pidText !== "-1" && hexNum(pidText) !== 1n) return { kind: "one", cpu: null };
      tidText = s.slice(dot + 1);
    }
    if (tidText === "-1") return { kind: "all" };
    const tid = hexNum(tidText);
    if (tid === null) return { kind: "err" };
    if (tid === 0n) return { kind: "one", cpu: 0 };
    const cpu = Number(tid) - 1;
    return { kind: "one", cpu: cpu < this.#t.ncpus ? cpu : null };
  }

  #setThread(rest: string): void {
    if (rest.length < 2) return this.#reply("E22");
    const op = rest[0];
    const sel = this.#thread(rest.slice(1));
    if (sel.kind === "err") return this.#reply("E22");
    if (sel.kind === "all") return this.#reply("OK");
    if (sel.cpu === null) return this.#reply("E22");
    if (op === "c") this.#cCpu = sel.cpu;
    else if (op === "g") this.#gCpu = sel.cpu;
    else return this.#reply("E22");
    this.#reply("OK");
  }

  // --- queries --------------------------------------------------------------------------------------

  #query(q: string): void {
    if (q === "Supported" || q.startsWith("Supported:")) {
      if (q.includes("multiprocess+")) this.multiprocess = true;
      return this.#reply(
        `PacketSize=${MAX_PACKET_LENGTH.toString(16)};qXfer:features:read+;vContSupported+;multiprocess+`,
      );
    }
    if (q.startsWith("Xfer:features:read:")) return this.#xfer(q.slice("Xfer:features:read:".length));
    if (q === "fThreadInfo") {
      this.#queryCpu = 0;
      return this.#threadInfo();
    }
    if (q === "sThreadInfo") return this.#threadInfo();
    if (q === "C") return this.#reply(`QC${this.#tid(0)}`);
    if (q.startsWith("ThreadExtraInfo,")) {
      const sel = this.#thread(q.slice("ThreadExtraInfo,".length));
      if (sel.kind !== "one" || sel.cpu === null) return this.#reply(sel.kind === "err" ? "" : "E22");
      const halted = this.#t.accel?.debugRegisters?.(sel.cpu).halted ??
        this.#t.machine.cpus()[sel.cpu]?.registers().halted ?? false;
      return this.#reply(toHex(utf8(`CPU#${sel.cpu} [${halted ? "halted " : "running"}]`)));
    }
    if (q.startsWith("Rcmd,")) return this.#rcmd(q.slice(5));
    if (q === "Attached" || q.startsWith("Attached:")) return this.#reply("1");
    if (q === "qemu.sstepbits") return this.#reply("ENABLE=1,NOIRQ=2,NOTIMER=4");
    if (q === "qemu.sstep") return this.#reply(`0x${this.#sstepFlags.toString(16)}`);
    if (q === "qemu.PhyMemMode") return this.#reply(this.#phyMem ? "1" : "0");
    if (q === "qemu.Supported") return this.#reply("sstepbits;sstep;PhyMemMode");
    this.#reply("");
  }

  #threadInfo(): void {
    if (!this.#attached || this.#queryCpu >= this.#t.ncpus) return this.#reply("l");
    this.#reply(`m${this.#tid(this.#queryCpu++)}`);
  }

  #xfer(s: string): void {
    const m = /^([^:]*):([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(s);
    if (!m) return this.#reply("");
    const xml = FEATURE_FILES.get(m[1]);
    if (xml === undefined) return this.#reply("E00");
    this.#hasXml = true;
    const offset = Number(BigInt("0x" + m[2]));
    let len = Number(BigInt("0x" + m[3]));
    if (offset > xml.length) return this.#reply("E00");
    len = Math.min(len, (MAX_PACKET_LENGTH - 5) / 2 | 0);
    const more = len < xml.length - offset;
    const chunk = textToBytes(xml.slice(offset, more ? offset + len : xml.length));
    const esc = escapeBinary(chunk);
    const out = new Uint8Array(esc.length + 1);
    out[0] = more ? 0x6d : 0x6c; // 'm' more follows, 'l' last
    out.set(esc, 1);
    this.#send(out);
  }

  #rcmd(hex: string): void {
    if (hex === "") return this.#reply("E22");
    if (hex.length % 2) return this.#reply("E01");
    const line = new TextDecoder().decode(fromHex(hex));
    this.#hmp ??= new HmpSession(this.#t.machine, { interactive: false });
    const out = this.#hmp.execute(line).replace(/\r?\n/g, "\r\n");
    const bytes = utf8(out);
    const max = MAX_PACKET_LENGTH / 2 - 1;
    for (let off = 0; off < bytes.length; off += max) {
      this.#reply("O" + toHex(bytes.subarray(off, off + max)));
    }
    this.#reply("OK");
  }

  #set(q: string): void {
    if (q.startsWith("qemu.sstep=")) {
      const v = hexNum(q.slice("qemu.sstep=".length));
      if (v === null) return this.#reply("");
      if (v & ~BigInt(SSTEP_ALL)) return this.#reply("E22");
      this.#sstepFlags = Number(v);
      return this.#reply("OK");
    }
    if (q.startsWith("qemu.PhyMemMode:")) {
      const v = hexNum(q.slice("qemu.PhyMemMode:".length));
      if (v === null) return this.#reply("");
      this.#phyMem = v !== 0n;
      return this.#reply("OK");
    }
    this.#reply("");
  }

  #v(s: string): void {
    if (s === "Cont?") return this.#reply("vCont;c;C;s;S");
    if (s.startsWith("Cont")) return this.#vCont(s.slice(4));
    if (s.startsWith("Attach;")) {
      if (hexNum(s.slice(7)) === null) return this.#reply("");
      this.#attached = true;
      this.#cCpu = this.#gCpu = 0;
      return this.#reply(`T${hex2(GDB_SIGNAL_TRAP)}thread:${this.#tid(0)};`);
    }
    if (s.startsWith("Kill;")) {
      this.#reply("OK");
      return this.#kill();
    }
    this.#reply("");
  }

  /** gdb_handle_vcont: an 's' for any vCPU steps that one only; otherwise every vCPU continues. */
  #vCont(s: string): void {
    const n = this.#t.ncpus;
    const states: string[] = new Array(n).fill("");
    let p = s;
    while (p !== "") {
      if (p[0] !== ";") return this.#reply("");
      p = p.slice(1);
      const m = /^([cCsS])([0-9a-fA-F]*)/.exec(p);
      if (!m) return this.#reply("");
      const action = m[1].toLowerCase();
      if ((m[1] === "C" || m[1] === "S") === (m[2] === "")) {
        return this.#reply(m[1] === "C" || m[1] === "S" ? "E22" : "");
      }
      p = p.slice(m[0].length);
      let sel: ThreadSel = { kind: "all" };
      if (p.startsWith(":")) {
        const end = p.indexOf(";");
        const id = end < 0 ? p.slice(1) : p.slice(1, end);
        p = end < 0 ? "" : p.slice(end);
        sel = this.#thread(id);
      } else if (p !== "" && p[0] !== ";") return this.#reply("");
      if (sel.kind === "err") return this.#reply("E22");
      if (sel.kind === "all") {
        for (let i = 0; i < n; i++) if (states[i] === "") states[i] = action;
      } else {
        if (sel.cpu === null) return this.#reply("E22");
        if (states[sel.cpu] === "") states[sel.cpu] = action;
      }
    }
    const step = states.indexOf("s");
    if (step < 0 && !states.includes("c")) return; // nothing to resume: no reply, as QEMU
    this.#resume(step);
  }
}

/** A DebugRegisters from the monitor's register snapshot (FPU/SSE state at its reset values). */
function fromCpuRegisters(r: CpuRegisters): DebugRegisters {
  const seg = r.seg;
  return {
    gpr: GPR_NAMES.map((n) => r.gpr[n] ?? 0n),
    rip: r.gpr.rip ?? 0n,
    rflags: r.gpr.rflags ?? 2n,
    sel: [seg.es, seg.cs, seg.ss, seg.ds, seg.fs, seg.gs].map((s) => s.selector),
    fsBase: BigInt.asUintN(64, BigInt(seg.fs.base)),
    gsBase: BigInt.asUintN(64, BigInt(seg.gs.base)),
    kernelGsBase: 0n,
    cr0: r.cr.cr0,
    cr2: r.cr.cr2,
    cr3: r.cr.cr3,
    cr4: r.cr.cr4,
    cr8: r.cr.cr8,
    efer: r.efer,
    fcw: 0x37f,
    fsw: 0,
    ftw: 0,
    st: new Uint8Array(80),
    xmm: new Uint8Array(256),
    mxcsr: 0x1f80,
    halted: r.halted,
  };
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/**
 * The stub on one stream: ack/nack and retransmission, Ctrl-C, connection open/close (connecting stops the VM;
 * a vanished client has its breakpoints removed and the VM resumed), VM stops turned into stop replies.
 */
export class GdbStub {
  readonly #t: GdbTarget;
  readonly #stream: MonitorStream;
  #reader = new PacketReader();
  #session: GdbSession | null = null;
  #last: Uint8Array | null = null;
  #open = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  #unsub: (() => void) | null = null;

  constructor(target: GdbTarget, stream: MonitorStream) {
    this.#t = target;
    this.#stream = stream;
    stream.setReceiver({
      canReceive: () => 4096,
      receive: (d) => this.#input(d),
    });
    this.#unsub = target.machine.on((ev) => {
      if (!this.#open || !this.#session) return;
      if (ev.event === "STOP") this.#session.stopped();
      else if (ev.event === "SHUTDOWN") {
        // The process exits (QEMU's gdb_exit: "W00"), unless -no-shutdown pauses it (then a STOP follows).
        queueMicrotask(() => {
          if (this.#open && target.machine.runState !== "shutdown") this.#sendPacket(textToBytes("W00"));
        });
      }
    });
    const events = stream as { onConnectionChange?: ((c: boolean) => void) | undefined };
    if ("onConnectionChange" in stream) {
      // Socket chardevs report each connection (a quick reconnect is two events, not none).
      events.onConnectionChange = (c) =>
        c ? (this.#open && this.#closed(), this.#opened()) : this.#open && this.#closed();
      if (stream.connected) this.#opened();
    } else {
      this.#poll();
      this.#timer = setInterval(() => this.#poll(), 20);
      Deno.unrefTimer(this.#timer);
    }
  }

  /** True while a client is connected. */
  get connected(): boolean {
    return this.#open;
  }

  /** Stop serving: breakpoints removed, the stream released (the VM is left as it is). */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#unsub?.();
    this.#unsub = null;
    this.#stream.setReceiver(null);
    const events = this.#stream as { onConnectionChange?: ((c: boolean) => void) | undefined };
    if ("onConnectionChange" in this.#stream) events.onConnectionChange = undefined;
    if (this.#open) this.#closed();
  }

  #poll(): void {
    const now = this.#stream.connected;
    if (now && !this.#open) this.#opened();
    else if (!now && this.#open) this.#closed();
  }

  #opened(): void {
    this.#open = true;
    this.#reader = new PacketReader();
    this.#last = null;
    this.#session = new GdbSession(this.#t, (p) => this.#sendPacket(p));
    this.#t.stop();
  }

  #closed(): void {
    this.#open = false;
    const s = this.#session;
    this.#session = null;
    if (!s) return;
    s.removeAll();
    // A client that vanished releases the machine it held.
    const st = this.#t.machine.runState;
    if (st === "debug" || st === "paused") this.#t.resume();
  }

  #sendPacket(payload: Uint8Array): void {
    const f = framePacket(payload);
    this.#last = f;
    this.#stream.write(f);
  }

  #input(data: Uint8Array): void {
    if (!this.#open) {
      this.#opened(); // bytes before the poll saw the connection
    }
    const session = this.#session!;
    try {
      for (const ch of data) {
        // gdb_read_byte: after a reply, '+' / '-' acknowledge it (a '-' resends it) and other bytes up to
        // the next '$' are ignored.
        if (this.#last) {
          if (ch === 0x2d) this.#stream.write(this.#last);
          if (ch === 0x2b || ch === 0x24) this.#last = null;
          if (ch !== 0x24) continue;
        }
        // While the VM runs, any byte stops it (the stop reply follows).
        if (this.#t.machine.runState === "running") {
          this.#t.stop();
          continue;
        }
        for (const ev of this.#reader.feed(new Uint8Array([ch]))) {
          switch (ev.kind) {
            case "interrupt":
              this.#t.stop();
              break;
            case "bad-checksum":
              this.#stream.write(new Uint8Array([0x2d]));
              break;
            case "packet":
              this.#stream.write(new Uint8Array([0x2b]));
              session.handle(ev.data);
              break;
            default: // stray acknowledgements
              break;
          }
        }
      }
    } catch (e) {
      // A stub bug must not take the machine down: answer "E14" and keep serving.
      console.error(`microvm.ts: gdbstub: ${e instanceof Error ? e.message : String(e)}`);
      this.#sendPacket(textToBytes("E14"));
    }
  }
}
