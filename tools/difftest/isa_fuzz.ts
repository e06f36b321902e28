/**
 * ISA fuzzer: random instruction sequences (isa_gen.ts) run natively on this x86-64 host (isa_harness.c,
 * compiled with gcc, code in an RWX mapping at 0x200000) and on the software CPU (core/cpu, long mode,
 * CPL 0, interpreter and block translator), comparing GPRs, defined flags, XMM and a 4 KiB data page.
 * Mismatches are minimised by dropping units while the mismatch persists.
 *
 * Usage: deno run -A tools/difftest/isa_fuzz.ts [--seed N] [--cases N] [--len N] [--groups alu,sse,...]
 *        [--mode interp|xlat|both] [--max-report N] [--straddle]
 * `--straddle` places each sequence so that it crosses a 4 KiB page boundary, and maps the second page to a
 * physically distant page on ours (decoy 0xcc bytes where the contiguous page would be).
 * @module
 */
import { GPR_NAMES } from "../../core/accel.ts";
import { Cpu, CpuFault } from "../../core/cpu/cpu.ts";
import { CS, DS, ES, FS, GS, SS } from "../../core/cpu/cpu.ts";
import { Interp } from "../../core/cpu/interp.ts";
import { attachJit, type Jit } from "../../core/cpu/jit.ts";
import { makeHarnessBoard } from "../../core/cpu/harness.ts";
import type { FlatRam } from "../../core/cpu/harness.ts";
import { ARITH, DF, drawSequence, GROUPS, Rng, undefinedAfter, type Unit, validSequence } from "./isa_gen.ts";
import { disasm } from "./disasm.ts";

/** Fixed layout shared with isa_harness.c. */
export const CODE = 0x200000, DATA = 0x300000, CODE_MAX = 2048;
const ST_SIZE = 400, IN_SIZE = 8 + CODE_MAX + ST_SIZE + 4096, OUT_SIZE = 8 + ST_SIZE + 4096;
/** GPR names in encoding order. */
export const GPR: readonly string[] = GPR_NAMES;

/** Architectural state compared by the fuzzer. */
export interface MachineState {
  g: bigint[];
  flags: number;
  /** 16 XMM registers, 16 bytes each. */
  xmm: Uint8Array;
  data: Uint8Array;
  /** Exception vector class or -1 (0 #DE, 6 #UD, 13 memory/#GP, 1 trap). */
  fault: number;
}

/** One test case: assembled units plus the initial state. */
export interface FuzzCase {
  units: Unit[];
  /** Machine code of each unit. */
  bytes: Uint8Array[];
  init: MachineState;
  /** Code placed at CODE + codeOff (page-straddling runs use 4096 - k). */
  codeOff?: number;
}

/** Random initial state: rbx points into the data page, rsp near its end. */
export function randomState(r: Rng): MachineState {
  const g = GPR.map(() => r.u64());
  g[3] = BigInt(DATA + 0x800);
  g[4] = BigInt(DATA + 0xf00);
  const xmm = new Uint8Array(256);
  for (let i = 0; i < 64; i++) {
    const k = r.int(6);
    const v = k === 0 ? 0 : k === 1 ? 0xffffffff : k === 2 ? r.u32() & 0x80ff00ff : r.u32();
    new DataView(xmm.buffer).setUint32(i * 4, v >>> 0, true);
  }
  // Sprinkle doubles so the scalar FP forms see ordinary numbers too.
  for (let i = 0; i < 16; i += 3) new DataView(xmm.buffer).setFloat64(i * 16, (r.int(2000) - 1000) / 7, true);
  const data = new Uint8Array(4096);
  for (let i = 0; i < 4096; i += 4) new DataView(data.buffer).setUint32(i, r.int(4) ? r.u32() : 0, true);
  const flags = 0x202 | (r.u32() & ARITH);
  return { g, flags, xmm, data, fault: -1 };
}

