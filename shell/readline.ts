/**
 * Interactive line editing for the human monitor, as QEMU's util/readline.c does it on a character stream
 * (the monitor's input arrives through a chardev: a mux'ed stdio in raw mode, a socket, a pty), so it works
 * byte by byte: echo, Backspace/Delete, ←/→/Home/End, Ctrl-E/Ctrl-U/Ctrl-K/Ctrl-W, ↑/↓ history, Tab completion
 * (commands, `info` subcommands, device ids, device drivers, file paths). The history is kept across
 * sessions in ~/.microvm_ts_history.
 * @module
 */
import type { HmpSession } from "./hmp.ts";

/** Most history entries kept (QEMU READLINE_MAX_CMDS is 64; the file keeps more). */
export const HISTORY_MAX = 1000;

/** Longest command line (QEMU READLINE_CMD_BUF_SIZE - 1). */
export const LINE_MAX = 4095;

/** Default history file: $HOME/.microvm_ts_history (null when HOME is unset). */
export function defaultHistoryPath(): string | null {
  const home = Deno.env.get("HOME");
  return home ? `${home}/.microvm_ts_history` : null;
}

/** Lines of a history file, oldest first; empty when it does not exist or cannot be read. */
export function loadHistoryFile(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n").filter((l) => l.trim() !== "").slice(-HISTORY_MAX);
  } catch {
    return []; // no history yet, or unreadable: start empty as a shell does
  }
}

/** Append one line to a history file (best effort: a read-only home must not break the monitor). */
export function appendHistoryFile(path: string, line: string): void {
  try {
    Deno.writeTextFileSync(path, line + "\n", { append: true, create: true });
    // Bounded: past twice the limit, keep the newest HISTORY_MAX lines.
    if (Deno.statSync(path).size > 2 * HISTORY_MAX * 80) {
      const keep = Deno.readTextFileSync(path).split("\n").filter((l) => l.trim() !== "").slice(-HISTORY_MAX);
      Deno.writeTextFileSync(path, keep.join("\n") + "\n");
    }
  } catch {
    // ignored on purpose: history is a convenience
  }
}

/** What a completer returns: candidates for the word that ends at the cursor, and that word's start. */
export interface Completion {
  start: number;
  candidates: string[];
}

/** Options of `new LineEditor`. */
export interface LineEditorOptions {
  prompt: string;
  /** Terminal output (echo, redraws). */
  write: (text: string) => void;
  /** A complete line was entered. */
  onLine: (line: string) => void;
  /** Completion for the text before the cursor. */
  complete?: (before: string) => Completion;
  /** Initial history, oldest first. */
  history?: string[];
  /** Called for each new history line (to persist it). */
  onHistory?: (line: string) => void;
}

function commonPrefix(list: string[]): string {
  if (list.length === 0) return "";
  let p = list[0];
  for (const s of list) {
    while (!s.startsWith(p)) p = p.slice(0, -1);
  }
  return p;
}

/**
 * A byte-driven line editor (QEMU readline semantics, ANSI/VT100 keys).
 *
 * @example
 * ```ts
 * import { LineEditor } from "./readline.ts";
 * const lines: string[] = [];
 * const ed = new LineEditor({ prompt: "(qemu) ", write: () => {}, onLine: (l) => lines.push(l) });
 * ed.input("info stat\x7fus\r");
 * console.assert(lines[0] === "info status");
 * ```
 */
export class LineEditor {
  readonly #o: LineEditorOptions;
  #buf = "";
  #stopped = false;
  #pos = 0;
  #esc: "" | "esc" | "csi" | "ss3" = "";
  #csiArg = "";
  readonly #hist: string[];
  #histIdx = -1;
  #lastWasCr = false;
  prompt: string;

  constructor(opts: LineEditorOptions) {
    this.#o = opts;
    this.prompt = opts.prompt;
    this.#hist = [...(opts.history ?? [])].slice(-HISTORY_MAX);
  }

  /** History, oldest first. */
  get history(): readonly string[] {
    return this.#hist;
  }

  /** The line being edited. */
  get line(): string {
    return this.#buf;
  }

