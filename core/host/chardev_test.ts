import assert from "node:assert/strict";
import type { CharReceiver } from "../types.ts";
import { UserError } from "../types.ts";
import { BufferChar, FileChar, NullChar, openChardev, PipeChar, SocketChar } from "./chardev.ts";

/** A receiver with a settable amount of room. */
class Sink implements CharReceiver {
  got: number[] = [];
  room = 1000;
  canReceive(): number {
    return this.room;
  }
  receive(data: Uint8Array): void {
    assert.ok(data.length <= this.room, "never more than canReceive()");
    this.got.push(...data);
    this.room -= data.length;
  }
}

/** Wait (event loop turns) until cond() holds; fails after 3 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const text = (a: number[]) => String.fromCharCode(...a);

Deno.test("BufferChar delivers input within canReceive and retries on accept", async () => {
  const chr = new BufferChar();
  const sink = new Sink();
  sink.room = 2;
  chr.setReceiver(sink);
  chr.inject("hello");
  assert.equal(text(sink.got), "he");
  assert.equal(chr.pendingInput, 3);
  sink.room = 2;
  chr.accept(); // never delivers re-entrantly
  assert.equal(text(sink.got), "he");
  await until(() => sink.got.length === 4, "retry after accept");
  sink.room = 10;
  await until(() => sink.got.length === 5, "timer retry");
  assert.equal(text(sink.got), "hello");
  chr.close();
});

Deno.test("BufferChar holds input until a receiver is set", () => {
  const chr = new BufferChar();
  chr.inject("abc");
  const sink = new Sink();
  chr.setReceiver(sink);
  chr.flushInput();
  assert.equal(text(sink.got), "abc");
  chr.close();
});

Deno.test("HostChar mux: Ctrl-A h prints help, Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A x quits", () => {
  let quit = 0;
  const chr = new BufferChar({ mux: true, onQuit: () => quit++ });
  const sink = new Sink();
  chr.setReceiver(sink);
  chr.inject("a\x01\x01b\x01h");
  assert.deepEqual(sink.got, [0x61, 0x01, 0x62]);
  const help = chr.takeText();
  assert.ok(help.startsWith("\n\rC-a h    print this help\n\r"), help);
  assert.ok(help.endsWith("C-a C-a  sends C-a\n\r"), help);
  chr.inject("\x01x");
  assert.equal(chr.takeText(), "QEMU: Terminated\n\r");
  assert.equal(quit, 1);
  chr.close();
});

Deno.test("HostChar mux: Ctrl-A c switches input between device and monitor", () => {
  const focus: boolean[] = [];
  const chr = new BufferChar({ mux: true, onToggleMonitor: (m) => focus.push(m) });
  const dev = new Sink();
  const mon = new Sink();
  chr.setReceiver(dev);
  chr.setMonitorReceiver(mon);
  chr.inject("1\x01c2\x01c3");
  assert.equal(text(dev.got), "13");
  assert.equal(text(mon.got), "2");
  assert.deepEqual(focus, [true, false]);
  chr.close();
});

Deno.test("HostChar without mux passes Ctrl-A through", () => {
  const chr = new BufferChar();
  const sink = new Sink();
  chr.setReceiver(sink);
  chr.inject("\x01x");
  assert.deepEqual(sink.got, [0x01, 0x78]);
  chr.close();
});

Deno.test("NullChar drops output and is connected", () => {
  const chr = new NullChar();
  chr.write(Uint8Array.of(1, 2, 3));
  assert.equal(chr.connected, true);
  assert.equal(chr.filename, "null");
  chr.close();
});

Deno.test("FileChar truncates by default and appends with append=on", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/out.log`;
  await Deno.writeTextFile(path, "old\n");
  const a = await openChardev({ backend: "file", id: "f", path });
  a.write(new TextEncoder().encode("one\n"));
  a.close();
  assert.equal(await Deno.readTextFile(path), "one\n");
  const b = await openChardev({ backend: "file", id: "f", path, append: "on" });
  b.write(new TextEncoder().encode("two\n"));
  b.close();
  assert.equal(await Deno.readTextFile(path), "one\ntwo\n");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("FileChar reports a missing directory in QEMU's words", () => {
  assert.throws(
    () => new FileChar("/nonexistent-dir/x.log"),
    (e: unknown) =>
      e instanceof UserError &&
      e.message === "Could not open '/nonexistent-dir/x.log': No such file or directory",
  );
});

Deno.test("openChardev logfile copies output", async () => {
  const dir = await Deno.makeTempDir();
  const chr = await openChardev({ backend: "null", id: "n", logfile: `${dir}/log` });
  chr.write(new TextEncoder().encode("xyz"));
  chr.close();
  assert.equal(await Deno.readTextFile(`${dir}/log`), "xyz");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("openChardev rejects unknown backends and bad flags", async () => {
  await assert.rejects(openChardev({ backend: "bogus", id: "x" }), /'bogus' is not a valid char driver name/);
  await assert.rejects(openChardev({ backend: "pty", id: "x" }), UserError);
  await assert.rejects(openChardev({ backend: "file", id: "x" }), /no filename/);
  await assert.rejects(
    openChardev({ backend: "socket", id: "x", path: "/tmp/x", server: "maybe" }),
    /Parameter 'server' expects 'on' or 'off'/,
  );
});

Deno.test("PipeChar uses path.in/path.out FIFOs", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/p`;
  const mk = new Deno.Command("mkfifo", { args: [`${base}.in`, `${base}.out`] });
  if (!(await mk.output()).success) {
    console.log("SKIP: mkfifo unavailable");
    return;
  }
  const chr = await openChardev({ backend: "pipe", id: "p", path: base });
  assert.ok(chr instanceof PipeChar);
  const sink = new Sink();
  chr.setReceiver(sink);
  const reader = await Deno.open(`${base}.out`, { read: true, write: true });
  chr.write(new TextEncoder().encode("to-host"));
  const buf = new Uint8Array(16);
  const n = await reader.read(buf);
  assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "to-host");
  const writer = await Deno.open(`${base}.in`, { read: true, write: true });
  await writer.write(new TextEncoder().encode("to-guest"));
  await until(() => sink.got.length === 8, "pipe input");
  assert.equal(text(sink.got), "to-guest");
  chr.close();
  reader.close();
  writer.close();
  await new Promise((r) => setTimeout(r, 10));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("PipeChar reports a missing path in QEMU's words", () => {
  assert.throws(
    () => new PipeChar("/nonexistent-dir/p"),
    /Could not open '\/nonexistent-dir\/p': No such file/,
  );
});

Deno.test("SocketChar unix server with wait=off talks to a client both ways", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.sock`;
  const chr = await openChardev({ backend: "socket", id: "s", path, server: "on", wait: "off" });
  assert.ok(chr instanceof SocketChar);
  assert.equal(chr.connected, false);
  assert.equal(chr.filename, `disconnected:unix:${path},server=on`);
  chr.write(new TextEncoder().encode("dropped"));
  const sink = new Sink();
  chr.setReceiver(sink);
  const client = await Deno.connect({ transport: "unix", path });
  await until(() => chr.connected, "accept");
  chr.write(new TextEncoder().encode("guest-out"));
  const buf = new Uint8Array(64);
  let got = "";
  while (got.length < 9) {
    const n = await client.read(buf);
    if (n === null) break;
    got += new TextDecoder().decode(buf.subarray(0, n));
  }
  assert.equal(got, "guest-out", "output before the connection was dropped");
  await client.write(new TextEncoder().encode("host-in"));
  await until(() => sink.got.length === 7, "socket input");
  assert.equal(text(sink.got), "host-in");
  client.close();
  await until(() => !chr.connected, "disconnect");
  chr.close();
  await new Promise((r) => setTimeout(r, 10));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("SocketChar unix client connects to a listener; refused connection is a UserError", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c.sock`;
  await assert.rejects(
    openChardev({ backend: "socket", id: "c", path }),
    (e: unknown) => e instanceof UserError && /^Failed to connect to '.*c\.sock': /.test(e.message),
  );
  const listener = Deno.listen({ transport: "unix", path });
  const accepted = listener.accept();
  const chr = await openChardev({ backend: "socket", id: "c", path, server: "off" });
  const conn = await accepted;
  assert.equal(chr.connected, true);
  chr.write(Uint8Array.of(0x41));
  const buf = new Uint8Array(4);
  assert.equal(await conn.read(buf), 1);
  assert.equal(buf[0], 0x41);
  chr.close();
  conn.close();
  listener.close();
  await new Promise((r) => setTimeout(r, 10));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("SocketChar tcp server with wait=on resolves after the first client", async () => {
  // Pick a free port first, then hand it to the server (port 0 cannot be known before open resolves).
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const origError = console.error;
  const printed: string[] = [];
  console.error = (...a: unknown[]) => printed.push(a.join(" "));
  try {
    const opening = openChardev({ backend: "socket", id: "t", host: "127.0.0.1", port, server: true });
    let client: Deno.Conn | null = null;
    for (let i = 0; i < 100 && !client; i++) {
      try {
        client = await Deno.connect({ hostname: "127.0.0.1", port });
      } catch {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    assert.ok(client, "connected");
    const chr = await opening;
    assert.equal(chr.connected, true);
    assert.match(
      printed[0],
      new RegExp(`QEMU waiting for connection on: disconnected:tcp:127\\.0\\.0\\.1:${port},server=on`),
    );
    const sink = new Sink();
    chr.setReceiver(sink);
    await client.write(Uint8Array.of(1, 2, 3));
    await until(() => sink.got.length === 3, "tcp input");
    chr.close();
    client.close();
    await new Promise((r) => setTimeout(r, 10));
  } finally {
    console.error = origError;
  }
});