/** Assemble each case's units with GNU as; returns the bytes per unit. */
export async function assemble(cases: Unit[][], dir: string): Promise<Uint8Array[][]> {
  const lines = [".intel_syntax noprefix", ".text"];
  cases.forEach((units, i) => {
    units.forEach((x, j) => {
      lines.push(`u_${i}_${j}:`, x.asm);
    });
    lines.push(`u_${i}_${units.length}:`);
  });
  await Deno.writeTextFile(`${dir}/f.s`, lines.join("\n") + "\n");
  await sh(["as", "--64", "-o", `${dir}/f.o`, `${dir}/f.s`]);
  await sh(["objcopy", "-O", "binary", "-j", ".text", `${dir}/f.o`, `${dir}/f.bin`]);
  const nm = await sh(["nm", `${dir}/f.o`]);
  const bin = await Deno.readFile(`${dir}/f.bin`);
  const sym = new Map<string, number>();
  for (const l of nm.split("\n")) {
    const m = /^([0-9a-f]+) \w (u_\d+_\d+)$/.exec(l.trim());
    if (m) sym.set(m[2], parseInt(m[1], 16));
  }
  return cases.map((units, i) =>
    units.map((_, j) => bin.slice(sym.get(`u_${i}_${j}`)!, sym.get(`u_${i}_${j + 1}`)!))
  );
}

async function sh(cmd: string[]): Promise<string> {
  const o = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" }).output();
  if (!o.success) {
    throw new Error(`Cannot run ${cmd[0]}: ${new TextDecoder().decode(o.stderr).slice(0, 2000)}`);
  }
  return new TextDecoder().decode(o.stdout);
}

/** Compile isa_harness.c into `dir` (once). */
export async function buildHarness(dir: string): Promise<string> {
  const exe = `${dir}/isa_harness`;
  const src = new URL("./isa_harness.c", import.meta.url).pathname;
  await sh(["gcc", "-O1", "-o", exe, src]);
  return exe;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function encodeState(s: MachineState, dv: DataView, off: number): void {
  s.g.forEach((v, i) => dv.setBigUint64(off + i * 8, v, true));
  dv.setBigUint64(off + 0x80, BigInt(s.flags >>> 0), true);
  new Uint8Array(dv.buffer, off + 0x90, 256).set(s.xmm);
}

function decodeState(dv: DataView, off: number, data: Uint8Array, sig: number): MachineState {
  const g = GPR.map((_, i) => dv.getBigUint64(off + i * 8, true));
  const flags = Number(dv.getBigUint64(off + 0x80, true) & 0xffffffffn);
  const xmm = new Uint8Array(dv.buffer.slice(off + 0x90, off + 0x90 + 256));
  const fault = sig === 0 ? -1 : sig === 8 ? 0 : sig === 4 ? 6 : sig === 5 ? 1 : 13;
  return { g, flags, xmm, data, fault };
}

/** Run cases on the host CPU. */
export async function runNative(exe: string, dir: string, cases: FuzzCase[]): Promise<MachineState[]> {
  const buf = new Uint8Array(IN_SIZE * cases.length);
  const dv = new DataView(buf.buffer);
  cases.forEach((c, i) => {
    const code = concat(c.bytes);
    const o = i * IN_SIZE;
    dv.setUint32(o, code.length, true);
    dv.setUint32(o + 4, c.codeOff ?? 0, true);
    buf.set(code, o + 8);
    encodeState(c.init, dv, o + 8 + CODE_MAX);
    buf.set(c.init.data, o + 8 + CODE_MAX + ST_SIZE);
  });
  await Deno.writeFile(`${dir}/in.bin`, buf);
  await sh([exe, `${dir}/in.bin`, `${dir}/out.bin`]);
  const out = await Deno.readFile(`${dir}/out.bin`);
  const odv = new DataView(out.buffer);
  return cases.map((_, i) => {
    const o = i * OUT_SIZE;
    const sig = odv.getInt32(o, true);
    return decodeState(odv, o + 8, out.slice(o + 8 + ST_SIZE, o + OUT_SIZE), sig);
  });
}

/** The software CPU set up in 64-bit mode, CPL 0, identity-mapped 1 GiB (fresh per call of `makeSoftCpu`). */
export interface SoftCpu {
  c: Cpu;
  it: Interp;
  ram: FlatRam;
  /** Virtual CODE+0x1000 maps to SPLIT_PHYS (see makeSoftCpu). */
  split: boolean;
}

/** Physical page behind virtual CODE + 0x1000 in split mode. */
export const SPLIT_PHYS = 0x280000;

/** Build a long-mode vCPU on the harness board (PML4 0x1000, 1 GiB page at 0). */
export function makeSoftCpu(opts: { splitCode?: boolean } = {}): SoftCpu {
  // "max": every implemented extension is enabled (as the host has them).
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20, cpuModel: "max" });
  ram.writeU64(0x1000, 0x2000n | 7n);
  ram.writeU64(0x2000, 0x83n | 4n);
  if (opts.splitCode) {
    // 4 KiB pages for 0x200000-0x3fffff; the code page after CODE lives at SPLIT_PHYS, not CODE + 0x1000, so a
    // sequence crossing it is physically discontiguous (as user-space code always is).
    ram.writeU64(0x2000, 0x5000n | 7n);
    for (let i = 0; i < 512; i++) ram.writeU64(0x5000 + i * 8, (BigInt(i) * 0x200000n) | 0x87n);
    ram.writeU64(0x5008, 0x6000n | 7n);
    for (let j = 0; j < 512; j++) ram.writeU64(0x6000 + j * 8, (0x200000n + BigInt(j) * 0x1000n) | 7n);
    ram.writeU64(0x6008, BigInt(SPLIT_PHYS) | 7n);
  }
  const c = new Cpu(board, 0);
  c.cr0 = 0x80050033 | 0;
  c.cr4 = 0x20 | 0x200 | 0x400;
  c.cr3 = 0x1000;
  c.efer = 0xd01;
  c.segAttr[CS] = 0xa09b;
  c.segSel[CS] = 0x10;
  for (const s of [DS, ES, SS, FS, GS]) {
    c.segAttr[s] = 0xc093;
    c.segSel[s] = 0x18;
  }
  c.updateMode();
  c.flushTlb();
  return { c, it: new Interp(c), ram, split: opts.splitCode === true };
}