  /** Print the prompt and the current line (after output or on focus). */
  showPrompt(): void {
    this.#o.write(
      this.prompt + this.#buf + (this.#pos < this.#buf.length ? `\x1b[${this.#buf.length - this.#pos}D` : ""),
    );
  }

  /** Feed terminal input. */
  input(data: string | Uint8Array): void {
    const s = typeof data === "string" ? data : new TextDecoder("latin1").decode(data);
    for (const ch of s) {
      if (this.#stopped) return;
      this.#key(ch);
    }
  }

  /** Take no more input (after `quit`: the rest of what was typed is neither echoed nor run). */
  stop(): void {
    this.#stopped = true;
  }

  #redraw(): void {
    const back = this.#buf.length - this.#pos;
    this.#o.write("\r" + this.prompt + this.#buf + "\x1b[K" + (back > 0 ? `\x1b[${back}D` : ""));
  }

  #insert(text: string): void {
    // QEMU's READLINE_CMD_BUF_SIZE: a line holds at most 4095 characters; more are dropped.
    text = text.slice(0, Math.max(0, LINE_MAX - this.#buf.length));
    if (text === "") return;
    this.#buf = this.#buf.slice(0, this.#pos) + text + this.#buf.slice(this.#pos);
    this.#pos += text.length;
    if (this.#pos === this.#buf.length) this.#o.write(text);
    else this.#redraw();
  }

  #key(ch: string): void {
    const c = ch.charCodeAt(0);
    if (this.#esc === "esc") {
      this.#esc = ch === "[" ? "csi" : ch === "O" ? "ss3" : "";
      this.#csiArg = "";
      return;
    }
    if (this.#esc === "csi" || this.#esc === "ss3") {
      if (/[0-9;]/.test(ch)) {
        this.#csiArg += ch;
        return;
      }
      this.#esc = "";
      this.#escKey(ch, this.#csiArg);
      return;
    }
    const wasCr = this.#lastWasCr;
    this.#lastWasCr = false;
    switch (c) {
      case 0x1b:
        this.#esc = "esc";
        return;
      case 0x0d:
        this.#lastWasCr = true;
        this.#enter();
        return;
      case 0x0a:
        if (!wasCr) this.#enter();
        return;
      case 0x7f:
      case 0x08:
        if (this.#pos > 0) {
          this.#buf = this.#buf.slice(0, this.#pos - 1) + this.#buf.slice(this.#pos);
          this.#pos--;
          this.#redraw();
        }
        return;
      case 0x09:
        this.#complete();
        return;
      case 0x05: // Ctrl-E
        this.#pos = this.#buf.length;
        this.#redraw();
        return;
      case 0x02: // Ctrl-B
        this.#escKey("D", "");
        return;
      case 0x06: // Ctrl-F
        this.#escKey("C", "");
        return;
      case 0x0b: // Ctrl-K
        this.#buf = this.#buf.slice(0, this.#pos);
        this.#redraw();
        return;
      case 0x15: // Ctrl-U
        this.#buf = this.#buf.slice(this.#pos);
        this.#pos = 0;
        this.#redraw();
        return;
      case 0x17: { // Ctrl-W: delete the word before the cursor
        const before = this.#buf.slice(0, this.#pos).replace(/\S+\s*$/, "");
        this.#buf = before + this.#buf.slice(this.#pos);
        this.#pos = before.length;
        this.#redraw();
        return;
      }
      case 0x10: // Ctrl-P
        this.#escKey("A", "");
        return;
      case 0x0e: // Ctrl-N
        this.#escKey("B", "");
        return;
      default:
        if (c >= 0x20 && c !== 0x7f) this.#insert(ch);
    }
  }

  #escKey(final: string, arg: string): void {
    switch (final) {
      case "A": // up
        if (this.#hist.length === 0) return;
        if (this.#histIdx === -1) this.#histIdx = this.#hist.length;
        if (this.#histIdx > 0) this.#histIdx--;
        this.#buf = this.#hist[this.#histIdx];
        this.#pos = this.#buf.length;
        this.#redraw();
        return;
      case "B": // down
        if (this.#histIdx === -1) return;
        this.#histIdx++;
        if (this.#histIdx >= this.#hist.length) {
          this.#histIdx = -1;
          this.#buf = "";
        } else this.#buf = this.#hist[this.#histIdx];
        this.#pos = this.#buf.length;
        this.#redraw();
        return;
      case "C":
        if (this.#pos < this.#buf.length) {
          this.#pos++;
          this.#o.write("\x1b[C");
        }
        return;
      case "D":
        if (this.#pos > 0) {
          this.#pos--;
          this.#o.write("\x1b[D");
        }
        return;
      case "H":
        this.#pos = 0;
        this.#redraw();
        return;
      case "F":
        this.#pos = this.#buf.length;
        this.#redraw();
        return;
      case "~":
        if (arg === "1" || arg === "7") this.#escKey("H", "");
        else if (arg === "4" || arg === "8") this.#escKey("F", "");
        else if (arg === "3" && this.#pos < this.#buf.length) {
          this.#buf = this.#buf.slice(0, this.#pos) + this.#buf.slice(this.#pos + 1);
          this.#redraw();
        }
        return;
    }
  }

  #enter(): void {
    const line = this.#buf;
    this.#buf = "";
    this.#pos = 0;
    this.#histIdx = -1;
    this.#o.write("\r\n");
    if (line.trim() !== "" && this.#hist[this.#hist.length - 1] !== line) {
      this.#hist.push(line);
      if (this.#hist.length > HISTORY_MAX) this.#hist.shift();
      this.#o.onHistory?.(line);
    }
    this.#o.onLine(line);
  }

  #complete(): void {
    if (!this.#o.complete) return;
    const before = this.#buf.slice(0, this.#pos);
    const { start, candidates } = this.#o.complete(before);
    const word = before.slice(start);
    const matches = [...new Set(candidates.filter((c) => c.startsWith(word)))].sort();
    if (matches.length === 0) return;
    if (matches.length === 1) {
      const m = matches[0];
      this.#insert(m.slice(word.length) + (m.endsWith("/") ? "" : " "));
      return;
    }
    const common = commonPrefix(matches);
    if (common.length > word.length) {
      this.#insert(common.slice(word.length));
      return;
    }
    // Several candidates: list them in columns under the line (readline_completion), then redraw.
    const width = Math.max(...matches.map((m) => m.length)) + 2;
    const perLine = Math.max(1, Math.floor(80 / width));
    let out = "\r\n";
    matches.forEach((m, i) => {
      out += m.padEnd(width);
      if ((i + 1) % perLine === 0 || i === matches.length - 1) out += "\r\n";
    });
    this.#o.write(out);
    this.showPrompt();
  }
}

function fileCandidates(word: string): string[] {
  const slash = word.lastIndexOf("/");
  const dir = slash >= 0 ? word.slice(0, slash + 1) : "";
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir === "" ? "." : dir)) {
      out.push(dir + e.name + (e.isDirectory ? "/" : ""));
    }
  } catch {
    return []; // unreadable directory: nothing to complete
  }
  return out;
}

