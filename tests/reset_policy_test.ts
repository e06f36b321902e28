/**
 * system_reset under -no-reboot/-no-shutdown, against QEMU 7.2's answers (captured by hand with Debian's
 * qemu-system-x86_64 on the same QMP script): a reset request is a shutdown request; -no-shutdown turns it
 * into a pause only for a running VM.
 * @module
 */
import assert from "node:assert/strict";
import { guestFile } from "../core/host/guest_files.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const kernel = await guestFile("vmlinux");

async function qmp(extra: string[], cmds: string[]): Promise<{ code: number; lines: unknown[] }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "-M",
      "microvm",
      "-accel",
      "tcg",
      "-kernel",
      kernel,
      "-nodefaults",
      "-display",
      "none",
      "-S",
      "-qmp",
      "stdio",
      ...extra,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(cmds.map((c) => `{"execute":"${c}"}\n`).join("")));
  await w.close();
  const [st, out] = await Promise.all([child.status, new Response(child.stdout).text()]);
  const lines = out.trim().split("\n").slice(1).map((l) => {
    const o = JSON.parse(l);
    delete o.timestamp;
    return o;
  });
  return { code: st.code, lines };
}

Deno.test("-no-reboot -no-shutdown: system_reset before cont is a SHUTDOWN, status stays prelaunch, cont runs", async () => {
  const r = await qmp(["-no-reboot", "-no-shutdown"], [
    "qmp_capabilities",
    "system_reset",
    "query-status",
    "cont",
    "query-status",
    "quit",
  ]);
  assert.equal(r.code, 0);
  // (QEMU then prints quit's SHUTDOWN event before its return; we answer first, an older difference.)
  assert.deepEqual(r.lines.slice(0, 7), [
    { return: {} },
    { event: "SHUTDOWN", data: { guest: false, reason: "host-qmp-system-reset" } },
    { return: {} },
    { return: { status: "prelaunch", singlestep: false, running: false } },
    { event: "RESUME" },
    { return: {} },
    { return: { status: "running", singlestep: false, running: true } },
  ]);
});

Deno.test("-no-reboot alone: system_reset ends the process with status 0", async () => {
  const r = await qmp(["-no-reboot"], ["qmp_capabilities", "cont", "system_reset", "query-status"]);
  assert.equal(r.code, 0);
  assert.deepEqual(r.lines.filter((l) => (l as { event?: string }).event === "SHUTDOWN"), [
    { event: "SHUTDOWN", data: { guest: false, reason: "host-qmp-system-reset" } },
  ]);
});
