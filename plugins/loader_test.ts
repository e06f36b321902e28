import assert from "node:assert/strict";
import { UserError } from "../core/types.ts";
import type { IoEvent, Plugin } from "./api.ts";
import { followMachineEvents, parsePluginArgs, PluginManager } from "./loader.ts";
import { buildFuzzMachine } from "./fuzz/machine.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

function setup() {
  const fm = buildFuzzMachine();
  const printed: string[] = [];
  const reports: string[] = [];
  const pm = new PluginManager(fm.vm, {
    print: (t) => printed.push(t),
    report: (l) => reports.push(l),
    vcpu: () => 0,
  });
  return { fm, vm: fm.vm, pm, printed, reports };
}

function plugin(name: string, setupFn: Plugin["setup"], args: Plugin["args"] = {}): Plugin {
  return { name, description: `test ${name}`, args, setup: setupFn };
}

Deno.test("parsePluginArgs types values, fills defaults and rejects bad input", () => {
  const schema = {
    n: { type: "number" as const, default: 3, help: "" },
    on: { type: "bool" as const, default: false, help: "" },
    s: { type: "string" as const, help: "" },
  };
  assert.deepEqual(parsePluginArgs("p", schema, ["s=x", "on=on"]), { s: "x", on: true, n: 3 });
  assert.throws(() => parsePluginArgs("p", schema, ["n=abc", "s=1"]), /argument "n" expects a number/);
  assert.throws(() => parsePluginArgs("p", schema, []), /argument "s" is required/);
  assert.throws(() => parsePluginArgs("p", schema, ["zz=1", "s=1"]), /unknown argument "zz"/);
  assert.throws(() => parsePluginArgs("p", schema, ["novalue"]), UserError);
});

Deno.test("PluginManager onIo hook sees accesses with vCPU and virtual time, and can replace reads", async () => {
  const { vm, pm, fm } = setup();
  const seen: string[] = [];
  await pm.load(plugin("t", (ctx) => {
    ctx.onIo({ regions: ["rtc"] }, (ev: IoEvent) => {
      seen.push(`${ev.dir} ${ev.addr.toString(16)} ${ev.region} ${ev.vcpu} ${ev.timeNs}`);
      if (ev.dir === "read") ev.value = 0x42;
    });
  }));
  fm.clock.step(500);
  vm.io.write(0x70, 1, 0x0a);
  assert.equal(vm.io.read(0x71, 1), 0x42);
  assert.equal(vm.io.read(0x3fd, 1) !== 0x42, true); // serial not hooked
  assert.deepEqual(seen, ["write 70 rtc-index 0 500", "read 71 rtc 0 500"]);
});

Deno.test("PluginManager hooks can drop and change writes", async () => {
  const { vm, pm } = setup();
  await pm.load(plugin("w", (ctx) => {
    ctx.onIo({ ranges: [{ addr: 0x3f8 + 7, size: 1 }] }, (ev) => {
      if (ev.dir === "write" && ev.value === 0x11) ev.drop = true;
      else if (ev.dir === "write") ev.value = 0x99;
    });
  }));
  vm.io.write(0x3ff, 1, 0x11); // UART scratch register: dropped
  assert.equal(vm.io.read(0x3ff, 1), 0);
  vm.io.write(0x3ff, 1, 0x22); // changed to 0x99
  assert.equal(vm.io.read(0x3ff, 1), 0x99);
});

Deno.test("PluginManager contains a throwing hook: reported by name, disabled, no device error", async () => {
  const { vm, pm, reports } = setup();
  let calls = 0;
  await pm.load(plugin("bad", (ctx) => {
    ctx.onIo({ regions: ["serial0"] }, () => {
      calls++;
      throw new Error("boom");
    });
  }));
  vm.io.write(0x3ff, 1, 0x5a);
  assert.equal(vm.io.read(0x3ff, 1), 0x5a); // the access itself went through
  await Promise.resolve();
  vm.io.read(0x3ff, 1);
  assert.equal(calls, 1);
  assert.equal(vm.io.stats.deviceErrors, 0);
  assert.match(reports[0], /^plugin "bad": onIo hook threw: boom; disabled$/);
  assert.match(pm.infoPlugins(), /faults: 1/);
});

Deno.test("PluginManager unload removes hooks (dispatch back to the unhooked function)", async () => {
  const { vm, pm } = setup();
  const plainRead = vm.io.read;
  await pm.load(plugin("h", (ctx) => void ctx.onIo({}, () => {})));
  assert.notEqual(vm.io.read, plainRead);
  pm.unload("h");
  assert.equal(vm.io.read, plainRead);
  assert.throws(() => pm.unload("h"), /Plugin "h" is not loaded/);
});

