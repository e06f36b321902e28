/**
 * QMP session tests against a fake machine: greeting, negotiation, errors with QEMU's classes and texts,
 * `id` echo, events and the query/qom/lifecycle commands.
 * @module
 */
import assert from "node:assert/strict";
import { makeFakeMachine } from "./_fake_machine_test_util.ts";
import { qmpJson, QmpSession } from "./qmp.ts";

function session(opts: { runState?: "running" | "prelaunch" } = {}) {
  const m = makeFakeMachine({ accel: "tcg", ...(opts.runState ? { runState: opts.runState } : {}) });
  const out: string[] = [];
  const deferred: (() => void)[] = [];
  const s = new QmpSession(m, {
    send: (t) => out.push(t),
    wallClockMs: () => 1700000000123.456,
    defer: (f) => void deferred.push(f),
  });
  s.opened();
  const greeting = out.shift()!;
  const call = (obj: unknown): unknown[] => {
    out.length = 0;
    s.input(typeof obj === "string" ? obj : JSON.stringify(obj) + "\n");
    for (const f of deferred.splice(0)) f();
    return out.map((l) => JSON.parse(l));
  };
  return { m, s, out, greeting, call };
}

Deno.test("QmpSession greets with QEMU 7.2's banner in QEMU's JSON layout", () => {
  const { greeting } = session();
  assert.equal(
    greeting,
    '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": " (microvm.ts test)"}, ' +
      '"capabilities": ["oob"]}}\n',
  );
});

Deno.test("QmpSession refuses commands before qmp_capabilities and after it a second time", () => {
  const { call } = session();
  assert.deepEqual(call({ execute: "query-status", id: 1 }), [{
    error: { class: "CommandNotFound", desc: "Expecting capabilities negotiation with 'qmp_capabilities'" },
    id: 1,
  }]);
  assert.deepEqual(call({ execute: "qmp_capabilities" }), [{ return: {} }]);
  assert.deepEqual(call({ execute: "qmp_capabilities", id: "x" }), [{
    error: {
      class: "CommandNotFound",
      desc: "Capabilities negotiation is already complete, command ignored",
    },
    id: "x",
  }]);
});

Deno.test("QmpSession reports malformed input with QEMU's GenericError texts", () => {
  const { call } = session();
  call({ execute: "qmp_capabilities" });
  const bad = call("foo\n");
  assert.deepEqual(bad, [{
    error: { class: "GenericError", desc: "JSON parse error, invalid keyword 'foo'" },
  }]);
  assert.deepEqual(call("[1, 2]\n"), [{
    error: { class: "GenericError", desc: "QMP input must be a JSON object" },
  }]);
  assert.deepEqual(call({ id: 3 }), [{
    error: { class: "GenericError", desc: "QMP input lacks member 'execute'" },
    id: 3,
  }]);
  assert.deepEqual(call({ execute: "nope" }), [{
    error: { class: "CommandNotFound", desc: "The command nope has not been found" },
  }]);
  assert.deepEqual(call({ execute: "qom-get", arguments: { path: "/machine" } }), [{
    error: { class: "GenericError", desc: "Parameter 'property' is missing" },
  }]);
  assert.deepEqual(call({ execute: "query-status", arguments: { x: 1 } }), [{
    error: { class: "GenericError", desc: "Parameter 'x' is unexpected" },
  }]);
  assert.deepEqual(call({ execute: "qom-get", arguments: { path: 1, property: "type" } }), [{
    error: { class: "GenericError", desc: "Invalid parameter type for 'path', expected: string" },
  }]);
});

Deno.test("QmpSession query commands return QEMU's shapes", () => {
  const { call } = session();
  call({ execute: "qmp_capabilities" });
  assert.deepEqual(call({ execute: "query-status", id: "a" }), [{
    return: { status: "running", singlestep: false, running: true },
    id: "a",
  }]);
  assert.deepEqual(call({ execute: "query-name" }), [{ return: { name: "fakevm" } }]);
  assert.deepEqual(call({ execute: "query-version" }), [{
    return: { qemu: { micro: 0, minor: 2, major: 7 }, package: " (microvm.ts test)" },
  }]);
  assert.deepEqual(call({ execute: "query-target" }), [{ return: { arch: "x86_64" } }]);
  assert.deepEqual(call({ execute: "query-cpus-fast" }), [{
    return: [{
      "thread-id": 7678,
      props: { "core-id": 0, "thread-id": 0, "socket-id": 0 },
      "qom-path": "/machine/unattached/device[0]",
      "cpu-index": 0,
      target: "x86_64",
    }],
  }]);
  assert.deepEqual(call({ execute: "query-chardev" }), [{
    return: [
      { "frontend-open": true, filename: "unix:mon.sock,server=on", label: "compat_monitor0" },
      { "frontend-open": true, filename: "stdio", label: "serial0" },
    ],
  }]);
  const cmds = (call({ execute: "query-commands" })[0] as { return: { name: string }[] }).return.map((c) =>
    c.name
  );
  for (const c of ["qom-list", "human-monitor-command", "device_add", "quit", "query-kvm", "query-block"]) {
    assert.ok(cmds.includes(c), c);
  }
  const block = (call({ execute: "query-block" })[0] as { return: Record<string, unknown>[] }).return[0];
  assert.equal(block.device, "test");
  assert.equal(block.qdev, "/machine/peripheral-anon/device[0]");
  const machines = (call({ execute: "query-machines" })[0] as { return: { name: string }[] }).return;
  assert.equal(machines[0].name, "microvm");
});

