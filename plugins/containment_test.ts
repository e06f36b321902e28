import assert from "node:assert/strict";
import { UserError } from "../core/types.ts";
import { PluginManager } from "./loader.ts";
import { buildFuzzMachine } from "./fuzz/machine.ts";
import { safeMessage } from "./containment.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

const dir = Deno.makeTempDirSync({ prefix: "mvt-plug-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
let n = 0;
function pluginFile(body: string): string {
  const p = `${dir}/p${n++}.ts`;
  Deno.writeTextFileSync(p, body);
  return p;
}
function manager() {
  const reports: string[] = [];
  const pm = new PluginManager(buildFuzzMachine().vm, {
    print: () => {},
    report: (l) => reports.push(l),
    loadTimeoutMs: 300,
  });
  return { pm, reports };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HEAD = 'export const plugin = { name: "NAME", description: "d", args: {}, ';

Deno.test("a throwing timer armed in setup is reported once, the plugin is disabled, the process goes on", async () => {
  const { pm, reports } = manager();
  await pm.load(pluginFile(
    HEAD.replace("NAME", "timer") + `setup(ctx) {
    ctx.addMonitorCommand?.("tcmd", "h", () => "x");
    setInterval(() => { throw new Error("boom"); }, 20);
  } };`,
  ));
  await sleep(200);
  assert.deepEqual(reports, ['plugin "timer": uncaught error: boom; disabled']);
  assert.deepEqual(pm.names(), []);
});

Deno.test("a rejected promise left by setup is contained", async () => {
  const { pm, reports } = manager();
  await pm.load(
    pluginFile(HEAD.replace("NAME", "rej") + `setup() { Promise.reject(new Error("nope")); } };`),
  );
  await sleep(100);
  assert.deepEqual(reports, ['plugin "rej": unhandled promise rejection: nope; disabled']);
});

Deno.test("hostile thrown values and Proxy exports give one-line UserErrors", async () => {
  const { pm } = manager();
  const hostile = pluginFile(
    HEAD.replace("NAME", "hostile") + `setup() { throw { toString() { throw new Error("x"); } }; } };`,
  );
  await assert.rejects(
    () => pm.load(hostile),
    (e) =>
      e instanceof UserError &&
      e.message === 'Plugin "hostile" failed in setup: (a value that cannot be printed)',
  );
  const proxy = pluginFile(`export const plugin = new Proxy({}, { get() { throw new Error("trap"); } });`);
  await assert.rejects(
    () => pm.load(proxy),
    (e) => e instanceof UserError && /no named export "plugin"/.test(e.message),
  );
  assert.equal(
    safeMessage(
      new Proxy({}, {
        getPrototypeOf() {
          throw new Error("t");
        },
      }),
    ),
    "[object Object]",
  );
});

Deno.test("a setup that never resolves times out as a UserError; a module whose top-level await hangs too", async () => {
  const { pm } = manager();
  await assert.rejects(
    () => pm.load(pluginFile(HEAD.replace("NAME", "never") + `setup() { return new Promise(() => {}); } };`)),
    (e) => e instanceof UserError && /setup did not finish within 0.3 s/.test(e.message),
  );
  assert.deepEqual(pm.names(), []);
  await assert.rejects(
    () => pm.load(pluginFile(`await new Promise(() => {}); export const plugin = {};`)),
    (e) => e instanceof UserError && /did not finish loading/.test(e.message),
  );
});

Deno.test("a monitor command returning a non-string is refused, not a crash", async () => {
  const { pm } = manager();
  await pm.load(
    pluginFile(
      HEAD.replace("NAME", "num") + `setup(ctx) { ctx.addMonitorCommand("num", "h", () => 42); } };`,
    ),
  );
  assert.equal(
    pm.runCommand("num", []),
    'Plugin "num" command "num" returned number, not text; command disabled\n',
  );
  assert.equal(pm.runCommand("num", []), null);
});
