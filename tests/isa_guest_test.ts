/**
 * A real x86-64-v3 program in the guest: core/cpu/testgen/isa_prog.c compiled on this host
 * (gcc -static -O2 -march=x86-64-v3), run natively and inside a `-cpu max -accel tcg` Linux guest (added to
 * the initramfs as a second, uncompressed cpio archive); the outputs must be identical. The guest's
 * /proc/cpuinfo must list the x86-64-v3 flags.
 */
import assert from "node:assert/strict";
import { guestFile } from "../core/host/guest_files.ts";
import { boot } from "./lib/boot.ts";

const SRC = new URL("../core/cpu/testgen/isa_prog.c", import.meta.url).pathname;

async function run(cmd: string[], cwd?: string): Promise<{ ok: boolean; out: string }> {
  try {
    const o = await new Deno.Command(cmd[0], { args: cmd.slice(1), cwd, stdout: "piped", stderr: "piped" })
      .output();
    return { ok: o.success, out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr) };
  } catch (e) {
    return { ok: false, out: String(e) };
  }
}

/** One newc cpio archive holding `files` (name → [mode, data]), with its trailer. */
export function newcArchive(files: Array<[string, number, Uint8Array]>): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  let len = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    len += b.length;
    const pad = (4 - (len % 4)) % 4;
    if (pad) {
      parts.push(new Uint8Array(pad));
      len += pad;
    }
  };
  let ino = 0x4000;
  for (
    const [name, mode, data] of [
      ...files,
      ["TRAILER!!!", 0, new Uint8Array(0)] as [string, number, Uint8Array],
    ]
  ) {
    const f = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0];
    const hdr = "070701" + f.map((v) => v.toString(16).padStart(8, "0")).join("");
    push(enc.encode(hdr + name + "\0"));
    if (data.length) push(data);
  }
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const hostV3 = Deno.build.arch === "x86_64" &&
  (() => {
    try {
      return /\bavx2\b/.test(Deno.readTextFileSync("/proc/cpuinfo")) &&
        /\bbmi2\b/.test(Deno.readTextFileSync("/proc/cpuinfo"));
    } catch {
      return false;
    }
  })();

Deno.test({
  name:
    "an x86-64-v3 static program prints the same in a -cpu max guest as on the host; cpuinfo lists the v3 flags",
  ignore: !hostV3,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mvt-isa-" });
    try {
      const cc = await run([
        "gcc",
        "-static",
        "-O2",
        "-march=x86-64-v3",
        "-o",
        `${dir}/isa_prog`,
        SRC,
        "-lm",
      ]);
      assert.ok(cc.ok, `gcc failed (is gcc + libc6-dev installed?): ${cc.out}`);
      const host = await run([`${dir}/isa_prog`]);
      assert.ok(host.ok, host.out);
      const prog = await Deno.readFile(`${dir}/isa_prog`);
      const base = await Deno.readFile(await guestFile("initramfs.cpio.gz"));
      const extra = newcArchive([["isa_prog", 0o100755, prog]]);
      const pad = (4 - (base.length % 4)) % 4;
      const initrd = new Uint8Array(base.length + pad + extra.length);
      initrd.set(base, 0);
      initrd.set(extra, base.length + pad);
      await Deno.writeFile(`${dir}/initrd`, initrd);
      await Deno.copyFile(await guestFile("bzImage"), `${dir}/bzImage`);
      const r = await boot([
        ...["-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", "256m", "-kernel", "bzImage"],
        ...[
          "-initrd",
          "initrd",
          "-nodefaults",
          "-no-user-config",
          "-nographic",
          "-serial",
          "stdio",
          "-no-reboot",
        ],
        "-append",
        'console=ttyS0 rdinit=/init reboot=t guest_cmd="/isa_prog; grep -m1 ^flags /proc/cpuinfo"',
      ], { cwd: dir, timeoutMs: 600_000 });
      const lines = r.out.split(/\r?\n/).map((l) => l.replace(/\r$/, ""));
      const b = lines.findIndex((l) => l.includes("GUEST-CMD-BEGIN"));
      const e = lines.findIndex((l) => l.includes("GUEST-CMD-END"));
      assert.ok(b >= 0 && e > b, `no guest command output:\n${lines.slice(-30).join("\n")}`);
      const guest = lines.slice(b + 1, e);
      const flags = guest.pop() ?? "";
      assert.deepEqual(guest, host.out.trimEnd().split("\n"));
      for (
        const f of [
          "avx",
          "avx2",
          "bmi1",
          "bmi2",
          "fma",
          "f16c",
          "movbe",
          "popcnt",
          "sse4_1",
          "sse4_2",
          "ssse3",
          "xsave",
          "abm",
          "cx16",
        ]
      ) {
        assert.match(flags, new RegExp(`\\b${f}\\b`), `cpuinfo flags lack ${f}: ${flags}`);
      }
      assert.match(lines[e], /GUEST-CMD-END rc=0/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
