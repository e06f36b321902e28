/**
 * QMP input as QEMU 7.2's JSON lexer/streamer/parser treats it: bad bytes get an error reply and the
 * parser resynchronises; nesting, token size and token count limits give errors; duplicate keys are
 * refused; clients queue on a server socket; a client reconnecting at once gets a fresh greeting; the
 * socket file goes away when the chardev closes.
 * @module
 */
import assert from "node:assert/strict";
import { SocketChar } from "../core/host/chardev.ts";
import { makeFakeMachine } from "../shell/_fake_machine_test_util.ts";
import { startMonitor } from "../shell/monitor_server.ts";
import { QmpSession } from "../shell/qmp.ts";
import { type JsonMessage, JsonStreamer, MAX_NESTING } from "../shell/qmp_json.ts";

const enc = new TextEncoder();

/** A negotiated in-process session; returns the parsed replies of each input. */
function session(): (input: string | Uint8Array) => Record<string, unknown>[] {
  const out: string[] = [];
  const q = new QmpSession(makeFakeMachine({ accel: "tcg" }), { send: (t) => out.push(t), defer: () => {} });
  q.opened();
  q.input('{"execute":"qmp_capabilities"}');
  return (input) => {
    out.length = 0;
    q.input(input);
    return out.join("").split("\n").filter((l) => l).map((l) => JSON.parse(l));
  };
}

const err = (desc: string) => ({ error: { class: "GenericError", desc } });
const STATUS = { return: { status: "running", singlestep: false, running: true } };
const QS = '{"execute":"query-status"}';

Deno.test("QMP: an invalid byte gets one error reply, then the next command is answered", () => {
  const s = session();
  assert.deepEqual(s(new Uint8Array([0xff, ...enc.encode(QS)])), [
    err("JSON parse error, stray '\uFFFD'"),
    STATUS,
  ]);
  // The same byte inside an object: the partial object is dropped, the parser resyncs at the next brace.
  assert.deepEqual(s(new Uint8Array([...enc.encode('{"execute": '), 0xff, ...enc.encode(QS)])), [
    err("JSON parse error, stray '\uFFFD'"),
    STATUS,
  ]);
});

Deno.test("QMP: invalid UTF-8 and control characters in strings are errors, then resync", () => {
  const s = session();
  const bad = new Uint8Array([...enc.encode('{"execute": "query-'), 0xc3, 0x28, ...enc.encode('"}')]);
  assert.deepEqual(s(bad), [err("JSON parse error, invalid UTF-8 sequence in string")]);
  assert.deepEqual(s(QS), [STATUS]);
  // A raw control character ends the string token as an error; resync at the control byte.
  assert.deepEqual(s('{"execute": "query-\x01status"}\n' + QS), [
    err("JSON parse error, stray '\"query-\u0001'"),
    err("JSON parse error, expecting value"),
    STATUS,
  ]);
  assert.deepEqual(s('{"execute": "a\\qb"}'), [err("JSON parse error, invalid escape sequence in string")]);
  assert.deepEqual(s(QS), [STATUS]);
});

Deno.test("QMP: nesting deeper than 1024 is an error, not a hang or a stack overflow", () => {
  const s = session();
  const deep = "[".repeat(MAX_NESTING + 1);
  const r = s(deep);
  assert.deepEqual(r[0], err("JSON nesting depth limit exceeded"));
  // The rest of the brackets are answered (QEMU resets its counters) and the session still works.
  assert.deepEqual(s("]".repeat(MAX_NESTING + 1) + "\n" + QS).at(-1), STATUS);
  assert.deepEqual(s("[".repeat(MAX_NESTING) + "]".repeat(MAX_NESTING)), [
    err("QMP input must be a JSON object"),
  ]);
});

Deno.test("QMP streamer: token size and token count limits give QEMU's errors", () => {
  const got: JsonMessage[] = [];
  const js = new JsonStreamer((m) => got.push(m));
  // 65 strings of 1 MiB in one array: over the 64 MiB total.
  const chunk = enc.encode(`"${"x".repeat(1 << 20)}",`);
  js.feed(enc.encode("["));
  for (let i = 0; i < 65; i++) js.feed(chunk);
  assert.deepEqual(got[0], { error: "JSON token size limit exceeded" });
  got.length = 0;
  js.reset();
  js.feed(enc.encode("[" + "1,".repeat(1 << 20) + "1]"));
  assert.deepEqual(got[0], { error: "JSON token count limit exceeded" });
  // What follows the cut is lexed afresh; the stream ends with the stray "]" answered.
  assert.deepEqual(got.at(-1), { error: "JSON parse error, expecting value" });
});

