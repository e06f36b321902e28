/**
 * QEMU's option-string syntaxes, rebuilt: QemuOpts (`util/qemu-option.c`), keyval (`util/keyval.c`),
 * sizes (`util/cutils.c` do_strtosz), booleans (`qapi/qapi-util.c` qapi_bool_parse) and the error
 * sentences those files produce in QEMU 7.2. Pure functions; errors are thrown as `CliError`.
 * @module
 */
import { UserError } from "../core/types.ts";

/**
 * A command-line error: `message` is the line QEMU prints after `<prog>: ` (location included),
 * `hint` the optional extra lines QEMU prints after it (error_append_hint), each ending in "\n".
 */
export class CliError extends UserError {
  /** Extra lines printed verbatim after the message (QEMU's hints), or "". */
  readonly hint: string;
  constructor(message: string, hint = "") {
    super(message);
    this.name = "CliError";
    this.hint = hint;
  }
}

/** Prefix a location (`-m 12q`) to an error, keeping its hint; non-CLI errors pass through. */
export function withLocation(loc: string, err: unknown): unknown {
  if (err instanceof CliError) return new CliError(`${loc}: ${err.message}`, err.hint);
  if (err instanceof UserError) return new CliError(`${loc}: ${err.message}`);
  return err;
}

/** True for QEMU's help words: "help" and "?" (util/cutils.c is_help_option). */
export function isHelpOption(s: string): boolean {
  return s === "help" || s === "?";
}

/** One key=value of a QemuOpts string. `flag` is set when it was written bare (`server`, `nowait`). */
export interface OptPair {
  key: string;
  value: string;
  flag: boolean;
}

/** Result of a QemuOpts parse: pairs in order, plus whether a bare `help`/`?` was seen. */
export interface ParsedOpts {
  pairs: OptPair[];
  help: boolean;
}

/** Read a value up to an unescaped comma (`,,` is a literal comma), as get_opt_value does. Returns [value, next index]. */
function optValue(s: string, start: number): [string, number] {
  let out = "";
  let i = start;
  for (;;) {
    const comma = s.indexOf(",", i);
    if (comma < 0) return [out + s.slice(i), s.length];
    if (s[comma + 1] === ",") {
      out += s.slice(i, comma + 1);
      i = comma + 2;
      continue;
    }
    return [out + s.slice(i, comma), comma];
  }
}

/** Read a name up to "=" or ",": get_opt_name (names never contain escapes). */
function optName(s: string, start: number): [string, number] {
  let end = start;
  while (end < s.length && s[end] !== "=" && s[end] !== ",") end++;
  return [s.slice(start, end), end];
}

/**
 * Split a QemuOpts string (`stdio,id=c0,signal=off`): the first bare value takes `implied` as its key,
 * `,,` escapes a comma, a bare `name` means name=on and `noname` means name=off (QEMU 7.2 accepts and
 * warns), `help`/`?` requests help. `id` is returned like any other key.
 */
export function parseQemuOpts(s: string, implied?: string): ParsedOpts {
  const pairs: OptPair[] = [];
  let help = false;
  let first = implied;
  let i = 0;
  while (i < s.length) {
    const [name, nameEnd] = optName(s, i);
    if (s[nameEnd] !== "=") {
      if (first !== undefined) {
        const [value, end] = optValue(s, i);
        pairs.push({ key: first, value, flag: false });
        i = end;
      } else {
        if (name.startsWith("no")) {
          pairs.push({ key: name.slice(2), value: "off", flag: true });
        } else if (isHelpOption(name)) {
          help = true;
        } else {
          pairs.push({ key: name, value: "on", flag: true });
        }
        i = nameEnd;
      }
    } else {
      const [value, end] = optValue(s, nameEnd + 1);
      pairs.push({ key: name, value, flag: false });
      i = end;
    }
    first = undefined;
    if (s[i] === ",") i++;
  }
  return { pairs, help };
}

/** A keyval parse (`-M`, `-smp`, `-boot`): keys in order (later duplicates replace), help requested or not. */
export interface ParsedKeyval {
  pairs: [string, string][];
  help: boolean;
}

/** QAPI name: letters, digits, '-' and '_' (keyval.c parse_qapi_name, without dotted fragments). */
const QAPI_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

/**
 * Parse keyval syntax as keyval_parse_into does: the first bare value takes `implied`; a bare word is
 * an error ("Expected '=' after parameter 'x'") unless `bareFlags` lists it (the cover letter's
 * `-M microvm,legacy`), in which case it means "on". Dotted keys are kept whole.
 */