/** Run one case on the software CPU; `tr` non-null uses the block translator. */
export function runSoft(s: SoftCpu, fc: FuzzCase, tr: Jit | null): MachineState {
  const { c, it, ram } = s;
  const code = concat(fc.bytes);
  const at = CODE + (fc.codeOff ?? 0);
  ram.bytes.fill(0, CODE, CODE + 0x1000 + CODE_MAX + 16);
  const full = new Uint8Array(code.length + 1);
  full.set(code);
  full[code.length] = 0xf4;
  if (s.split) {
    // Decoy bytes where the next page would be if memory were contiguous.
    ram.bytes.fill(0xcc, CODE + 0x1000, CODE + 0x2000);
    ram.bytes.fill(0, SPLIT_PHYS, SPLIT_PHYS + 0x1000);
    full.forEach((b, i) => {
      const va = at + i;
      ram.bytes[va >= CODE + 0x1000 && va < CODE + 0x2000 ? va - CODE - 0x1000 + SPLIT_PHYS : va] = b;
    });
  } else ram.write(at, full);
  ram.write(DATA, fc.init.data);
  fc.init.g.forEach((v, i) => {
    c.r[i] = Number(v & 0xffffffffn) | 0;
    c.r[i + 16] = Number(v >> 32n) | 0;
  });
  const xdv = new DataView(fc.init.xmm.buffer, fc.init.xmm.byteOffset, 256);
  for (let i = 0; i < 64; i++) c.xmm[i] = xdv.getInt32(i * 4, true);
  c.ymmh.fill(0);
  c.cr4 |= 0x40000; // OSXSAVE, and XCR0 with AVX state, as Linux sets them up
  c.xcr0 = 7;
  c.mxcsr = 0x1f80;
  c.setFlags(fc.init.flags);
  c.rip = at;
  c.halted = false;
  c.intShadow = false;
  c.atBranch = true;
  let fault = -1;
  try {
    for (let n = 0; n < 20000 && !c.halted; n++) {
      const m = tr ? tr.run(c, 1) : 0;
      if (m === 0) it.step();
    }
    if (!c.halted) fault = 99;
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    fault = e.vec === 0 ? 0 : e.vec === 6 ? 6 : e.vec === 1 || e.vec === 3 ? 1 : 13;
  }
  const g = GPR.map((_, i) => (BigInt(c.r[i + 16] >>> 0) << 32n) | BigInt(c.r[i] >>> 0));
  const xmm = new Uint8Array(256);
  const odv = new DataView(xmm.buffer);
  for (let i = 0; i < 64; i++) odv.setInt32(i * 4, c.xmm[i], true);
  return { g, flags: c.getFlags(), xmm, data: ram.bytes.slice(DATA, DATA + 4096), fault };
}

const h64 = (v: bigint) => "0x" + v.toString(16);

