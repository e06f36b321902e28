/**
 * Golden vectors for the ISA extensions (testgen/isa_gen.py, run on an x86-64 host) through the
 * interpreter: GPRs, rflags (minus the SDM's undefined bits), MXCSR, ymm0-3 and the memory buffer, bit-exact.
 * Inputs are regenerated from the same seeded recipe as isa_gen.py.
 * @module
 */
import assert from "node:assert/strict";
import { CODE, longModeCpu, runUntil } from "./_testcpu.ts";
import type { Cpu } from "./cpu.ts";

const M32 = 0xffffffff;
const BUF = 0x30000;

class Rng {
  x: number;
  constructor(seed: number) {
    this.x = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.x;
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    this.x = x;
    return x;
  }
}

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (const ch of new TextEncoder().encode(s)) h = Math.imul(h ^ ch, 0x01000193) >>> 0;
  return h;
}

const F32S = [
  0,
  0x80000000,
  0x7f800000,
  0xff800000,
  0x7fc00000,
  0xffc00001,
  0x7f800001,
  0x7fa00000,
  1,
  0x807fffff,
  0x7f7fffff,
  0x00800000,
  0x3f800000,
  0x4f000000,
  0xcf000000,
  0x5f000000,
  0x3f000000,
  0xbfc00000,
];
const F64S = [
  0n,
  1n << 63n,
  0x7ffn << 52n,
  0xfffn << 52n,
  0x7ff8n << 48n,
  0xfff8000000000001n,
  0x7ff0000000000001n,
  0x7ff4000000000000n,
  1n,
  0x800fffffffffffffn,
  0x7fefffffffffffffn,
  1n << 52n,
  0x3ffn << 52n,
  0x41e0000000000000n,
  0xc1e0000000000000n,
  0x43e0000000000000n,
  0x3fe0000000000000n,
  0xbff8000000000000n,
];

function lanes(r: Rng, kind: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  const dv = new DataView(out.buffer);
  if (kind === "f64") {
    for (let i = 0; i < n; i += 8) {
      const k = r.next() % 10;
      let v: bigint;
      if (k < 3) v = F64S[r.next() % F64S.length];
      else {
        const e = BigInt(1023 - 12 + r.next() % 24);
        const s = BigInt(r.next() & 1), hi = BigInt(r.next() & 0xfffff), lo = BigInt(r.next());
        v = (s << 63n) | (e << 52n) | (hi << 32n) | lo;
      }
      dv.setBigUint64(i, v, true);
    }
    return out;
  }
  for (let i = 0; i < n; i += 4) {
    let v: number;
    if (kind === "f32") {
      const k = r.next() % 10;
      if (k < 3) v = F32S[r.next() % F32S.length];
      else {
        const s = r.next() & 1, e = 127 - 12 + r.next() % 24;
        v = ((s << 31) | (e << 23) | (r.next() & 0x7fffff)) >>> 0;
      }
    } else if (kind === "s") {
      v = 0;
      for (let b = 0; b < 4; b++) {
        const ch = r.next() % 6 === 0 ? 0 : 0x61 + r.next() % 4;
        v |= ch << (8 * b);
      }
    } else {
      const k = r.next() % 8;
      v = k === 0 ? 0 : k === 1 ? M32 : k === 2 ? r.next() & 0x80ff00ff : r.next();
    }
    dv.setUint32(i, v >>> 0, true);
  }
  return out;
}

function gpr(r: Rng): bigint {
  const k = r.next() % 8;
  if (k === 0) return 0n;
  if (k === 1) return BigInt(r.next() % 70);
  if (k === 2) return (1n << 64n) - 1n;
  if (k === 3) return 1n << BigInt(r.next() % 64);
  if (k === 4) {
    const a = r.next() % 70;
    return BigInt(a | ((r.next() % 70) << 8));
  }
  const hi = BigInt(r.next());
  return (hi << 32n) | BigInt(r.next());
}

interface State {
  g: bigint[];
  f: number;
  mx: number;
  y: Uint8Array;
  m: Uint8Array;
}

