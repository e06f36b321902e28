/**
 * QMP over real unix sockets with a JSON client: through a `-chardev socket,server=on` backend
 * (core/host/chardev.ts SocketChar + startMonitor, as the runner wires it) and through serveMonitor.
 * @module
 */
import assert from "node:assert/strict";
import { SocketChar } from "../core/host/chardev.ts";
import { makeFakeMachine } from "../shell/_fake_machine_test_util.ts";
import { serveMonitor, startMonitor } from "../shell/monitor_server.ts";

/** A line-oriented JSON client. */
class JsonClient {
  readonly #conn: Deno.Conn;
  #buf = "";
  readonly #dec = new TextDecoder();
  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  static async connect(path: string): Promise<JsonClient> {
    return new JsonClient(await Deno.connect({ transport: "unix", path }));
  }
  async recv(): Promise<Record<string, unknown>> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return JSON.parse(line);
      }
      const b = new Uint8Array(4096);
      const n = await this.#conn.read(b);
      if (n === null) throw new Error("connection closed");
      this.#buf += this.#dec.decode(b.subarray(0, n));
    }
  }
  async send(obj: unknown): Promise<void> {
    await this.#conn.write(
      new TextEncoder().encode((typeof obj === "string" ? obj : JSON.stringify(obj)) + "\n"),
    );
  }
  async cmd(obj: unknown): Promise<Record<string, unknown>> {
    await this.send(obj);
    return await this.recv();
  }
  close(): void {
    this.#conn.close();
  }
}

Deno.test("QMP over a -chardev socket,server=on: greeting, negotiation, query, events", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/qmp.sock`;
  const chr = await SocketChar.open({ path, server: true, wait: false, id: "compat_monitor0" });
  const m = makeFakeMachine({ accel: "tcg" });
  const mon = startMonitor("qmp", m, chr, { pollMs: 5 });
  const c = await JsonClient.connect(path);
  try {
    const greeting = await c.recv();
    assert.deepEqual((greeting.QMP as Record<string, unknown>).capabilities, ["oob"]);
    assert.deepEqual(await c.cmd({ execute: "query-status" }), {
      error: { class: "CommandNotFound", desc: "Expecting capabilities negotiation with 'qmp_capabilities'" },
    });
    assert.deepEqual(await c.cmd({ execute: "qmp_capabilities", id: 1 }), { return: {}, id: 1 });
    assert.deepEqual(await c.cmd({ execute: "query-status", id: "s" }), {
      return: { status: "running", singlestep: false, running: true },
      id: "s",
    });
    await c.send({ execute: "stop" });
    const ev = await c.recv();
    assert.equal(ev.event, "STOP");
    const ts = ev.timestamp as { seconds: number; microseconds: number };
    assert.ok(Number.isInteger(ts.seconds) && ts.microseconds >= 0 && ts.microseconds < 1e6);
    assert.deepEqual(await c.recv(), { return: {} });
    // Like QEMU's JSON streamer, each bare word is its own (bad) value: one error per word.
    await c.send("this is not json");
    for (const w of ["this", "is", "not", "json"]) {
      assert.deepEqual(await c.recv(), {
        error: { class: "GenericError", desc: `JSON parse error, invalid keyword '${w}'` },
      });
    }
    assert.deepEqual(
      await c.cmd({ execute: "human-monitor-command", arguments: { "command-line": "info status" } }),
      {
        return: "VM status: paused\n",
      },
    );
  } finally {
    c.close();
    mon.close();
    chr.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("QMP serveMonitor gives each client its own session and greeting", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/q.sock`;
  const m = makeFakeMachine({ accel: "tcg" });
  const srv = serveMonitor("qmp", m, { path });
  const a = await JsonClient.connect(path);
  const b = await JsonClient.connect(path);
  try {
    assert.ok("QMP" in (await a.recv()));
    assert.ok("QMP" in (await b.recv()));
    assert.deepEqual(await a.cmd({ execute: "qmp_capabilities" }), { return: {} });
    // b has not negotiated yet.
    assert.equal(
      ((await b.cmd({ execute: "query-name" })).error as { class: string }).class,
      "CommandNotFound",
    );
    assert.deepEqual(await a.cmd({ execute: "query-name" }), { return: { name: "fakevm" } });
  } finally {
    a.close();
    b.close();
    srv.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