export function parseKeyval(
  s: string,
  implied: string | undefined,
  bareFlags: readonly string[] = [],
): ParsedKeyval {
  const pairs: [string, string][] = [];
  let help = false;
  let i = 0;
  let imp = implied;
  while (i < s.length) {
    let len = 0;
    while (i + len < s.length && s[i + len] !== "=" && s[i + len] !== ",") len++;
    const word = s.slice(i, i + len);
    if (len > 0 && s[i + len] !== "=") {
      if (isHelpOption(word)) {
        help = true;
        i += len;
        if (s[i] === ",") i++;
        imp = undefined;
        continue;
      }
      if (imp !== undefined) {
        pairs.push([imp, word]);
        i += len;
        if (s[i] === ",") i++;
        imp = undefined;
        continue;
      }
    }
    imp = undefined;
    const key = word;
    const fragments = key.split(".");
    if (len === 0 || fragments.some((f) => !QAPI_NAME.test(f) && !/^[0-9]+$/.test(f))) {
      throw new CliError(`Invalid parameter '${key}'`);
    }
    if (fragments.some((f) => f.length >= 128)) {
      throw new CliError(`Parameter '${key}' is too long`);
    }
    if (s[i + len] !== "=") {
      if (bareFlags.includes(key)) {
        pairs.push([key, "on"]);
        i += len;
        if (s[i] === ",") i++;
        continue;
      }
      throw new CliError(`Expected '=' after parameter '${key}'`);
    }
    let j = i + len + 1;
    let val = "";
    for (;;) {
      if (j >= s.length) break;
      if (s[j] === ",") {
        j++;
        if (s[j] !== ",") break;
      }
      val += s[j++];
    }
    pairs.push([key, val]);
    i = j;
  }
  return { pairs, help };
}

/** qapi_bool_parse: on/yes/true/y and off/no/false/n; null when invalid. */
export function parseBoolWord(value: string): boolean | null {
  if (value === "on" || value === "yes" || value === "true" || value === "y") return true;
  if (value === "off" || value === "no" || value === "false" || value === "n") return false;
  return null;
}

/** Parse a bool option value or throw QEMU's "Parameter 'NAME' expects 'on' or 'off'". */
export function parseBool(name: string, value: string): boolean {
  const b = parseBoolWord(value);
  if (b === null) throw new CliError(`Parameter '${name}' expects 'on' or 'off'`);
  return b;
}

/** Parse an OnOffAuto value or throw QEMU's enum error ("Parameter 'NAME' does not accept value 'V'"). */
export function parseOnOffAuto(name: string, value: string): "on" | "off" | "auto" {
  if (value === "on" || value === "off" || value === "auto") return value;
  throw new CliError(`Parameter '${name}' does not accept value '${value}'`);
}

/** Outcome of a strto* style parse: a value, or why not. */
export type NumberParse = { ok: true; value: bigint } | { ok: false; reason: "invalid" | "range" };

const U64_MAX = (1n << 64n) - 1n;

/**
 * qemu_strtou64 with base 0 (decimal, 0x hex, leading-0 octal), whole string, optional leading
 * whitespace and sign ("-1" wraps modulo 2^64 as strtoull does).
 */
export function parseU64(str: string): NumberParse {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(str);
  if (!m) return { ok: false, reason: "invalid" };
  const body = m[2];
  let v: bigint;
  if (/^0[xX]/.test(body)) v = BigInt(body);
  else if (body.length > 1 && body[0] === "0") v = BigInt("0o" + body.slice(1));
  else v = BigInt(body);
  if (v > U64_MAX) return { ok: false, reason: "range" };
  if (m[1] === "-") v = (-v) & U64_MAX;
  return { ok: true, value: v };
}

/** qemu_strtoi64 base 0: like parseU64 but signed, range-checked to int64. */
export function parseI64(str: string): NumberParse {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(str);
  if (!m) return { ok: false, reason: "invalid" };
  const body = m[2];
  let v: bigint;
  if (/^0[xX]/.test(body)) v = BigInt(body);
  else if (body.length > 1 && body[0] === "0") v = BigInt("0o" + body.slice(1));
  else v = BigInt(body);
  if (m[1] === "-") v = -v;
  if (v > (1n << 63n) - 1n || v < -(1n << 63n)) return { ok: false, reason: "range" };
  return { ok: true, value: v };
}

const SUFFIX_POWER: Record<string, number> = { B: 0, K: 1, M: 2, G: 3, T: 4, P: 5, E: 6 };

/**
 * QEMU's do_strtosz: decimal (or 0x hex) integer, optional fraction, optional suffix B/K/M/G/T/P/E
 * (either case, powers of 1024); no suffix means `defaultSuffix`. A fraction needs a scale; a
 * negative number or an exponent is invalid; more than 2^64-1 is out of range. Rounds 0.5 up.
 */
