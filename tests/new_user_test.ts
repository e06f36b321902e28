/**
 * Bad input a new user tries (issue 18 item 7), each against QEMU 7.2's behaviour: one line and exit 1 for
 * errors, the VM going on where QEMU goes on, bounded memory, files written and removed as QEMU does.
 * @module
 */
import assert from "node:assert/strict";
import { guestFile } from "../core/host/guest_files.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const kernel = await guestFile("vmlinux");
const B = ["-M", "microvm,acpi=off", "-accel", "tcg", "-m", "64m", "-nodefaults", "-display", "none", "-S"];
const dir = Deno.makeTempDirSync({ prefix: "mvt-newuser-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

async function run(
  args: string[],
  o: { stdin?: string; perms?: string[]; stdout?: "piped" | "null" } = {},
): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(o.perms ?? ["-A"]), MAIN, ...args],
    cwd: dir,
    stdin: o.stdin !== undefined ? "piped" : "null",
    stdout: o.stdout ?? "piped",
    stderr: "piped",
  }).spawn();
  if (o.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(o.stdin));
    await w.close();
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const [st, out, err] = await Promise.all([
    child.status,
    o.stdout === "null" ? Promise.resolve("") : new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  clearTimeout(timer);
  return { code: st.code, out, err };
}

// deno-lint-ignore no-control-regex
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/\r/g, "");

Deno.test("-kernel/-initrd on devices fail at once with one line (no unbounded read)", async () => {
  let r = await run([...B, "-kernel", "/dev/zero"]);
  assert.equal(r.code, 1);
  assert.equal(r.err, "microvm.ts: could not load kernel '/dev/zero': Success\n");
  r = await run([...B, "-kernel", kernel, "-initrd", "/dev/urandom"]);
  assert.equal(r.code, 1);
  assert.equal(r.err, "microvm.ts: error reading initrd /dev/urandom: not a regular file\n");
});

Deno.test("-pidfile is written with the PID, removed at exit; an unwritable path is an error", async () => {
  const pid = `${dir}/vm.pid`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...B, "-kernel", kernel, "-pidfile", pid],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  for (let i = 0; i < 100 && text === ""; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      text = Deno.readTextFileSync(pid);
    } catch {
      // not yet
    }
  }
  assert.equal(text, `${child.pid}\n`);
  child.kill("SIGTERM");
  await child.status;
  await child.stderr.cancel();
  assert.throws(() => Deno.statSync(pid), Deno.errors.NotFound);
  const r = await run([...B, "-kernel", kernel, "-pidfile", "/nonexistent/dir/p.pid"]);
  assert.equal(r.code, 1);
  assert.equal(
    r.err,
    "microvm.ts: cannot create PID file: Could not create '/nonexistent/dir/p.pid': No such file or directory\n",
  );
});

Deno.test("-D into a missing directory: one line, exit 1", async () => {
  const r = await run([...B, "-kernel", kernel, "-D", "/nonexistent/dir/log", "-d", "int"]);
  assert.equal(r.code, 1);
  assert.equal(r.err, "microvm.ts: Error opening logfile /nonexistent/dir/log: No such file or directory\n");
});

Deno.test("invalid property values are refused with QEMU's messages", async () => {
  let r = await run([...B, "-kernel", kernel, "-global", "virtio-mmio.force-legacy=maybe"]);
  assert.equal(r.code, 1);
  assert.equal(
    r.err,
    "microvm.ts: can't apply global virtio-mmio.force-legacy=maybe: Parameter 'force-legacy' expects 'on' or 'off'\n",
  );
  r = await run([...B, "-kernel", kernel, "-device", "virtio-serial-device,max_ports=100000"]);
  assert.equal(r.code, 1);
  assert.equal(r.err, "microvm.ts: maximum ports supported: 511\n");
});

Deno.test("HMP on stdio: nothing after quit runs; a full or closed stdout does not crash the VMM", async () => {
  const r = await run([...B, "-kernel", kernel, "-monitor", "stdio"], { stdin: "print 1\nquit\nprint 2\n" });
  assert.equal(r.code, 0, r.err);
  const out = plain(r.out);
  assert.ok(out.includes("0x1\n"), out);
  assert.ok(!out.includes("print 2") && !out.includes("0x2"), out);
  // stdout is /dev/full: writes fail with ENOSPC and are dropped, as QEMU does.
  const full = await new Deno.Command("sh", {
    args: [
      "-c",
      `"${Deno.execPath()}" run -A "${MAIN}" ${B.join(" ")} -kernel "${kernel}" -monitor stdio > /dev/full`,
    ],
    stdin: "piped",
    stderr: "piped",
    stdout: "null",
  }).spawn();
  const w = full.stdin.getWriter();
  await w.write(new TextEncoder().encode("info mtree\ninfo qtree\nquit\n"));
  await w.close();
  const [st, err] = await Promise.all([full.status, new Response(full.stderr).text()]);
  assert.equal(st.code, 0, err);
  assert.equal(err, "");
  // stdout closed early (| head -c 5): EPIPE is dropped too.
  const head = await new Deno.Command("sh", {
    args: [
      "-c",
      `printf 'info mtree\\ninfo mtree\\ninfo mtree\\nquit\\n' | "${Deno.execPath()}" run -A "${MAIN}" ${
        B.join(" ")
      } -kernel "${kernel}" -monitor stdio 2>"${dir}/err.txt" | head -c 5; exit \${PIPESTATUS:-0}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(head.stdout), "QEMU ");
  assert.equal(Deno.readTextFileSync(`${dir}/err.txt`), "");
});

const QEMU = (() => {
  try {
    return new Deno.Command("qemu-system-x86_64", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
if (!QEMU) console.log("SKIP: qemu-system-x86_64 not installed: image-lock interop with QEMU not tested");

Deno.test({
  name: "image locks: QEMU and microvm.ts refuse an image the other has open read-write",
  ignore: !QEMU,
  fn: async () => {
    const img = `${dir}/lock.img`;
    Deno.writeFileSync(img, new Uint8Array(1 << 20));
    const drive = ["-drive", `if=none,id=d,file=${img},format=raw`, "-device", "virtio-blk-device,drive=d"];
    const q = new Deno.Command("qemu-system-x86_64", {
      args: ["-M", "microvm", "-accel", "tcg", "-nodefaults", "-display", "none", "-S", ...drive],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await new Promise((r) => setTimeout(r, 1500));
    const r = await run([...B, "-kernel", kernel, ...drive]);
    q.kill("SIGTERM");
    await q.status;
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      `microvm.ts: Failed to get "write" lock: is another process using the image [${img}]?\n`,
    );
    // Ours first, QEMU second (read-only): QEMU sees our locks.
    const ours = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...B, "-kernel", kernel, ...drive],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await new Promise((r) => setTimeout(r, 2500));
    const qr = await new Deno.Command("qemu-system-x86_64", {
      args: [
        "-M",
        "microvm",
        "-accel",
        "tcg",
        "-nodefaults",
        "-display",
        "none",
        "-S",
        "-drive",
        `if=none,id=d,file=${img},format=raw,readonly=on`,
        "-device",
        "virtio-blk-device,drive=d",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    ours.kill("SIGTERM");
    await ours.status;
    assert.equal(qr.code, 1);
    assert.match(new TextDecoder().decode(qr.stderr), /Failed to get shared "write" lock/);
  },
});
