/**
 * Issue 15 with the real gdb (Debian's `gdb`, batch mode) against the default guest on the software CPU,
 * as a user would run it: `main.ts … -gdb tcp::PORT -S -smp 2`, then `gdb vmlinux -ex 'target remote :PORT'`.
 * A hardware breakpoint at start_kernel, registers, disassembly, stepi, a watchpoint on jiffies that fires,
 * two vCPUs as threads, `monitor info status`, detach (the guest boots on to its /init) and kill.
 */
import assert from "node:assert/strict";
import { guestFile } from "../core/host/guest_files.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const vmlinux = await guestFile("vmlinux");
const initrd = await guestFile("initramfs.cpio.gz");

function haveGdb(): boolean {
  try {
    return new Deno.Command("gdb", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function gdb(commands: string[], timeoutMs = 240_000): Promise<string> {
  const script = await Deno.makeTempFile({ suffix: ".gdb" });
  await Deno.writeTextFile(script, ["set pagination off", "set confirm off", ...commands].join("\n") + "\n");
  const child = new Deno.Command("gdb", {
    args: ["-batch", "-nx", "-x", script, vmlinux],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  await Deno.remove(script);
  const dec = new TextDecoder();
  return dec.decode(out.stdout) + dec.decode(out.stderr);
}

const gdbOk = haveGdb();
if (!gdbOk) console.error("SKIP: gdb is not installed (apt-get install gdb); tests/gdb_test.ts skipped");

Deno.test({
  name:
    "real gdb: hbreak start_kernel, registers, x/5i, stepi, watch jiffies, 2 threads, monitor, detach, kill",
  ignore: !gdbOk,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "mvt-gdb-" });
    const serial = `${dir}/serial.txt`;
    const port = freePort();
    const vm = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-net",
        MAIN,
        ...["-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", "256m", "-smp", "2"],
        ...["-kernel", vmlinux, "-initrd", initrd, "-append", "console=ttyS0 rdinit=/init"],
        ...["-nodefaults", "-no-user-config", "-nographic", "-serial", `file:${serial}`],
        ...["-gdb", `tcp:127.0.0.1:${port}`, "-S"],
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let err = "";
    void (async () => {
      for await (const c of vm.stderr.pipeThrough(new TextDecoderStream())) err += c;
    })();
    void vm.stdout.cancel();
    try {
      // Wait for the listener.
      for (let i = 0; i < 600; i++) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
        if (c) {
          c.close();
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 200)); // the probe connection's close is seen first
      const out = await gdb([
        `target remote 127.0.0.1:${port}`,
        "info threads",
        "hbreak start_kernel",
        "continue",
        "info registers rip rsp eflags cs cr0 cr3 efer fs_base gs_base k_gs_base",
        "x/5i $pc",
        "stepi",
        "p/x $pc",
        "monitor info status",
        "delete",
        "watch *(unsigned long *)&jiffies",
        "continue",
        "delete",
        "detach",
      ]);
      // Two vCPUs as threads; the AP waits for its SIPI.
      assert.match(out, /1\s+Thread 1\.1 \(CPU#0 \[running\]\)/, out);
      assert.match(out, /2\s+Thread 1\.2 \(CPU#1 \[halted \]\)/, out);
      assert.match(out, /Hardware assisted breakpoint 1 at 0xffffffff[0-9a-f]+/, out);
      assert.match(out, /Thread 1 hit Breakpoint 1, (0x[0-9a-f]+) in start_kernel \(\)/, out);
      const sk = /Breakpoint 1, (0x[0-9a-f]+) in start_kernel/.exec(out)![1];
      assert.match(out, new RegExp(`rip\\s+${sk}\\s+${sk} <start_kernel>`), out);
      assert.match(out, /rsp\s+0xffffffff[0-9a-f]+/, out);
      assert.match(out, /cs\s+0x10\s+16/, out);
      assert.match(out, /cr0\s+0x80050033\s+\[ PG AM WP NE ET MP PE \]/, out);
      assert.match(out, /efer\s+0x[0-9a-f]*d01\s+\[ NXE LMA LME SCE \]/, out);
      assert.match(out, /fs_base\s+0x0/, out);
      assert.match(out, /k_gs_base\s+0x0/, out);
      // x/5i: five instructions from start_kernel, disassembled from guest memory read over the stub.
      const dis = out.match(/^(?:=> )?\s*0xffffffff[0-9a-f]+ <start_kernel(?:\+\d+)?>:\t\S.*$/gm) ?? [];
      assert.equal(dis.length, 5, out);
      assert.match(dis[0], /^=> .*<start_kernel>:/);
      // stepi moved to the second instruction.
      const second = /0x([0-9a-f]+) <start_kernel\+(\d+)>:/.exec(dis[1])!;
      assert.match(out, new RegExp(`\\$1 = 0x${second[1]}`), out);
      assert.match(out, /VM status: paused \(debug\)/, out);
      assert.match(out, /Hardware watchpoint 2: \*\(unsigned long \*\)&jiffies/, out);
      assert.match(
        out,
        /hit Hardware watchpoint 2: \*\(unsigned long \*\)&jiffies\s+Old value = (\d+)\s+New value = (\d+)/,
        out,
      );
      const [, oldV, newV] = /Old value = (\d+)\s+New value = (\d+)/.exec(out)!;
      assert.ok(BigInt(newV) > BigInt(oldV), "jiffies went up");
      assert.match(out, /\[Inferior 1 \(process 1\) detached\]/, out);

      // Detached: the guest runs on to its /init.
      let text = "";
      for (let i = 0; i < 3000 && !text.includes("GUEST-INIT-OK"); i++) {
        await new Promise((r) => setTimeout(r, 100));
        text = await Deno.readTextFile(serial).catch(() => "");
      }
      assert.match(text, /GUEST-INIT-OK/, "the guest boots on after detach");

      // A second session kills the VMM.
      const k = await gdb([`target remote 127.0.0.1:${port}`, "monitor info status", "kill"]);
      assert.match(k, /VM status: paused/, k);
      assert.match(k, /\[Inferior 1 \(process 1\) killed\]/, k);
      const st = await vm.status;
      assert.equal(st.code, 0);
      assert.match(err, /QEMU: Terminated via GDBstub/);
    } finally {
      try {
        vm.kill("SIGKILL");
      } catch {
        // exited
      }
      await vm.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