function makeState(name: string, kind: string, fp: boolean): State {
  const r = new Rng(fnv(name));
  const g = [gpr(r), gpr(r), gpr(r), gpr(r)];
  const f = 0x202 | (r.next() & 0x8d5);
  let mx = 0x1f80;
  if (fp) {
    mx |= (r.next() % 4) << 13;
    if (r.next() % 4 === 0) mx |= 0x8040;
    if (r.next() % 2) mx |= r.next() & 0x3f;
  }
  const y = lanes(r, kind, 128);
  const m = lanes(r, kind, 64);
  return { g, f, mx, y, m };
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const GN = ["rax", "rcx", "rdx", "rbx"];
const GI = [0, 1, 2, 3];

interface Vec {
  name: string;
  undef: number;
  code: Uint8Array;
  asm: string;
  kind: string;
  fp: boolean;
  cases: string[];
}

/** Parse testgen/isa_vectors.txt. */
export function loadIsaVectors(): Vec[] {
  const out: Vec[] = [];
  const text = Deno.readTextFileSync(new URL("./testgen/isa_vectors.txt", import.meta.url));
  for (const line of text.split("\n")) {
    if (line.startsWith("I ")) {
      const [name, undef, code, asm, kind, fp] = line.slice(2).split("|");
      out.push({
        name,
        undef: parseInt(undef, 16),
        code: new Uint8Array(code.match(/../g)!.map((h) => parseInt(h, 16))),
        asm,
        kind,
        fp: fp === "1",
        cases: [],
      });
    } else if (line.startsWith("C ")) out[out.length - 1].cases.push(line.slice(2));
  }
  return out;
}

function readReg(c: Cpu, n: number): bigint {
  return (BigInt(c.r[n + 16] >>> 0) << 32n) | BigInt(c.r[n] >>> 0);
}

/** Per-CPU hooks for the YMM upper halves (absent until AVX state exists). */
function ymmHigh(c: Cpu): Int32Array | null {
  return (c as unknown as { ymmh?: Int32Array }).ymmh ?? null;
}

/** Run one case; returns the mismatch description or "". */
function runCase(v: Vec, k: number, expect: string): string {
  const st = makeState(`${v.name}#${k}`, v.kind, v.fp);
  const { c, it, ram } = longModeCpu(4 << 20, { cpuModel: "max" });
  c.cr4 |= 0x40000 | 0x400; // OSXSAVE, OSXMMEXCPT
  (c as unknown as { xcr0?: number }).xcr0 = 7;
  for (const i of GI) {
    const u = BigInt.asUintN(64, st.g[i]);
    c.r[i] = Number(u & 0xffffffffn) | 0;
    c.r[i + 16] = Number(u >> 32n) | 0;
  }
  c.r[6] = BUF;
  c.r[22] = 0;
  c.r[4] = 0x3f000; // rsp (push/pop around rdi in the MASKMOVDQU vectors)
  c.r[20] = 0;
  c.setFlags(st.f);
  c.mxcsr = st.mx;
  const yv = new DataView(st.y.buffer);
  const hi = ymmHigh(c);
  for (let j = 0; j < 4; j++) {
    for (let w = 0; w < 4; w++) c.xmm[j * 4 + w] = yv.getInt32(j * 32 + w * 4, true);
    if (hi) { for (let w = 0; w < 4; w++) hi[j * 4 + w] = yv.getInt32(j * 32 + 16 + w * 4, true); }
  }
  ram.write(BUF, st.m);
  ram.write(CODE, v.code);
  try {
    runUntil(c, it, CODE, CODE + v.code.length, 10);
  } catch (e) {
    return `fault ${e}`;
  }
  const got: string[] = [];
  for (const i of GI) {
    const val = readReg(c, i);
    if (val !== BigInt.asUintN(64, st.g[i])) got.push(`${GN[i]}=${val.toString(16)}`);
  }
  got.push(`f=${(c.getFlags() & 0xfd5).toString(16)}`);
  if (c.mxcsr !== st.mx) got.push(`m=${c.mxcsr.toString(16)}`);
  const ny = new Uint8Array(128);
  const nv = new DataView(ny.buffer);
  for (let j = 0; j < 4; j++) {
    for (let w = 0; w < 4; w++) nv.setInt32(j * 32 + w * 4, c.xmm[j * 4 + w], true);
    for (let w = 0; w < 4; w++) {
      nv.setInt32(j * 32 + 16 + w * 4, hi ? hi[j * 4 + w] : yv.getInt32(j * 32 + 16 + w * 4, true), true);
    }
  }
  for (let j = 0; j < 4; j++) {
    const a = ny.subarray(32 * j, 32 * j + 32), b = st.y.subarray(32 * j, 32 * j + 32);
    if (hex(a) !== hex(b)) got.push(`y${j}=${hex(a)}`);
  }
  const nm = ram.read(BUF, 64)!;
  if (hex(nm) !== hex(st.m)) got.push(`mem=${hex(nm)}`);
  // Compare with undefined flags masked out of both sides.
  const mask = (s: string) =>
    s.split(" ").map((p) =>
      p.startsWith("f=") ? `f=${(parseInt(p.slice(2), 16) & ~v.undef).toString(16)}` : p
    )
      .join(" ");
  const g = mask(got.join(" ")), e = mask(expect);
  return g === e ? "" : `want ${e}\n   got ${g}`;
}

/** Run every vector whose name passes `filter`; returns failure lines. */
export function runIsaVectors(filter: (name: string) => boolean): { failures: string[]; n: number } {
  const failures: string[] = [];
  let n = 0;
  for (const v of loadIsaVectors()) {
    if (!filter(v.name)) continue;
    let bad = 0;
    v.cases.forEach((exp, k) => {
      n++;
      const d = runCase(v, k, exp);
      if (d && bad++ < 1) failures.push(`${v.name} [${v.asm}] case ${k}: ${d}`);
    });
  }
  return { failures, n };
}

Deno.test("ISA golden vectors from the host CPU run bit-exactly in the interpreter", () => {
  const { failures, n } = runIsaVectors(() => true);
  assert.ok(n > 0);
  assert.deepEqual(failures, []);
});
