/**
 * An interactive HMP session driven through tmux: typing, Backspace, Tab completion, ↑ history, and the
 * history file kept across sessions. Run as a test it starts tmux; run with `deno run` (the child in the
 * tmux pane) it serves HMP for a fake machine on the terminal in raw mode. Prints one `SKIP:` line
 * without tmux.
 * @module
 */
import assert from "node:assert/strict";
import type { CharReceiver } from "../core/types.ts";
import { makeFakeMachine } from "../shell/_fake_machine_test_util.ts";
import { type MonitorStream, startMonitor } from "../shell/monitor_server.ts";

/** Child: HMP on this terminal. */
async function child(historyFile: string): Promise<void> {
  Deno.stdin.setRaw(true);
  const m = makeFakeMachine({ accel: "tcg" });
  m.quit = () => {
    Deno.stdin.setRaw(false);
    Deno.exit(0);
  };
  let receiver: CharReceiver | null = null;
  const stream: MonitorStream = {
    connected: true,
    write: (d) => void Deno.stdout.writeSync(d),
    setReceiver: (r) => void (receiver = r),
  };
  startMonitor("hmp", m, stream, { historyFile });
  const buf = new Uint8Array(256);
  for (;;) {
    const n = await Deno.stdin.read(buf);
    if (n === null) break;
    (receiver as CharReceiver | null)?.receive(buf.slice(0, n));
  }
}

function tmux(...args: string[]): string {
  const r = new Deno.Command("tmux", { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!r.success) throw new Error(`tmux ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
  return new TextDecoder().decode(r.stdout);
}

function hasTmux(): boolean {
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Wait until the pane shows `pred` (polling an external process is the only way to observe a terminal). */
async function waitFor(session: string, pred: (screen: string) => boolean, what: string): Promise<string> {
  let screen = "";
  for (let i = 0; i < 200; i++) {
    screen = tmux("capture-pane", "-p", "-t", session, "-S", "-100");
    if (pred(screen)) return screen;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; screen:\n${screen}`);
}

/** Wait until the tmux session has ended (the monitor process exited). */
async function waitGone(session: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      tmux("has-session", "-t", session);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("timed out waiting for the monitor to exit");
}

function count(s: string, sub: string): number {
  return s.split(sub).length - 1;
}

if (import.meta.main) {
  await child(Deno.args[0]);
}

Deno.test({
  name: "HMP over a terminal: typing, Backspace, Tab completion, history across sessions (tmux)",
  ignore: import.meta.main,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    if (!hasTmux()) {
      console.log("SKIP: tmux is not installed");
      return;
    }
    const dir = Deno.makeTempDirSync();
    const hist = `${dir}/history`;
    Deno.writeTextFileSync(hist, "info name\n");
    const session = `hmp_test_${Deno.pid}`;
    const self = new URL(import.meta.url).pathname;
    const start = () =>
      tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "120",
        "-y",
        "50",
        `deno run -A --quiet ${self} ${hist}`,
      );
    const keys = (...k: string[]) => tmux("send-keys", "-t", session, ...k);
    // A keeper session holds the tmux server up while the monitor's session exits and is started again
    // (otherwise the next new-session can race with the exiting server).
    tmux("new-session", "-d", "-s", `keep_${session}`, "sleep 600");
    start();
    try {
      await waitFor(session, (s) => s.includes("(qemu)"), "the prompt");
      const banner = tmux("capture-pane", "-p", "-t", session);
      assert.ok(banner.includes("QEMU 7.2.0 monitor - type 'help' for more information"));

      keys("info status", "Enter");
      await waitFor(session, (s) => s.includes("VM status: running"), "info status output");

      // Backspace editing.
      keys("info statux", "BSpace", "s", "Enter");
      await waitFor(session, (s) => count(s, "VM status: running") === 2, "edited line output");

      // Tab completes a unique prefix (with a trailing space, as QEMU's readline).
      keys("info ver", "Tab");
      // (capture-pane trims trailing blanks, so the added space cannot be seen on screen; the history file shows it.)
      await waitFor(session, (s) => s.includes("(qemu) info version"), "completion of 'info ver'");
      keys("Enter");
      await waitFor(session, (s) => s.includes("7.2.0 (microvm.ts test)"), "info version output");

      // Tab on an ambiguous prefix lists the candidates.
      keys("info c", "Tab");
      await waitFor(session, (s) => /chardev\s+cpus/.test(s), "candidate list");
      keys("C-u");

      // ↑ recalls the previous line; ↑ further reaches the line loaded from the history file.
      keys("Up", "Enter");
      await waitFor(session, (s) => count(s, "7.2.0 (microvm.ts test)") === 2, "history recall");
      keys("Up", "Up", "Up", "Up", "Enter");
      await waitFor(session, (s) => s.includes("fakevm"), "line from the history file");

      keys("quit", "Enter");
      await waitGone(session);
      const lines = Deno.readTextFileSync(hist).split("\n").filter((l) => l !== "");
      assert.deepEqual(lines.slice(0, 2), ["info name", "info status"]);
      assert.ok(lines.includes("info version "));
      assert.equal(lines.at(-1), "quit");

      // A new session starts with that history: ↑ gives "quit"'s predecessor chain.
      start();
      await waitFor(session, (s) => s.includes("(qemu)"), "the prompt (second session)");
      keys("Up", "Up");
      await waitFor(session, (s) => /\(qemu\) info name\s*$/m.test(s), "history from the previous session");
      keys("C-u", "quit", "Enter");
    } finally {
      for (const s of [session, `keep_${session}`]) {
        try {
          tmux("kill-session", "-t", s);
        } catch {
          // already gone
        }
      }
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