Deno.test("QmpSession qom-list, qom-get, qom-set, qom-list-types", () => {
  const { call } = session();
  call({ execute: "qmp_capabilities" });
  const list =
    (call({ execute: "qom-list", arguments: { path: "/machine" } })[0] as { return: unknown[] }).return;
  assert.deepEqual(list[0], { name: "type", type: "string" });
  assert.ok(list.some((x) => JSON.stringify(x) === '{"name":"peripheral","type":"child<container>"}'));
  assert.ok(list.some((x) => JSON.stringify(x) === '{"name":"acpi","type":"OnOffAuto"}'));
  assert.deepEqual(call({ execute: "qom-get", arguments: { path: "/machine", property: "type" } }), [{
    return: "microvm-machine",
  }]);
  assert.deepEqual(call({ execute: "qom-get", arguments: { path: "/machine", property: "acpi" } }), [{
    return: "off",
  }]);
  assert.deepEqual(call({ execute: "qom-get", arguments: { path: "/nope", property: "type" } }), [{
    error: { class: "DeviceNotFound", desc: "Device '/nope' not found" },
  }]);
  assert.deepEqual(call({ execute: "qom-get", arguments: { path: "/machine", property: "zz" } }), [{
    error: { class: "GenericError", desc: "Property 'microvm-machine.zz' not found" },
  }]);
  assert.deepEqual(
    call({ execute: "qom-set", arguments: { path: "/machine", property: "acpi", value: "on" } }),
    [{
      error: { class: "GenericError", desc: "Property 'microvm-machine.acpi' is not writable" },
    }],
  );
  const types = (call({ execute: "qom-list-types", arguments: { implements: "virtio-device" } })[0] as {
    return: { name: string }[];
  }).return.map((t) => t.name);
  assert.deepEqual(types.sort(), ["virtio-blk-device", "virtio-rng-device"]);
});

Deno.test("QmpSession lifecycle commands emit STOP/RESUME/RESET/SHUTDOWN events with timestamps", () => {
  const { call, m } = session();
  call({ execute: "qmp_capabilities" });
  assert.deepEqual(call({ execute: "stop" }), [
    { timestamp: { seconds: 1700000000, microseconds: 123456 }, event: "STOP" },
    { return: {} },
  ]);
  assert.deepEqual(call({ execute: "cont", id: 7 }), [
    { timestamp: { seconds: 1700000000, microseconds: 123456 }, event: "RESUME" },
    { return: {}, id: 7 },
  ]);
  assert.deepEqual(call({ execute: "system_reset" }), [
    {
      timestamp: { seconds: 1700000000, microseconds: 123456 },
      event: "RESET",
      data: { guest: false, reason: "host-qmp-system-reset" },
    },
    { return: {} },
  ]);
  const q = call({ execute: "quit" });
  assert.deepEqual(q[0], { return: {} });
  assert.deepEqual(q[1], {
    timestamp: { seconds: 1700000000, microseconds: 123456 },
    event: "SHUTDOWN",
    data: { guest: false, reason: "host-qmp-quit" },
  });
  assert.deepEqual(m.log.calls, ["stop", "cont", "system_reset", "quit"]);
});

Deno.test("QmpSession human-monitor-command runs HMP and returns its text", () => {
  const { call } = session();
  call({ execute: "qmp_capabilities" });
  assert.deepEqual(call({ execute: "human-monitor-command", arguments: { "command-line": "info status" } }), [
    {
      return: "VM status: running\n",
    },
  ]);
  assert.deepEqual(call({ execute: "human-monitor-command", arguments: { "command-line": "foo" } }), [{
    return: "unknown command: 'foo'\n",
  }]);
});

Deno.test("QmpSession device_add/device_del map errors to QEMU classes", () => {
  const { call } = session({ runState: "prelaunch" });
  call({ execute: "qmp_capabilities" });
  assert.deepEqual(call({ execute: "device_add", arguments: { driver: "virtio-rng-device", id: "rng0" } }), [{
    return: {},
  }]);
  assert.deepEqual(call({ execute: "device_add", arguments: { driver: "nope" } }), [{
    error: { class: "GenericError", desc: "'nope' is not a valid device model name" },
  }]);
  assert.deepEqual(call({ execute: "device_del", arguments: { id: "zz" } }), [{
    error: { class: "DeviceNotFound", desc: "Device 'zz' not found" },
  }]);
});

Deno.test("QmpSession parses several objects in one chunk and objects split across chunks", () => {
  const { s, out } = session();
  out.length = 0;
  s.input('{"execute": "qmp_capabilities"}{"execute": "query-na');
  assert.equal(out.length, 1);
  s.input('me", "id": "n"}\n');
  assert.equal(out[1], '{"return": {"name": "fakevm"}, "id": "n"}\n');
});

Deno.test("qmpJson pretty-prints with 4-space indents as -qmp-pretty", () => {
  assert.equal(
    qmpJson({ a: 1, b: [true, "x"], c: {} }, true),
    '{\n    "a": 1,\n    "b": [\n        true,\n        "x"\n    ],\n    "c": {}\n}',
  );
});
