/**
 * Test fixture: a vCPU in 64-bit long mode with identity-mapped paging over 4 MiB of RAM (internal).
 * @module
 */
import { makeHarnessBoard } from "./harness.ts";
import { Cpu, CS, DS, ES, SS } from "./cpu.ts";
import { Interp } from "./interp.ts";
import type { FlatRam, HarnessOptions } from "./harness.ts";
import type { CpuEntryState } from "../accel.ts";

/** Code is placed here by tests. */
export const CODE = 0x10000;

/** A fresh long-mode vCPU: PML4 at 0x1000, PDPT at 0x2000 mapping the first 1 GiB with one 1 GiB page. */
export function longModeCpu(
  ramBytes = 4 << 20,
  opts: Partial<HarnessOptions> = {},
): { c: Cpu; it: Interp; ram: FlatRam } {
  const { board, ram } = makeHarnessBoard({ ...opts, ramBytes });
  ram.writeU64(0x1000, 0x2000n | 7n);
  ram.writeU64(0x2000, 0x83n | 4n);
  const c = new Cpu(board, 0);
  c.cr0 = 0x80050033 | 0;
  c.cr4 = 0x20 | 0x200;
  c.cr3 = 0x1000;
  c.efer = 0xd01;
  c.segAttr[CS] = 0xa09b;
  c.segSel[CS] = 0x10;
  for (const s of [DS, ES, SS]) {
    c.segAttr[s] = 0xc093;
    c.segSel[s] = 0x18;
  }
  c.updateMode();
  c.flushTlb();
  return { c, it: new Interp(c), ram };
}

/** Run from `start` until rip reaches `end` (at most `max` instructions). */
export function runUntil(c: Cpu, it: Interp, start: number, end: number, max = 1000): void {
  c.rip = start;
  for (let i = 0; i < max && c.rip !== end; i++) it.step();
}

/** Set a 64-bit register from a bigint. */
export function setReg(c: Cpu, n: number, v: bigint): void {
  const u = BigInt.asUintN(64, v);
  c.r[n] = Number(u & 0xffffffffn) | 0;
  c.r[n + 16] = Number(u >> 32n) | 0;
}

/** Read a 64-bit register as an unsigned bigint. */
export function getReg(c: Cpu, n: number): bigint {
  return (BigInt(c.r[n + 16] >>> 0) << 32n) | BigInt(c.r[n] >>> 0);
}

/** GDT at 0x3000 (0x10 64-bit code, 0x18 data, 0x23 user data, 0x2b user code) and a 256-entry IDT at 0x4000
 * whose vector v points to 0x20000 + 16 v (interrupt gates, IST 0). */
export function installTables(c: Cpu, ram: FlatRam): void {
  ram.writeU64(0x3000, 0n);
  ram.writeU64(0x3010, 0x00af9b000000ffffn);
  ram.writeU64(0x3018, 0x00cf93000000ffffn);
  ram.writeU64(0x3020, 0x00cff3000000ffffn);
  ram.writeU64(0x3028, 0x00affb000000ffffn);
  c.gdtBase = 0x3000;
  c.gdtLimit = 0x2f;
  for (let v = 0; v < 256; v++) {
    const h = 0x20000 + v * 16;
    const lo = BigInt(h & 0xffff) | (0x10n << 16n) | (0x8e00n << 32n) | (BigInt(h >>> 16) << 48n);
    ram.writeU64(0x4000 + v * 16, lo);
    ram.writeU64(0x4000 + v * 16 + 8, 0n);
    ram.writeU8(h, 0xf4);
  }
  c.idtBase = 0x4000;
  c.idtLimit = 0xfff;
}

/** Golden vectors from testgen/alu_vectors.txt (see testgen/gen.py). */
export interface Vector {
  asm: string;
  bytes: string;
  flagMask: number;
  cases: string[][];
}

/** Parse testgen/alu_vectors.txt. */
export function loadVectors(): Vector[] {
  const text = Deno.readTextFileSync(new URL("./testgen/alu_vectors.txt", import.meta.url));
  const out: Vector[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("I ")) {
      const [, mask, bytes, ...asm] = line.split(" ");
      out.push({ asm: asm.join(" "), bytes, flagMask: Number(mask), cases: [] });
    } else if (line.startsWith("C ")) out[out.length - 1].cases.push(line.slice(2).split(" "));
  }
  return out;
}

/**
 * Entry state of flat 32-bit protected mode at 0x1000 (CS 0x10, data 0x18, paging off, empty IDT), with
 * `over` replacing any field: the start of the accelerator-level tests.
 */
export function flat32Entry(over: Partial<CpuEntryState> = {}): CpuEntryState {
  const flat = { selector: 0x18, base: 0, limit: 0xffffffff, attrs: 0xc093 };
  return {
    regs: { rip: 0x1000n, rflags: 2n },
    cs: { selector: 0x10, base: 0, limit: 0xffffffff, attrs: 0xc09b },
    ds: flat,
    es: flat,
    ss: flat,
    fs: flat,
    gs: flat,
    tr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x8b },
    ldtr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x82 },
    gdt: { base: 0, limit: 0 },
    idt: { base: 0, limit: 0 },
    cr0: 0x11n,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
    ...over,
  };
}
