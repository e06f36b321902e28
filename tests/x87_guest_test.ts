/**
 * A static C program doing long double (x87) arithmetic, formatting (glibc printf %La/%Lf/%Lg, strtold) and libm
 * (sinl, expl, powl: FSIN, F2XM1, FYL2X...) runs in the guest on the software CPU; its output must equal the same
 * binary's output on the host. Needs gcc with a static libc and cpio (skipped without; .ci/run installs them).
 */
import assert from "node:assert/strict";
import { boot } from "./lib/boot.ts";
import { guestFile } from "../core/host/guest_files.ts";

async function sh(cmd: string, cwd: string): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command("sh", { args: ["-c", cmd], cwd, stdout: "piped", stderr: "piped" })
    .output();
  return { ok: r.success, out: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr) };
}

const src = new URL("./guest_progs/longdouble.c", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "mvt-x87-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // already gone
  }
});
const built = await sh(`command -v cpio >/dev/null && gcc -static -O1 -o ldtest '${src}' -lm`, dir);

Deno.test({
  name:
    "long double program (printf %Lf/%La, strtold, sqrtl, libm) prints in the guest what it prints on the host",
  ignore: !built.ok,
  async fn() {
    const host = await sh("./ldtest", dir);
    assert.ok(host.ok, host.out);
    // The guest's initramfs plus a second archive holding /ldtest (the kernel unpacks both).
    await Deno.copyFile(await guestFile("bzImage"), `${dir}/bzImage`);
    const extra = await sh("echo ldtest | cpio -o -H newc --quiet | gzip -1 > extra.cpio.gz", dir);
    assert.ok(extra.ok, extra.out);
    const base = await Deno.readFile(await guestFile("initramfs.cpio.gz"));
    const add = await Deno.readFile(`${dir}/extra.cpio.gz`);
    const initrd = new Uint8Array(base.length + add.length);
    initrd.set(base);
    initrd.set(add, base.length);
    await Deno.writeFile(`${dir}/initrd.gz`, initrd);
    const r = await boot([
      "-M",
      "microvm",
      "-accel",
      "tcg",
      "-cpu",
      "max",
      "-m",
      "256m",
      "-kernel",
      "bzImage",
      "-initrd",
      "initrd.gz",
      "-append",
      "console=ttyS0 rdinit=/init reboot=t guest_cmd=/ldtest",
      "-nodefaults",
      "-no-user-config",
      "-nographic",
      "-serial",
      "stdio",
      "-no-reboot",
    ], { cwd: dir, timeoutMs: 240_000 });
    const lines = r.out.split(/\r?\n/);
    const b = lines.findIndex((l) => l.includes("GUEST-CMD-BEGIN"));
    const e = lines.findIndex((l) => l.includes("GUEST-CMD-END"));
    assert.ok(b >= 0 && e > b, `no command output:\n${lines.slice(-30).join("\n")}`);
    assert.ok(lines[e].includes("rc=0"), lines.slice(b, e + 1).join("\n"));
    const guest = lines.slice(b + 1, e).join("\n").trim();
    assert.equal(guest, host.out.trim());
  },
});