Deno.test("QMP: duplicate keys are refused (stop is not run)", () => {
  const s = session();
  assert.deepEqual(s('{"execute":"query-status","execute":"stop"}'), [
    err("JSON parse error, duplicate key"),
  ]);
  assert.deepEqual(s(QS), [STATUS]);
});

Deno.test("QMP: non-ASCII in replies is written as QEMU's writer does (\\uXXXX)", () => {
  const s = session();
  const out: string[] = [];
  const q = new QmpSession(makeFakeMachine(), { send: (t) => out.push(t) });
  q.opened();
  q.input(new Uint8Array([0xff]));
  assert.equal(
    out.at(-1),
    '{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}\n',
  );
  assert.ok(s);
});

class Client {
  #buf = "";
  constructor(readonly conn: Deno.Conn) {}
  static async connect(path: string): Promise<Client> {
    return new Client(await Deno.connect({ transport: "unix", path }));
  }
  async recv(): Promise<Record<string, unknown>> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const l = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return JSON.parse(l);
      }
      const b = new Uint8Array(4096);
      const n = await this.conn.read(b);
      if (n === null) throw new Error("closed");
      this.#buf += new TextDecoder().decode(b.subarray(0, n));
    }
  }
  async cmd(s: string): Promise<Record<string, unknown>> {
    await this.conn.write(enc.encode(s + "\n"));
    return await this.recv();
  }
}

async function withServer(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/qmp.sock`;
  const chr = await SocketChar.open({ path, server: true, wait: false, id: "qmp" });
  const mon = startMonitor("qmp", makeFakeMachine({ accel: "tcg" }), chr);
  try {
    await fn(path);
  } finally {
    mon.close();
    chr.close();
    // QEMU removes its listening socket file at exit.
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("QMP socket: 20 clients at once are queued and each served in turn", async () => {
  await withServer(async (path) => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => Client.connect(path)));
    for (const c of clients) {
      assert.ok("QMP" in await c.recv());
      assert.deepEqual(await c.cmd('{"execute":"qmp_capabilities"}'), { return: {} });
      assert.deepEqual(await c.cmd(QS), STATUS);
      c.conn.close();
    }
  });
});

Deno.test("QMP socket: a client reconnecting at once gets a greeting and must negotiate again", async () => {
  await withServer(async (path) => {
    for (let i = 0; i < 5; i++) {
      const c = await Client.connect(path);
      assert.ok("QMP" in await c.recv());
      // Send before anything else: it must be answered by the new session (not negotiated yet).
      assert.equal(((await c.cmd(QS)).error as { class: string }).class, "CommandNotFound");
      assert.deepEqual(await c.cmd('{"execute":"qmp_capabilities"}'), { return: {} });
      c.conn.close();
    }
  });
});

Deno.test("QMP socket: a client vanishing mid-command leaves the server answering the next one", async () => {
  await withServer(async (path) => {
    const a = await Client.connect(path);
    await a.recv();
    await a.conn.write(enc.encode('{"execute":"qmp_capabilities"}{"execute":"query-st'));
    a.conn.close();
    const b = await Client.connect(path);
    assert.ok("QMP" in await b.recv());
    assert.deepEqual(await b.cmd('{"execute":"qmp_capabilities"}'), { return: {} });
    assert.deepEqual(await b.cmd(QS), STATUS);
    b.conn.close();
  });
});

Deno.test("QMP query-uuid answers QEMU's form, all zeros without -uuid", () => {
  const out: string[] = [];
  const m = makeFakeMachine();
  const q = new QmpSession(Object.assign(m, { uuid: "12345678-1234-5678-9abc-def012345678" }), {
    send: (t) => out.push(t),
  });
  q.opened();
  q.input('{"execute":"qmp_capabilities"}{"execute":"query-uuid"}');
  assert.equal(out.at(-1), '{"return": {"UUID": "12345678-1234-5678-9abc-def012345678"}}\n');
  const q2 = new QmpSession(makeFakeMachine(), { send: (t) => out.push(t) });
  q2.opened();
  q2.input('{"execute":"qmp_capabilities"}{"execute":"query-uuid"}');
  assert.equal(out.at(-1), '{"return": {"UUID": "00000000-0000-0000-0000-000000000000"}}\n');
});
