/**
 * The monitor's expression language (QEMU monitor/hmp.c get_expr): integers (C strtoull base 0: 0x hex,
 * leading-0 octal, decimal), 'c' character constants, $registers, unary + - ~, parentheses, and the
 * binary operators * / % then & | ^ then + -, evaluated in 64-bit two's complement. Errors carry QEMU's
 * message ("unknown register", "division by zero", "')' expected", "unexpected end of expression").
 * @module
 */
import type { CpuRegisters } from "../core/accel.ts";

/** An expression error; the monitor prints the message as is. */
export class ExprError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExprError";
  }
}

const MASK64 = (1n << 64n) - 1n;

/**
 * Value of a monitor register name (`$eax`, `$rip`, `$pc`, `$cs.base`…) from a register snapshot, or
 * undefined. As in QEMU's x86 monitor_defs the e-names are target_long wide (the whole 64-bit register).
 */
export function registerValue(r: CpuRegisters, name: string): bigint | undefined {
  const n = name.toLowerCase();
  const alias: Record<string, string> = {
    eax: "rax",
    ebx: "rbx",
    ecx: "rcx",
    edx: "rdx",
    esi: "rsi",
    edi: "rdi",
    esp: "rsp",
    sp: "rsp",
    ebp: "rbp",
    fp: "rbp",
    eip: "rip",
    eflags: "rflags",
    rflags: "rflags",
  };
  const g = alias[n] ?? n;
  if (g in r.gpr) return BigInt.asUintN(64, r.gpr[g]);
  if (n === "pc") return BigInt.asUintN(64, BigInt(r.seg.cs.base) + (r.gpr.rip ?? 0n));
  if (n === "cr0" || n === "cr2" || n === "cr3" || n === "cr4" || n === "cr8") return r.cr[n];
  if (n === "efer") return r.efer;
  const m = n.match(/^(es|cs|ss|ds|fs|gs)\.(base|limit)$/);
  if (m) {
    const s = r.seg[m[1] as "es"];
    return m[2] === "base" ? BigInt.asUintN(64, BigInt(s.base)) : BigInt(s.limit >>> 0);
  }
  if (n === "gdt.base" || n === "idt.base") {
    return BigInt.asUintN(64, BigInt(r[n === "gdt.base" ? "gdt" : "idt"].base));
  }
  return undefined;
}

/**
 * Parse and evaluate the leading expression of `text`; returns the value and the rest of the text
 * (QEMU stops at the first character that cannot continue the expression).
 */
export function parseExpr(
  text: string,
  reg: (name: string) => bigint | undefined,
): { value: bigint; rest: string } {
  let p = 0;
  const skip = () => {
    while (p < text.length && /\s/.test(text[p])) p++;
  };
  const sum = (): bigint => {
    let v = prod();
    for (;;) {
      skip();
      const op = text[p];
      if (op !== "+" && op !== "-") return v;
      p++;
      const v2 = prod();
      v = op === "+" ? (v + v2) & MASK64 : (v - v2) & MASK64;
    }
  };
  const prod = (): bigint => {
    let v = logic();
    for (;;) {
      skip();
      const op = text[p];
      if (op !== "*" && op !== "/" && op !== "%") return v;
      p++;
      const v2 = logic();
      if (op === "*") v = (v * v2) & MASK64;
      else {
        if (v2 === 0n) throw new ExprError("division by zero");
        // QEMU divides as int64_t.
        const a = BigInt.asIntN(64, v);
        const b = BigInt.asIntN(64, v2);
        v = (op === "/" ? a / b : a % b) & MASK64;
      }
    }
  };
  const logic = (): bigint => {
    let v = unary();
    for (;;) {
      skip();
      const op = text[p];
      if (op !== "&" && op !== "|" && op !== "^") return v;
      p++;
      const v2 = unary();
      v = op === "&" ? v & v2 : op === "|" ? v | v2 : v ^ v2;
    }
  };
  const unary = (): bigint => {
    skip();
    const c = text[p];
    switch (c) {
      case "+":
        p++;
        return unary();
      case "-":
        p++;
        return (-unary()) & MASK64;
      case "~":
        p++;
        return ~unary() & MASK64;
      case "(": {
        p++;
        const v = sum();
        skip();
        if (text[p] !== ")") throw new ExprError("')' expected");
        p++;
        return v;
      }
      case "'": {
        p++;
        const ch = text[p];
        if (ch === undefined) throw new ExprError("character constant expected");
        p++;
        if (text[p] !== "'") throw new ExprError("missing terminating ' character");
        p++;
        return BigInt(ch.charCodeAt(0) & 0xff);
      }
      case "$": {
        p++;
        const m = text.slice(p).match(/^[A-Za-z0-9_.]*/)![0];
        p += m.length;
        skip();
        const v = reg(m);
        if (v === undefined) throw new ExprError("unknown register");
        return v & MASK64;
      }
      case undefined:
        throw new ExprError("unexpected end of expression");
      default: {
        const m = text.slice(p).match(/^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/);
        if (!m) throw new ExprError("invalid char in expression");
        p += m[0].length;
        const s = m[0];
        const v = /^0[xX]/.test(s)
          ? BigInt(s)
          : s.length > 1 && s[0] === "0"
          ? BigInt("0o" + s.slice(1))
          : BigInt(s);
        if (v > MASK64) throw new ExprError("number too large");
        skip();
        return v;
      }
    }
  };
  const value = sum();
  return { value, rest: text.slice(p) };
}