/** Tab completion for the human monitor: what QEMU's monitor_find_completion offers. */
export function hmpCompleter(
  hmp: HmpSession,
  driverNames: () => string[] = () => [],
): (before: string) => Completion {
  return (before: string): Completion => {
    const m = before.match(/^(\s*)(\S*)$/);
    if (m) return { start: m[1].length, candidates: hmp.commandNames() };
    const words = before.trimStart().split(/\s+/);
    const cmd = words[0];
    const start = before.length - words[words.length - 1].length;
    const argIndex = words.length - 1;
    switch (cmd) {
      case "info":
      case "help":
      case "?":
        if (argIndex === 1) {
          return { start, candidates: cmd === "info" ? hmp.infoNames() : hmp.commandNames() };
        }
        if (argIndex === 2 && words[1] === "info") return { start, candidates: hmp.infoNames() };
        return { start, candidates: [] };
      case "device_del":
        return { start, candidates: argIndex === 1 ? hmp.deviceNames() : [] };
      case "device_add":
        return { start, candidates: argIndex === 1 ? driverNames() : [] };
      case "memsave":
      case "pmemsave":
        return { start, candidates: argIndex === 3 ? fileCandidates(words[3]) : [] };
      case "logfile":
        return { start, candidates: argIndex === 1 ? fileCandidates(words[1]) : [] };
      default:
        return { start, candidates: [] };
    }
  };
}
