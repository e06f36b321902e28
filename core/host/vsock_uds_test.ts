import assert from "node:assert/strict";
import type { VsockReceiver } from "../vsock.ts";
import { openUdsVsock } from "./vsock_uds.ts";

/** Records backend events; resolves waiters by event name. */
class Rec implements VsockReceiver {
  events: string[] = [];
  got = new Map<number, number[]>();
  #waiters: [(s: string) => boolean, () => void][] = [];
  #push(e: string) {
    this.events.push(e);
    this.#waiters = this.#waiters.filter(([p, r]) => p(e) ? (r(), false) : true);
  }
  wait(p: (s: string) => boolean): Promise<void> {
    if (this.events.some(p)) return Promise.resolve();
    return new Promise((r) => this.#waiters.push([p, r]));
  }
  incoming(conn: number, port: number) {
    this.#push(`incoming ${conn} ${port}`);
  }
  connected(conn: number) {
    this.#push(`connected ${conn}`);
  }
  refused(conn: number) {
    this.#push(`refused ${conn}`);
  }
  data(conn: number, bytes: Uint8Array) {
    const l = this.got.get(conn) ?? [];
    l.push(...bytes);
    this.got.set(conn, l);
    this.#push(`data ${conn} ${l.length}`);
  }
  closed(conn: number, error: boolean) {
    this.#push(`closed ${conn} ${error}`);
  }
  written(conn: number, n: number) {
    this.#push(`written ${conn} ${n}`);
  }
  wantMore() {
    return true;
  }
}

Deno.test("UdsVsockBackend: Firecracker handshake, OK reply, data both ways, EOF; refused and outgoing ports", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "vsk-" });
  const path = `${dir}/v.sock`;
  const be = openUdsVsock(path);
  const rec = new Rec();
  be.setReceiver(rec);
  try {
    const c = await Deno.connect({ transport: "unix", path });
    await c.write(new TextEncoder().encode("CONNECT 52\nearly"));
    await rec.wait((e) => e.startsWith("incoming"));
    const id = Number(rec.events.find((e) => e.startsWith("incoming"))!.split(" ")[1]);
    assert.ok(rec.events.includes(`incoming ${id} 52`));
    be.accepted(id, 1073741824);
    const buf = new Uint8Array(64);
    const n = (await c.read(buf))!;
    assert.equal(new TextDecoder().decode(buf.subarray(0, n)), "OK 1073741824\n");
    await rec.wait((e) => e === `data ${id} 5`);
    assert.equal(new TextDecoder().decode(new Uint8Array(rec.got.get(id)!)), "early");
    be.send(id, new TextEncoder().encode("to-host"));
    const m = (await c.read(buf))!;
    assert.equal(new TextDecoder().decode(buf.subarray(0, m)), "to-host");
    await rec.wait((e) => e === `written ${id} 7`);
    c.close();
    await rec.wait((e) => e.startsWith(`closed ${id}`));
    // Bad handshake: closed without an event.
    const bad = await Deno.connect({ transport: "unix", path });
    await bad.write(new TextEncoder().encode("HELLO\n"));
    assert.equal(await bad.read(buf), null);
    bad.close();
    // Guest-initiated: nobody at PATH_7 → refused; a listener at PATH_8 → connected.
    const r7 = be.connect(7);
    await rec.wait((e) => e === `refused ${r7}`);
    const l = Deno.listen({ transport: "unix", path: `${path}_8` });
    const r8 = be.connect(8);
    const peer = await l.accept();
    await rec.wait((e) => e === `connected ${r8}`);
    await peer.write(new TextEncoder().encode("hi"));
    await rec.wait((e) => e === `data ${r8} 2`);
    be.shutdownWrite(r8);
    assert.equal(await peer.read(buf), null, "half-close reaches the host peer");
    peer.close();
    l.close();
    await rec.wait((e) => e.startsWith(`closed ${r8}`));
  } finally {
    be.shutdown();
    Deno.removeSync(dir, { recursive: true });
  }
});