/** Differences between expected (host) and actual (ours), masking undefined flags. */
export function compareStates(exp: MachineState, got: MachineState, undefFlags: number): string[] {
  const d: string[] = [];
  if (exp.fault !== got.fault) {
    d.push(`fault: host ${exp.fault} ours ${got.fault}`);
    return d;
  }
  if (exp.fault !== -1) return d; // both faulted: state at the fault is not compared
  GPR.forEach((n, i) => {
    if (exp.g[i] !== got.g[i]) d.push(`${n}: host ${h64(exp.g[i])} ours ${h64(got.g[i])}`);
  });
  const m = (ARITH & ~undefFlags) | DF;
  if ((exp.flags & m) !== (got.flags & m)) {
    d.push(
      `rflags(mask 0x${m.toString(16)}): host 0x${(exp.flags & m).toString(16)} ours 0x${
        (got.flags & m).toString(16)
      } (full 0x${exp.flags.toString(16)} / 0x${got.flags.toString(16)})`,
    );
  }
  for (let i = 0; i < 16; i++) {
    const a = exp.xmm.subarray(i * 16, i * 16 + 16), b = got.xmm.subarray(i * 16, i * 16 + 16);
    if (a.some((x, k) => x !== b[k])) d.push(`xmm${i}: host ${xhex(a)} ours ${xhex(b)}`);
  }
  for (let i = 0; i < 4096; i++) {
    if (exp.data[i] !== got.data[i]) {
      let j = i;
      while (j < 4096 && j < i + 16 && exp.data[j] !== got.data[j]) j++;
      d.push(
        `mem[rbx${disp(i - 0x800)}]: host ${bhex(exp.data.subarray(i, j))} ours ${
          bhex(got.data.subarray(i, j))
        }`,
      );
      break;
    }
  }
  return d;
}

function disp(n: number): string {
  return n < 0 ? `-0x${(-n).toString(16)}` : `+0x${n.toString(16)}`;
}

function bhex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

/** XMM bytes as one 128-bit hex number (high lane first). */
function xhex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).reverse().join("");
}

const jits = new WeakMap<SoftCpu, Jit>();

/** The JIT of `s` (translating on first visit), emptied: every case rewrites the code page behind its back. */
function caseJit(s: SoftCpu): Jit {
  let j = jits.get(s);
  if (!j) jits.set(s, j = attachJit(s.c, 1));
  j.flush();
  return j;
}

/** Compare one case in one mode; returns the list of differences. */
export function checkCase(fc: FuzzCase, host: MachineState, s: SoftCpu, xlat: boolean): string[] {
  const got = runSoft(s, fc, xlat ? caseJit(s) : null);
  return compareStates(host, got, undefinedAfter(fc.units));
}

interface Found {
  mode: string;
  fc: FuzzCase;
  host: MachineState;
  diffs: string[];
}

/** Drop units while the case still mismatches (greedy, one round = one native batch). */
async function minimise(f: Found, exe: string, dir: string, s: SoftCpu): Promise<Found> {
  let cur = f;
  for (let round = 0; round < 20 && cur.fc.units.length > 1; round++) {
    const cands: FuzzCase[] = [];
    for (let k = 0; k < cur.fc.units.length; k++) {
      const units = cur.fc.units.filter((_, j) => j !== k);
      if (!validSequence(units)) continue;
      cands.push({ ...cur.fc, units, bytes: cur.fc.bytes.filter((_, j) => j !== k) });
    }
    if (cands.length === 0) break;
    const hosts = await runNative(exe, dir, cands);
    let next: Found | null = null;
    for (let i = 0; i < cands.length && !next; i++) {
      const diffs = checkCase(cands[i], hosts[i], s, f.mode === "xlat");
      if (diffs.length) next = { mode: f.mode, fc: cands[i], host: hosts[i], diffs };
    }
    if (!next) break;
    cur = next;
  }
  return cur;
}

/** Human-readable report of one (minimised) mismatch. */
export function describe(f: Found): string {
  const lines = [`== mismatch (${f.mode}) ==`];
  let addr = CODE + (f.fc.codeOff ?? 0);
  f.fc.units.forEach((x, i) => {
    const b = f.fc.bytes[i];
    lines.push(`  ${disasm(b, addr).join(" ; ")}    [${bhex(b)}]    (asm: ${x.asm.replace(/\n/g, "; ")})`);
    addr += b.length;
  });
  const st = f.fc.init;
  lines.push(
    "  in: " + GPR.map((n, i) => `${n}=${h64(st.g[i])}`).join(" ") + ` rflags=0x${st.flags.toString(16)}`,
  );
  const xs = new Set<number>();
  for (const x of f.fc.units) for (const m of x.asm.matchAll(/xmm(\d+)/g)) xs.add(Number(m[1]));
  for (const i of xs) lines.push(`  in: xmm${i}=${xhex(st.xmm.subarray(i * 16, i * 16 + 16))}`);
  for (const m of f.fc.units.map((x) => x.asm).join(" ").matchAll(/\[rbx([+-]0x[0-9a-f]+)\]/g)) {
    const o = 0x800 + parseInt(m[1].replace("+", ""), 16);
    if (o >= 0 && o + 16 <= 4096) lines.push(`  in: mem[rbx${m[1]}]=${bhex(st.data.subarray(o, o + 16))}`);
  }
  for (const d of f.diffs) lines.push("  " + d);
  return lines.join("\n");
}

