/**
 * Host signals: SIGUSR1 must not open Deno's unauthenticated inspector (127.0.0.1:9229) in the VMM, and
 * SIGINT/SIGHUP/SIGTERM print QEMU's `terminating on signal N` line and exit 0.
 * @module
 */
import assert from "node:assert/strict";
import { guestFile } from "../core/host/guest_files.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const kernel = await guestFile("vmlinux");

function spawnVm(): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "-M",
      "microvm",
      "-accel",
      "tcg",
      "-nodefaults",
      "-display",
      "none",
      "-S",
      "-kernel",
      kernel,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** TCP ports `pid` is listening on (its socket inodes matched against /proc/net/tcp{,6}). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Deno.readTextFileSync(f).split("\n").slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length > 9 && c[3] === "0A" && inodes.has(c[9])) ports.push(parseInt(c[1].split(":")[1], 16));
    }
  }
  return ports;
}

/** Wait (up to 60 s) until `pid` catches signal `signo` (/proc/PID/status SigCgt): the VMM is up. */
async function waitCaught(pid: number, signo: number): Promise<void> {
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    if (m && (BigInt("0x" + m[1]) >> BigInt(signo - 1)) & 1n) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pid ${pid} never installed a handler for signal ${signo}`);
}

async function finish(child: Deno.ChildProcess): Promise<{ code: number; err: string }> {
  const [st, , err] = await Promise.all([
    child.status,
    child.stdout.cancel(),
    new Response(child.stderr).text(),
  ]);
  return { code: st.code, err };
}

Deno.test("SIGUSR1 does not open the V8 inspector (no listener on 9229) and the VM goes on", async () => {
  const child = spawnVm();
  // Deno arms its SIGUSR1 inspector 500 ms after start; signal well after that.
  await new Promise((r) => setTimeout(r, 2500));
  Deno.kill(child.pid, "SIGUSR1");
  await new Promise((r) => setTimeout(r, 1000));
  let alive = true;
  let ports: number[] = [];
  try {
    ports = listeningPorts(child.pid);
  } catch {
    alive = false;
  }
  Deno.kill(child.pid, "SIGTERM");
  const r = await finish(child);
  assert.ok(alive, `the VMM died on SIGUSR1: ${r.err}`);
  assert.ok(!ports.includes(9229), `inspector listening: ports ${ports.join(",")}\n${r.err}`);
  assert.ok(!/Debugger listening/.test(r.err), r.err);
  assert.equal(r.code, 0);
  assert.equal(r.err.trim(), "microvm.ts: terminating on signal 15");
});

for (const [sig, n] of [["SIGINT", 2], ["SIGHUP", 1]] as const) {
  Deno.test(`${sig}: one 'terminating on signal ${n}' line, exit 0`, async () => {
    const child = spawnVm();
    // Signal only once the VMM handles it (a loaded machine can take seconds to get there).
    await waitCaught(child.pid, n);
    Deno.kill(child.pid, sig);
    const r = await finish(child);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err.trim(), `microvm.ts: terminating on signal ${n}`);
  });
}
