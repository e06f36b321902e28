/**
 * Line editor and completion tests (byte input as a terminal sends it).
 * @module
 */
import assert from "node:assert/strict";
import { appendHistoryFile, hmpCompleter, LineEditor, loadHistoryFile } from "./readline.ts";
import { HmpSession } from "./hmp.ts";
import { makeFakeMachine } from "./_fake_machine_test_util.ts";

function editor(history: string[] = []) {
  const lines: string[] = [];
  let screen = "";
  const hmp = new HmpSession(makeFakeMachine());
  const ed = new LineEditor({
    prompt: "(qemu) ",
    write: (s) => void (screen += s),
    onLine: (l) => void lines.push(l),
    complete: hmpCompleter(hmp, () => ["virtio-blk-device", "virtio-rng-device"]),
    history,
  });
  return { ed, lines, screen: () => screen, clear: () => void (screen = "") };
}

Deno.test("LineEditor echoes, edits with Backspace and cursor keys, and ends lines on CR, LF or CRLF", () => {
  const { ed, lines, screen } = editor();
  ed.input("info stax\x7ftus\r\n");
  ed.input("ab\x1b[Dc\x1b[C\x1b[3~d\n"); // insert before the last char, delete at end is a no-op
  ed.input("xyz\x15q\r");
  assert.deepEqual(lines, ["info status", "acbd", "q"]);
  assert.ok(screen().startsWith("info sta"));
});

Deno.test("LineEditor recalls history with the arrow keys, oldest first, without duplicates in a row", () => {
  const { ed, lines } = editor(["info name"]);
  ed.input("info status\r");
  ed.input("info status\r");
  ed.input("\x1b[A\r"); // previous: info status
  ed.input("\x1b[A\x1b[A\r"); // two back: info name
  ed.input("\x1b[A\x1b[B\x1b[B\r"); // down past the end: empty line
  assert.deepEqual(lines, ["info status", "info status", "info status", "info name", ""]);
  assert.deepEqual(ed.history, ["info name", "info status", "info name"]);
});

Deno.test("LineEditor completes commands, info subcommands and drivers; lists ambiguous candidates", () => {
  const { ed, lines, screen, clear } = editor();
  ed.input("sys\t\r");
  ed.input("info mt\t\r");
  ed.input("device_add virtio-b\t\r");
  clear();
  ed.input("info c\t");
  assert.match(screen(), /chardev\s+cpus/);
  ed.input("\x15\r");
  assert.deepEqual(lines, ["system_reset ", "info mtree ", "device_add virtio-blk-device ", ""]);
});

Deno.test("hmpCompleter completes file names for memsave", () => {
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(`${dir}/dump-one.bin`, "");
  const c = hmpCompleter(new HmpSession(makeFakeMachine()));
  const before = `memsave 0 16 ${dir}/dump-`;
  const r = c(before);
  assert.equal(r.start, before.length - `${dir}/dump-`.length);
  assert.deepEqual(r.candidates, [`${dir}/dump-one.bin`]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("history files are appended and read back, oldest first", () => {
  const dir = Deno.makeTempDirSync();
  const p = `${dir}/h`;
  assert.deepEqual(loadHistoryFile(p), []);
  appendHistoryFile(p, "info status");
  appendHistoryFile(p, "quit");
  assert.deepEqual(loadHistoryFile(p), ["info status", "quit"]);
  Deno.removeSync(dir, { recursive: true });
});