function arg(name: string, def: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : def;
}

/** Options of runFuzz. */
export interface FuzzOptions {
  seed: number;
  ncases: number;
  len: number;
  groups: string[];
  mode: string;
  maxReport: number;
  straddle: boolean;
}

/** One fuzz run: returns the report lines and the number of mismatching cases. */
export async function runFuzz(o: FuzzOptions): Promise<{ lines: string[]; mismatches: number }> {
  const { seed, ncases, len, groups, mode, maxReport, straddle } = o;
  const out: string[] = [];
  for (const g of groups) {
    if (!GROUPS.some(([n]) => n === g)) throw new Error(`Unknown group "${g}": ${GROUPS.map((x) => x[0])}`);
  }
  const dir = await Deno.makeTempDir({ prefix: "isa_fuzz" });
  const exe = await buildHarness(dir);
  const r = new Rng(seed);
  out.push(`isa_fuzz seed ${seed}, ${ncases} cases of ${len} units, mode ${mode}`);
  const s = makeSoftCpu({ splitCode: straddle });
  const seen = new Set<string>();
  const unimpl = new Map<string, string>();
  let reported = 0, mismatches = 0;
  const batch = 500;
  for (let done = 0; done < ncases; done += batch) {
    const unitsList: Unit[][] = [];
    for (let i = 0; i < Math.min(batch, ncases - done); i++) {
      unitsList.push(drawSequence(r, 1 + r.int(len), groups));
    }
    const bytes = await assemble(unitsList, dir);
    const cases: FuzzCase[] = unitsList.map((units, i) => ({
      units,
      bytes: bytes[i],
      init: randomState(r),
      codeOff: straddle ? 4096 - 1 - r.int(Math.max(1, bytes[i].reduce((n, b) => n + b.length, 0))) : 0,
    }));
    const hosts = await runNative(exe, dir, cases);
    for (let i = 0; i < cases.length; i++) {
      // The translator is only blamed when the interpreter agrees with the host.
      const modes = mode === "both" ? ["interp", "xlat"] : [mode];
      for (const m of modes) {
        const diffs = checkCase(cases[i], hosts[i], s, m === "xlat");
        if (!diffs.length) continue;
        mismatches++;
        const f = await minimise({ mode: m, fc: cases[i], host: hosts[i], diffs }, exe, dir, s);
        const one = f.fc.units.length === 1;
        const shape = f.fc.units.map((x) => x.asm.split(" ")[0]).join(";");
        if (one && f.diffs.length === 1 && f.diffs[0] === "fault: host -1 ours 6") {
          unimpl.set(disasm(f.fc.bytes[0], CODE)[0].split(" ")[0], bhex(f.fc.bytes[0]));
          break;
        }
        const key = `${m}:${shape}:${f.diffs.map((d) => d.split(":")[0].replace(/\d+/g, "")).join(",")}`;
        if (seen.has(key)) break;
        seen.add(key);
        if (reported++ < maxReport) out.push(describe(f));
        break;
      }
    }
  }
  if (unimpl.size) {
    out.push(`#UD on ours, fine on host (${unimpl.size}):`);
    for (const [k, v] of unimpl) out.push(`  ${k.padEnd(12)} e.g. ${v}`);
  }
  out.push(
    `done: ${mismatches} mismatching cases, ${seen.size} distinct + ${unimpl.size} #UD (seed ${seed})`,
  );
  await Deno.remove(dir, { recursive: true });
  return { lines: out, mismatches };
}

async function main(): Promise<void> {
  const { lines } = await runFuzz({
    seed: Number(arg("seed", String(Date.now() % 1000000))),
    ncases: Number(arg("cases", "2000")),
    len: Number(arg("len", "4")),
    groups: arg("groups", "").split(",").filter(Boolean),
    mode: arg("mode", "both"),
    maxReport: Number(arg("max-report", "10")),
    straddle: Deno.args.includes("--straddle"),
  });
  console.log(lines.join("\n"));
}

if (import.meta.main) await main();
