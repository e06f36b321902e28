import assert from "node:assert/strict";
import { makeFakeMachine } from "./_fake_machine_test_util.ts";
import { HmpSession } from "./hmp.ts";
import { appendHistoryFile, HISTORY_MAX, LINE_MAX, LineEditor } from "./readline.ts";

/** A session whose files are recorded chunk by chunk. */
function session(stream?: (t: string) => void) {
  const files = new Map<string, Uint8Array[]>();
  const h = new HmpSession(makeFakeMachine(), {
    openFile: (p) => {
      if (p.startsWith("nonexistent/")) throw new Deno.errors.NotFound("x");
      files.set(p, []);
      return { write: (d) => void files.get(p)!.push(d.slice()), close: () => {} };
    },
    ...(stream ? { stream } : {}),
  });
  return { h, files };
}

Deno.test("memsave/pmemsave: QEMU's checks and messages, quoted names, streamed in bounded chunks", () => {
  const { h, files } = session();
  assert.equal(
    h.execute("memsave 0 1000000000000 ms1"),
    "'memsave' has failed: integer is for 32-bit values\nTry \"help memsave\" for more information\n",
  );
  assert.equal(
    h.execute("pmemsave 0 4096 nonexistent/x"),
    "Error: Could not open 'nonexistent/x': No such file or directory\n",
  );
  // Double quotes are stripped (with \" escapes), single quotes are part of the name, as in QEMU.
  assert.equal(h.execute('pmemsave 0 16 "a b\\"c"'), "");
  assert.ok(files.has('a b"c'));
  assert.equal(h.execute("pmemsave 0 16 'sq'"), "");
  assert.ok(files.has("'sq'"));
  assert.equal(
    h.execute('pmemsave 0 16 "open'),
    'pmemsave: string expected\nTry "help pmemsave" for more information\n',
  );
  // 64 MiB of physical memory (the fake has 1 MiB; the rest reads as zeros): written in <= 1 MiB chunks.
  assert.equal(h.execute("pmemsave 0 0x4000000 big"), "");
  const chunks = files.get("big")!;
  assert.equal(chunks.reduce((n, c) => n + c.length, 0), 0x4000000);
  assert.ok(Math.max(...chunks.map((c) => c.length)) <= 1 << 20);
});

Deno.test("x: a count past a C int wraps as in QEMU; long dumps stream to the monitor", () => {
  const { h } = session();
  assert.equal(h.execute("x /99999999999999999999x 0"), "");
  assert.equal(h.execute("xp /4294967297xb 0"), "0000000000000000: 0x00\n");
  const streamed: string[] = [];
  const s = session((t) => streamed.push(t)).h;
  const tail = s.execute("xp /200000xb 0");
  const total = streamed.join("") + tail;
  assert.equal(total.split("\n").length - 1, 25000);
  assert.ok(streamed.length > 1 && streamed.every((c) => c.length < 1 << 17), "streamed in chunks");
});

Deno.test("the line editor keeps at most 4095 characters per line (QEMU READLINE_CMD_BUF_SIZE)", () => {
  const lines: string[] = [];
  const ed = new LineEditor({ prompt: "(qemu) ", write: () => {}, onLine: (l) => lines.push(l) });
  const t0 = performance.now();
  ed.input("x".repeat(100_000) + "\r");
  assert.equal(lines[0].length, LINE_MAX);
  assert.ok(performance.now() - t0 < 10_000);
});

Deno.test("the history file stays bounded", () => {
  const f = Deno.makeTempFileSync();
  for (let i = 0; i < 3 * HISTORY_MAX; i++) appendHistoryFile(f, `info status ${"y".repeat(100)} ${i}`);
  const lines = Deno.readTextFileSync(f).split("\n").filter((l) => l);
  assert.ok(lines.length <= 2 * HISTORY_MAX + 200, `${lines.length} lines`);
  assert.ok(lines.at(-1)!.endsWith(` ${3 * HISTORY_MAX - 1}`));
  Deno.removeSync(f);
});