export function parseSize(str: string, defaultSuffix: "B" | "M" = "B"): NumberParse {
  const m = /^[ \t\n\v\f\r]*\+?([0-9]+)(.*)$/s.exec(str);
  if (!m) return { ok: false, reason: "invalid" };
  let rest = m[2];
  let intPart = BigInt(m[1]);
  let hex = false;
  // Fixed-point fraction with 64 fractional bits, as QEMU computes it.
  let frac = 0n;
  if (intPart === 0n && /^[xX]/.test(rest)) {
    const h = /^[xX]([0-9a-fA-F]+)(.*)$/s.exec(rest);
    if (!h) return { ok: false, reason: "invalid" };
    intPart = BigInt("0x" + h[1]);
    rest = h[2];
    if (rest.startsWith(".")) return { ok: false, reason: "invalid" };
    hex = true;
  } else if (rest.startsWith(".")) {
    const f = /^\.([0-9]*)(.*)$/s.exec(rest)!;
    if (/^[eE]/.test(f[2]) && f[1].length > 0) return { ok: false, reason: "invalid" };
    frac = f[1].length === 0 ? 0n : BigInt(Math.floor(Number("0." + f[1]) * 2 ** 52)) << 12n;
    rest = f[2];
  }
  if (intPart > U64_MAX) return { ok: false, reason: "range" };
  let power = SUFFIX_POWER[defaultSuffix];
  if (rest.length > 0 && SUFFIX_POWER[rest[0].toUpperCase()] !== undefined) {
    power = SUFFIX_POWER[rest[0].toUpperCase()];
    rest = rest.slice(1);
  }
  if (rest.length > 0) return { ok: false, reason: "invalid" };
  void hex;
  const mul = 1n << BigInt(10 * power);
  if (mul === 1n) {
    if (frac !== 0n) return { ok: false, reason: "invalid" };
    return { ok: true, value: intPart };
  }
  const fracScaled = frac * mul;
  let v = intPart * mul + (fracScaled >> 64n);
  if ((fracScaled >> 63n) & 1n) v += 1n;
  if (v > U64_MAX) return { ok: false, reason: "range" };
  return { ok: true, value: v };
}

/**
 * Parse a QEMU_OPT_SIZE option value (parse_option_size) or throw its errors:
 * "Value 'V' is out of range for parameter 'NAME'" / "Parameter 'NAME' expects a non-negative number
 * below 2^64" with QEMU's suffix hint.
 */
export function parseSizeOption(name: string, value: string): bigint {
  const r = parseSize(value);
  if (r.ok) return r.value;
  if (r.reason === "range") throw new CliError(`Value '${value}' is out of range for parameter '${name}'`);
  throw new CliError(
    `Parameter '${name}' expects a non-negative number below 2^64`,
    "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.\n",
  );
}

/** Parse a QEMU_OPT_NUMBER option value (parse_option_number) or throw its errors. */
export function parseNumberOption(name: string, value: string): bigint {
  const r = parseU64(value);
  if (r.ok) return r.value;
  if (r.reason === "range") throw new CliError(`Value '${value}' is too large for parameter '${name}'`);
  throw new CliError(`Parameter '${name}' expects a number`);
}

/** QEMU's id_wellformed: a letter, then letters, digits, '-', '.', '_'. */
export function idWellformed(id: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_.-]*$/.test(id);
}

/** Check an id= value as qemu_opts_create does, throwing QEMU's error with its hint. */
export function checkId(id: string): void {
  if (!idWellformed(id)) {
    throw new CliError(
      "Parameter 'id' expects an identifier",
      "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.\n",
    );
  }
}

/** Option description for a QemuOpts list with a fixed set of keys (QemuOptDesc). */
export interface OptDesc {
  name: string;
  type: "string" | "bool" | "number" | "size";
  help?: string;
}

/** Typed values of a validated QemuOpts list: string, boolean or bigint per the OptDesc type. */
export type OptValues = Map<string, string | boolean | bigint>;

/**
 * Validate pairs against a QemuOptsList description as opt_validate does: unknown key →
 * "Invalid parameter 'k'", values typed per desc (later duplicates win). `id` is skipped.
 */
export function validateOpts(pairs: readonly OptPair[], desc: readonly OptDesc[]): OptValues {
  const out: OptValues = new Map();
  for (const p of pairs) {
    if (p.key === "id") continue;
    const d = desc.find((x) => x.name === p.key);
    if (!d) throw new CliError(`Invalid parameter '${p.key}'`);
    switch (d.type) {
      case "string":
        out.set(p.key, p.value);
        break;
      case "bool":
        out.set(p.key, parseBool(p.key, p.value));
        break;
      case "number":
        out.set(p.key, parseNumberOption(p.key, p.value));
        break;
      case "size":
        out.set(p.key, parseSizeOption(p.key, p.value));
        break;
    }
  }
  return out;
}

/** qemu_opts_print_help: "<list> options:" then sorted "  name=<type>  - help" lines. */
export function formatOptsHelp(listName: string, desc: readonly OptDesc[]): string {
  const typeName = { string: "str", bool: "bool (on/off)", number: "num", size: "size" } as const;
  const lines = desc.map((d) => {
    let s = `  ${d.name}=<${typeName[d.type]}>`;
    if (d.help) s = s.padEnd(24) + ` - ${d.help}`;
    return s;
  }).sort();
  if (lines.length === 0) return `There are no options for ${listName}.\n`;
  return `${listName} options:\n` + lines.map((l) => l + "\n").join("");
}

/** object_property_help: "  name=<type>  - description (default: json)". */
export function formatPropHelp(
  name: string,
  type: string,
  help?: string,
  def?: string | number | boolean,
): string {
  let s = `  ${name}=<${type}>`;
  if (help !== undefined || def !== undefined) s = s.padEnd(24) + " - ";
  if (help !== undefined) s += help;
  if (def !== undefined) s += ` (default: ${JSON.stringify(def)})`;
  return s;
}
