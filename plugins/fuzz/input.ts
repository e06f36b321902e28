/**
 * Fuzz inputs: a flat list of ops (port and MMIO accesses, guest-RAM writes, clock steps) and their text
 * form, QEMU's qtest wire protocol (tests/qtest/libqtest.c, docs/devel/qtest.rst): `outb 0x70 0x8b`,
 * `readl 0xfeb00e00`, `write 0x10000 0x4 0x01020304`, `clock_step 1000000`. Lines starting with `#` are
 * comments; `# argv: [...]` gives the machine's command line (JSON) when it is not the default.
 * @module
 */
import { UserError } from "../../core/types.ts";

/** One fuzz op. Sizes: 1, 2, 4 bytes; values unsigned. */
export type Op =
  | { op: "out"; size: 1 | 2 | 4; addr: number; value: number }
  | { op: "in"; size: 1 | 2 | 4; addr: number }
  | { op: "write"; size: 1 | 2 | 4; addr: number; value: number }
  | { op: "read"; size: 1 | 2 | 4; addr: number }
  | { op: "mem"; addr: number; data: Uint8Array }
  | { op: "step"; ns: number };

/** A parsed reproducer file. */
export interface QtestScript {
  ops: Op[];
  /** Machine command line from `# argv:` (undefined: the default fuzz machine). */
  argv?: string[];
  /** The other comment lines, without "# ". */
  comments: string[];
}

const SUFFIX = { 1: "b", 2: "w", 4: "l" } as const;
const SIZES: Record<string, 1 | 2 | 4> = { b: 1, w: 2, l: 4 };

function hex(n: number): string {
  return "0x" + n.toString(16);
}

/** One op as a qtest command line (no newline). */
export function opToQtest(o: Op): string {
  switch (o.op) {
    case "out":
      return `out${SUFFIX[o.size]} ${hex(o.addr)} ${hex(o.value)}`;
    case "in":
      return `in${SUFFIX[o.size]} ${hex(o.addr)}`;
    case "write":
      return `write${SUFFIX[o.size]} ${hex(o.addr)} ${hex(o.value)}`;
    case "read":
      return `read${SUFFIX[o.size]} ${hex(o.addr)}`;
    case "mem": {
      let h = "";
      for (const b of o.data) h += b.toString(16).padStart(2, "0");
      return `write ${hex(o.addr)} ${hex(o.data.length)} 0x${h}`;
    }
    case "step":
      return `clock_step ${o.ns}`;
  }
}

/** Render a script: comments first, then one command per line. */
export function toQtest(
  ops: readonly Op[],
  opts: { comments?: readonly string[]; argv?: readonly string[] } = {},
): string {
  let s = "";
  for (const c of opts.comments ?? []) s += `# ${c}\n`;
  if (opts.argv) s += `# argv: ${JSON.stringify(opts.argv)}\n`;
  for (const o of ops) s += opToQtest(o) + "\n";
  return s;
}

function num(tok: string | undefined, line: number, what: string): number {
  if (tok === undefined) throw new UserError(`Qtest line ${line}: missing ${what}`);
  const v = Number(tok);
  if (!Number.isSafeInteger(v) || v < 0) throw new UserError(`Qtest line ${line}: bad ${what} "${tok}"`);
  return v;
}

/**
 * Parse qtest text. Unknown commands are UserErrors, except the ones a replay does not need
 * (irq_intercept_in/out, set_irq_in, endianness), which are skipped.
 */
export function parseQtest(text: string): QtestScript {
  const ops: Op[] = [];
  const comments: string[] = [];
  let argv: string[] | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const ln = i + 1;
    const line = lines[i].trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const c = line.replace(/^#\s?/, "");
      if (c.startsWith("argv:")) {
        try {
          const a = JSON.parse(c.slice(5));
          if (!Array.isArray(a) || !a.every((x) => typeof x === "string")) {
            throw new Error("not a string array");
          }
          argv = a;
        } catch (e) {
          throw new UserError(`Qtest line ${ln}: bad argv: ${(e as Error).message}`);
        }
      } else comments.push(c);
      continue;
    }
    const [cmd, a1, a2, a3] = line.split(/\s+/);
    const m = /^(in|out|read|write)([bwl])$/.exec(cmd);
    if (m) {
      const size = SIZES[m[2]];
      const addr = num(a1, ln, "address");
      if (m[1] === "in") ops.push({ op: "in", size, addr });
      else if (m[1] === "read") ops.push({ op: "read", size, addr });
      else {
        const value = num(a2, ln, "value");
        ops.push(m[1] === "out" ? { op: "out", size, addr, value } : { op: "write", size, addr, value });
      }
      continue;
    }
    switch (cmd) {
      case "write": {
        const addr = num(a1, ln, "address");
        const len = num(a2, ln, "length");
        const h = (a3 ?? "").replace(/^0x/, "");
        if (!/^[0-9a-fA-F]*$/.test(h) || h.length > len * 2) {
          throw new UserError(`Qtest line ${ln}: bad data "${a3}"`);
        }
        const data = new Uint8Array(len);
        for (let k = 0; k * 2 < h.length; k++) data[k] = parseInt(h.slice(k * 2, k * 2 + 2), 16);
        ops.push({ op: "mem", addr, data });
        break;
      }
      case "clock_step":
        ops.push({ op: "step", ns: a1 === undefined ? -1 : num(a1, ln, "ns") });
        break;
      case "irq_intercept_in":
      case "irq_intercept_out":
      case "set_irq_in":
      case "endianness":
        break;
      default:
        throw new UserError(`Qtest line ${ln}: unknown command "${cmd}"`);
    }
  }
  return argv ? { ops, argv, comments } : { ops, comments };
}