Deno.test("PluginManager addDevice maps a region visible in info mtree, unmapped on unload", async () => {
  const { vm, pm } = setup();
  await pm.load(plugin("dev", (ctx) => {
    ctx.addDevice({
      name: "plugin-post",
      space: "io",
      base: 0x80,
      size: 1,
      ops: { read: () => 0x5a, write: () => {} },
    });
  }));
  assert.equal(vm.io.read(0x80, 1), 0x5a);
  assert.match(vm.infoMtree(), /0000000000000080-0000000000000080 \(prio 0, i\/o\): plugin-post/);
  pm.unload("dev");
  assert.equal(vm.io.read(0x80, 1), 0xff);
  await assert.rejects(
    pm.load(plugin("clash", (ctx) => {
      ctx.addDevice({
        name: "x",
        space: "io",
        base: 0x3f8,
        size: 1,
        ops: { read: () => 0, write: () => {} },
      });
    })),
    /overlaps "serial"/,
  );
  assert.deepEqual(pm.names(), []);
});

Deno.test("PluginManager gives timers, IRQs, guest memory, monitor commands and lifecycle events", async () => {
  const { vm, pm, fm, printed } = setup();
  const events: string[] = [];
  await pm.load(plugin("all", (ctx) => {
    const t = ctx.timer(() => ctx.print(`tick ${ctx.now()}\n`));
    t.armAfter(1000);
    ctx.setIrq(9, true);
    assert.equal(ctx.writeMemory(0x1000, Uint8Array.of(1, 2, 3)), true);
    assert.equal(ctx.writeMemory(vm.ram.size - 1, Uint8Array.of(1, 2)), false);
    assert.deepEqual(ctx.readMemory(0x1000, 3), Uint8Array.of(1, 2, 3));
    assert.equal(ctx.readMemory(0xfeb00000, 4), null);
    assert.throws(() => ctx.setIrq(99, true), /invalid GSI "99"/);
    ctx.addMonitorCommand("hello", "say hello", (a) => `hello ${a.join(" ")}\n`);
    for (const e of ["start", "stop", "reset", "shutdown"] as const) ctx.on(e, () => events.push(e));
  }));
  fm.clock.step(2000);
  assert.deepEqual(printed, ["tick 1000\n"]);
  assert.equal(vm.gsi.level(9), true);
  assert.equal(pm.runCommand("hello", ["a", "b"]), "hello a b\n");
  assert.equal(pm.runCommand("nope", []), null);
  assert.deepEqual(pm.commands().map((c) => c.name), ["hello"]);
  pm.emit("start");
  pm.emit("reset");
  assert.deepEqual(events, ["start", "reset"]);
  pm.unload("all");
  assert.equal(pm.runCommand("hello", []), null);
});

Deno.test("PluginManager defers an access issued inside a hook until after the current one", async () => {
  const { vm, pm, fm } = setup();
  await pm.load(plugin("re", (ctx) => {
    ctx.onIo({ ranges: [{ addr: 0x3ff, size: 1 }] }, (ev) => {
      if (ev.dir === "read") assert.equal(ctx.access("io", "write", 0x3ff, 1, 0x77), -1);
    });
  }));
  assert.equal(vm.io.read(0x3ff, 1), 0);
  fm.clock.step(0);
  pm.unload("re");
  assert.equal(vm.io.read(0x3ff, 1), 0x77);
});

Deno.test("PluginManager loads plugin modules by path and by built-in name; plugin_load parses args", async () => {
  const { pm } = setup();
  assert.equal(await pm.hmpPluginLoad("stats,quiet=on"), 'Plugin "stats" loaded\n');
  assert.equal(
    await pm.hmpPluginLoad(new URL("./examples/port80.ts", import.meta.url).pathname),
    'Plugin "port80" loaded\n',
  );
  assert.ok(
    pm.infoPlugins().startsWith(
      "stats: count port/MMIO accesses per region\n  path: stats  args: quiet=true\n",
    ),
  );
  await assert.rejects(pm.load("/nonexistent/x.ts"), /Could not load plugin "\/nonexistent\/x.ts"/);
  await assert.rejects(pm.load("stats"), /already loaded/);
  pm.unloadAll();
  assert.equal(pm.infoPlugins(), "No plugins loaded\n");
});

Deno.test("followMachineEvents maps QMP-style machine events to plugin lifecycle events", async () => {
  const { pm } = setup();
  const got: string[] = [];
  await pm.load(plugin("ev", (ctx) => {
    for (const e of ["start", "stop", "reset", "shutdown"] as const) ctx.on(e, () => got.push(e));
  }));
  let listener: ((ev: { event: string }) => void) | null = null;
  const off = followMachineEvents(pm, { on: (cb) => (listener = cb, () => (listener = null)) });
  for (const event of ["RESUME", "STOP", "RESET", "SHUTDOWN", "OTHER"]) listener!({ event });
  off();
  assert.equal(listener, null);
  assert.deepEqual(got, ["start", "stop", "reset", "shutdown"]);
});
