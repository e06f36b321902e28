/** QMP balloon/query-balloon and HMP balloon/info balloon against a fake machine with and without a balloon. */
import assert from "node:assert/strict";
import { makeFakeMachine } from "./_fake_machine_test_util.ts";
import { QmpSession } from "./qmp.ts";
import { HmpSession } from "./hmp.ts";
import type { BalloonControl } from "./machine_iface.ts";

function fakeBalloon(): BalloonControl & { target: number } {
  return {
    target: 0,
    setTarget(bytes: number) {
      this.target = bytes;
    },
    get actualBytes() {
      return 256 * 1024 * 1024;
    },
  };
}

function qmp(balloon: BalloonControl | null) {
  const m = makeFakeMachine({ accel: "tcg" });
  Object.assign(m, { balloon: () => balloon });
  const out: string[] = [];
  const s = new QmpSession(m, { send: (t) => out.push(t), wallClockMs: () => 0, defer: (f) => f() });
  s.opened();
  const call = (obj: unknown) => {
    out.length = 0;
    s.input(JSON.stringify(obj) + "\n");
    return JSON.parse(out[0]);
  };
  call({ execute: "qmp_capabilities" });
  return { m, call };
}

Deno.test("QMP balloon / query-balloon drive the balloon and answer DeviceNotActive without one", () => {
  const b = fakeBalloon();
  const { call } = qmp(b);
  assert.deepEqual(call({ execute: "balloon", arguments: { value: 134217728 } }), { return: {} });
  assert.equal(b.target, 134217728);
  assert.deepEqual(call({ execute: "query-balloon" }), { return: { actual: 268435456 } });
  assert.deepEqual(call({ execute: "balloon", arguments: { value: 0 } }), {
    error: { class: "GenericError", desc: "Parameter 'target' expects a size" },
  });
  const none = qmp(null);
  assert.deepEqual(none.call({ execute: "query-balloon" }), {
    error: { class: "DeviceNotActive", desc: "No balloon device has been activated" },
  });
});

Deno.test("HMP balloon MB / info balloon", () => {
  const b = fakeBalloon();
  const m = makeFakeMachine({ accel: "tcg" });
  Object.assign(m, { balloon: () => b });
  const h = new HmpSession(m);
  assert.equal(h.execute("balloon 100"), "");
  assert.equal(b.target, 100 * 1024 * 1024);
  assert.equal(h.execute("info balloon"), "balloon: actual=256\n");
  const m2 = makeFakeMachine({ accel: "tcg" });
  assert.equal(new HmpSession(m2).execute("info balloon"), "Error: No balloon device has been activated\n");
  assert.equal(new HmpSession(m2).execute("balloon 5"), "Error: No balloon device has been activated\n");
});
