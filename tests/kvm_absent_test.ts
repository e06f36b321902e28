/**
 * Hosts without /dev/kvm: every KVM path says why in one line (no stack trace). The commands run in a
 * private mount namespace whose /dev has no kvm node (needs root and unshare; skipped loudly otherwise).
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
// A private /dev holding only what Deno needs, then the command.
const NO_KVM = "mount -t tmpfs devtmp /dev || exit 97; " +
  "mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; " +
  'mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/random c 1 8; exec "$@"';

async function withoutKvm(args: string[]): Promise<{ code: number; out: string; err: string } | null> {
  let r: Deno.CommandOutput;
  try {
    r = await new Deno.Command("unshare", {
      args: ["-m", "sh", "-c", NO_KVM, "sh", Deno.execPath(), ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch {
    return null;
  }
  if (r.code === 97 || (r.code !== 0 && /unshare: /.test(new TextDecoder().decode(r.stderr)))) return null;
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

const probe = await withoutKvm(["eval", "console.log(1)"]);
if (!probe) {
  console.log("SKIP: cannot hide /dev/kvm here (needs root + unshare -m): KVM-absent tests not run");
}

Deno.test({
  name: "-enable-kvm without /dev/kvm: one QEMU-style line, exit 1",
  ignore: !probe,
  fn: async () => {
    const r =
      (await withoutKvm(["run", "-A", "main.ts", "-M", "microvm", "-enable-kvm", "-nodefaults", "-S"]))!;
    assert.equal(r.code, 1);
    assert.deepEqual(r.err.trimEnd().split("\n"), [
      "microvm.ts: Could not access KVM kernel module: No such file or directory",
    ]);
  },
});

Deno.test({
  name: "deno task bench:kvm without /dev/kvm: one line saying why, exit 1",
  ignore: !probe,
  fn: async () => {
    const r = (await withoutKvm(["run", "-A", "bench/kvm_bench.ts", "1000"]))!;
    assert.equal(r.code, 1);
    assert.deepEqual(r.err.trimEnd().split("\n"), [
      "kvm_bench: cannot run: /dev/kvm: No such file or directory",
    ]);
  },
});
