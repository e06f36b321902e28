/**
 * Issue 15, protocol level: a raw GDB remote-protocol client against the VMM (`-gdb unix:…,server=on,wait=off
 * -S`, the default guest on the software CPU). Every packet kind the stub implements, with QEMU's answers, and
 * malformed input (bad checksum, oversize, unknown, bad arguments). The guest really runs: a breakpoint at
 * start_kernel is hit, a watchpoint on jiffies fires, single steps move rip, Ctrl-C stops it, a vanished client
 * lets it run on, `vKill` and `k` end the process.
 */
import assert from "node:assert/strict";
import { guestFile } from "../core/host/guest_files.ts";
import { elfSymbols } from "./lib/elf_syms.ts";
import { frame, hexOf, RspClient, textOfHex } from "./lib/rsp_client.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const vmlinux = await guestFile("vmlinux");
const initrd = await guestFile("initramfs.cpio.gz");
const syms = elfSymbols(await Deno.readFile(vmlinux));
const hex = (v: bigint) => v.toString(16);

interface Vm {
  child: Deno.ChildProcess;
  sock: string;
  mon: string;
  serial: string;
  stderr: () => string;
  dir: string;
}

async function startVm(extra: string[] = []): Promise<Vm> {
  const dir = await Deno.makeTempDir({ prefix: "mvt-gdb-" });
  const sock = `${dir}/gdb.sock`, mon = `${dir}/mon.sock`, serial = `${dir}/serial.txt`;
  const child = new Deno.Command(Deno.execPath(), {
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
      ...["-monitor", `unix:${mon},server=on,wait=off`, "-S", "-gdb", `unix:${sock},server=on,wait=off`],
      ...extra,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  void (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) err += c;
  })();
  void child.stdout.cancel();
  for (let i = 0; i < 600; i++) {
    try {
      Deno.statSync(sock);
      Deno.statSync(mon);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { child, sock, mon, serial, stderr: () => err, dir };
}

/** One HMP command over the -monitor socket (one connection per VM, kept open). */
const monConns = new Map<string, { c: Deno.Conn; out: string }>();
async function hmp(vm: Vm, command: string): Promise<string> {
  let m = monConns.get(vm.mon);
  const dec = new TextDecoder();
  const buf = new Uint8Array(4096);
  const readUntil = async (s: string) => {
    while (!m!.out.includes(s)) {
      const n = await m!.c.read(buf);
      if (n === null) throw new Error("monitor closed");
      m!.out += dec.decode(buf.subarray(0, n));
    }
  };
  if (!m) {
    m = { c: await Deno.connect({ transport: "unix", path: vm.mon }), out: "" };
    monConns.set(vm.mon, m);
    await readUntil("(qemu) ");
  }
  m.out = "";
  await m.c.write(new TextEncoder().encode(command + "\n"));
  await readUntil("(qemu) ");
  return m.out;
}

async function cleanup(vm: Vm): Promise<void> {
  try {
    monConns.get(vm.mon)?.c.close();
  } catch {
    // closed
  }
  monConns.delete(vm.mon);
  try {
    vm.child.kill("SIGKILL");
  } catch {
    // already exited
  }
  await vm.child.status;
  await Deno.remove(vm.dir, { recursive: true }).catch(() => {});
}

const T = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name:
    "gdbstub protocol: every packet kind against the booting guest, malformed input, vanished client, vKill",
  ...T,
  fn: async (t) => {
    const vm = await startVm();
    const g = await RspClient.connect(vm.sock);
    try {
      await t.step(
        "malformed: bad checksum gets '-', oversize is dropped, unknown gets an empty reply",
        async () => {
          await g.raw("$qSupported#00");
          assert.equal(await g.ack(), "-");
          assert.equal(await g.quiet("X".repeat(5000)), "", "an oversize packet gets no reply at all");
          assert.equal(await g.cmd("qNoSuchQuery"), "");
          assert.equal(await g.cmd("vNoSuch"), "");
          assert.equal(await g.cmd("!"), "");
          assert.equal(await g.cmd("bc"), "");
          assert.equal(await g.cmd("mzz,4"), "");
          assert.equal(await g.cmd("m1000"), "E22");
          assert.equal(await g.cmd("Z0,1000"), "E22");
          assert.equal(await g.cmd("Z9,1000,1"), "", "unsupported breakpoint type");
          assert.equal(await g.cmd("Hx"), "E22");
          // A nack makes the stub send its last packet again.
          await g.raw(frame("qAttached"));
          assert.equal(await g.ack(), "+");
          assert.equal(await g.packet(30_000, false), "1");
          await g.raw("-");
          assert.equal(await g.packet(), "1");
        },
      );

      await t.step("qSupported, ?, qXfer target description", async () => {
        assert.equal(
          await g.cmd(
            "qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;xmlRegisters=i386",
          ),
          "PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+",
        );
        assert.equal(await g.cmd("p10"), "", "p before the target description: empty, as QEMU");
        assert.equal(await g.cmd("?"), "T05thread:p01.01;");
        const target = await g.cmd("qXfer:features:read:target.xml:0,ffb");
        assert.match(
          target,
          /^l<\?xml.*<architecture>i386:x86-64<\/architecture><xi:include href="i386-64bit.xml"\/>/,
        );
        let xml = "";
        for (let off = 0;; off += 0x100) {
          const r = await g.cmd(`qXfer:features:read:i386-64bit.xml:${off.toString(16)},100`);
          xml += r.slice(1);
          if (r[0] === "l") break;
          assert.equal(r[0], "m");
        }
        const regs = [...xml.matchAll(/<reg name="([^"]+)" bitsize="(\d+)"/g)].map((m) => `${m[1]}:${m[2]}`);
        assert.equal(regs.length, 66);
        for (
          const r of ["rip:64", "eflags:32", "fs_base:64", "gs_base:64", "k_gs_base:64", "cr0:64", "cr8:64"]
        ) {
          assert.ok(regs.includes(r), r);
        }
        for (const r of ["efer:64", "st0:80", "st7:80", "fop:32", "xmm0:128", "xmm15:128", "mxcsr:32"]) {
          assert.ok(regs.includes(r), r);
        }
        assert.equal(await g.cmd("qXfer:features:read:nosuch.xml:0,100"), "E00");
        assert.equal(await g.cmd("qXfer:features:read:target.xml:10000,100"), "E00");
      });

      await t.step(
        "threads: qfThreadInfo/qsThreadInfo, qC, qThreadExtraInfo, T, Hg/Hc, qAttached",
        async () => {
          assert.equal(await g.cmd("qfThreadInfo"), "mp01.01");
          assert.equal(await g.cmd("qsThreadInfo"), "mp01.02");
          assert.equal(await g.cmd("qsThreadInfo"), "l");
          assert.equal(await g.cmd("qC"), "QCp01.01");
          assert.equal(textOfHex(await g.cmd("qThreadExtraInfo,p1.1")), "CPU#0 [running]");
          assert.equal(
            textOfHex(await g.cmd("qThreadExtraInfo,p1.2")),
            "CPU#1 [halted ]",
            "the AP waits for SIPI",
          );
          assert.equal(await g.cmd("qThreadExtraInfo,p1.9"), "E22");
          assert.equal(await g.cmd("Tp1.2"), "OK");
          assert.equal(await g.cmd("Tp1.3"), "E22");
          assert.equal(await g.cmd("Tp2.1"), "E22");
          assert.equal(await g.cmd("Hgp1.2"), "OK");
          assert.equal(await g.cmd("Hgp1.5"), "E22");
          assert.equal(await g.cmd("Hcp1.-1"), "OK");
          assert.equal(await g.cmd("Hc-1"), "OK");
          assert.equal(await g.cmd("Hg0"), "OK");
          assert.equal(await g.cmd("Hgp1.1"), "OK");
          assert.equal(await g.cmd("qAttached:1"), "1");
        },
      );

      let entryRip = 0n;
      await t.step("registers: g (66 registers), p, P, G", async () => {
        const all = await g.cmd("g");
        assert.equal(all.length, 608 * 2);
        const le = (h: string) => BigInt("0x" + (h.match(/../g) ?? []).reverse().join(""));
        entryRip = le(all.slice(16 * 16, 16 * 16 + 16));
        assert.equal(await g.cmd("p10"), all.slice(256, 272), "rip by number");
        const cr0 = le(await g.cmd("p1b"));
        assert.equal(cr0 & 1n, 1n, "PVH entry runs in protected mode");
        assert.equal(await g.cmd("p100"), "E14");
        assert.equal((await g.cmd("p21")).length, 20, "st0 is 10 bytes");
        assert.equal((await g.cmd("p31")).length, 32, "xmm0 is 16 bytes");
        assert.equal(le(await g.cmd("p41")), 0x1f80n, "mxcsr at reset");
        const rax = await g.cmd("p0");
        assert.equal(await g.cmd("P0=8877665544332211"), "OK");
        assert.equal(await g.cmd("p0"), "8877665544332211");
        assert.equal(await g.cmd("P0=" + rax), "OK");
        assert.equal(await g.cmd("P0"), "E22");
        assert.equal(await g.cmd("G" + all), "OK");
        assert.equal(await g.cmd("g"), all);
      });

      await t.step("memory: m, M, X (binary escapes), limits, Qqemu.PhyMemMode", async () => {
        const code = await g.cmd(`m${hex(entryRip)},10`);
        assert.match(code, /^[0-9a-f]{32}$/);
        assert.equal(await g.cmd("M200000,4:deadbeef"), "OK");
        assert.equal(await g.cmd("m200000,4"), "deadbeef");
        assert.equal(await g.cmd("M200000,8:dead"), "E22", "fewer bytes than the length");
        // '#', '$', '}' travel escaped ('}' then byte ^ 0x20).
        assert.equal(await g.cmd("X200004,4:\x7d\x03\x7d\x04\x7d\x5d"), "E22", "3 bytes for length 4");
        assert.equal(await g.cmd("X200004,4:\x7d\x03\x7d\x04\x7d\x5dA"), "OK");
        assert.equal(await g.cmd("m200004,4"), "23247d41");
        assert.equal(await g.cmd("X200004,0:"), "OK");
        assert.equal(await g.cmd("m0,801"), "E22");
        assert.equal((await g.cmd("m0,800")).length, 4096);
        assert.equal(await g.cmd("qqemu.PhyMemMode"), "0");
        assert.equal(await g.cmd("Qqemu.PhyMemMode:1"), "OK");
        assert.equal(await g.cmd("qqemu.PhyMemMode"), "1");
        assert.equal(await g.cmd("m200000,4"), "deadbeef");
        assert.equal(await g.cmd("Qqemu.PhyMemMode:0"), "OK");
        assert.equal(await g.cmd("qqemu.sstepbits"), "ENABLE=1,NOIRQ=2,NOTIMER=4");
        assert.equal(await g.cmd("qqemu.sstep"), "0x7");
        assert.equal(await g.cmd("Qqemu.sstep=8"), "E22");
        assert.equal(await g.cmd("Qqemu.sstep=7"), "OK");
      });

      await t.step("qRcmd runs HMP: info status while prelaunch", async () => {
        await g.raw(frame("qRcmd," + hexOf("info status")));
        assert.equal(await g.ack(), "+");
        assert.equal(textOfHex((await g.packet()).slice(1)), "VM status: paused (prelaunch)\r\n");
        assert.equal(await g.packet(), "OK");
        assert.equal(await g.cmd("qRcmd,123"), "E01");
        assert.equal(await g.cmd("qRcmd,"), "E22");
      });

      await t.step("s and vCont;s step one vCPU; vCont? and bad vCont", async () => {
        assert.equal(await g.cmd("vCont?"), "vCont;c;C;s;S");
        assert.equal(await g.cmd("s"), "T05thread:p01.01;");
        const rip1 = await g.cmd("p10");
        assert.equal(await g.cmd("vCont;s:p1.1;c"), "T05thread:p01.01;");
        const rip2 = await g.cmd("p10");
        assert.notEqual(rip1, rip2);
        assert.equal(await g.cmd("vCont;x"), "");
        assert.equal(await g.cmd("vCont;s:p1.9"), "E22");
        await g.raw(frame("qRcmd," + hexOf("info status")));
        await g.ack();
        assert.equal(textOfHex((await g.packet()).slice(1)), "VM status: paused (debug)\r\n");
        assert.equal(await g.packet(), "OK");
      });

      const startKernel = syms.get("start_kernel")!;
      const jiffies = syms.get("jiffies")!;
      await t.step(
        "Z1 hardware breakpoint at start_kernel, z1, Z0 kept by the CPU (memory unchanged)",
        async () => {
          assert.equal(await g.cmd(`Z1,${hex(startKernel)},1`), "OK");
          assert.equal(await g.cmd(`Z0,${hex(startKernel)},1`), "OK");
          assert.equal(await g.cmd("c", 120_000), "T05thread:p01.01;");
          assert.equal(await g.cmd("p10"), (hex(startKernel).match(/../g) ?? []).reverse().join(""));
          // start_kernel begins with push %r14 (41 56): no int3 (cc) was patched in.
          assert.equal(await g.cmd(`m${hex(startKernel)},2`), "4156", "guest memory is not patched");
          assert.equal(await g.cmd(`z1,${hex(startKernel)},1`), "OK");
          assert.equal(await g.cmd(`z0,${hex(startKernel)},1`), "OK");
          assert.equal(await g.cmd(`z0,${hex(startKernel)},1`), "E22", "no such breakpoint");
        },
      );

      await t.step("Z2/Z3/Z4 watchpoints on jiffies report the address", async () => {
        assert.equal(await g.cmd(`Z2,${hex(jiffies)},0`), "E22", "zero length");
        assert.equal(await g.cmd(`Z2,${hex(jiffies)},8`), "OK");
        const addr = hex(jiffies).padStart(16, "0");
        assert.equal(await g.cmd("c", 180_000), `T05thread:p01.01;watch:${addr};`);
        assert.equal(await g.cmd(`z2,${hex(jiffies)},8`), "OK");
        assert.equal(await g.cmd(`Z3,${hex(jiffies)},8`), "OK");
        assert.match(await g.cmd("c", 180_000), new RegExp(`^T05thread:p01.0[12];rwatch:${addr};$`));
        assert.equal(await g.cmd(`z3,${hex(jiffies)},8`), "OK");
        assert.equal(await g.cmd(`Z4,${hex(jiffies)},8`), "OK");
        assert.match(await g.cmd("c", 180_000), new RegExp(`^T05thread:p01.0[12];awatch:${addr};$`));
        assert.equal(await g.cmd(`z4,${hex(jiffies)},8`), "OK");
      });

      await t.step("Ctrl-C stops the running guest with SIGINT; HMP sees paused", async () => {
        await g.raw(frame("c"));
        assert.equal(await g.ack(), "+");
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(g.take(), "", "no reply while running");
        await g.raw("\x03");
        assert.match(await g.packet(), /^T02thread:p01.0[12];$/);
        assert.match(await hmp(vm, "info status"), /VM status: paused\r?\n/);
      });

      await t.step("D detaches and resumes", async () => {
        assert.equal(await g.cmd("D"), "E22", "multiprocess detach needs the pid");
        assert.equal(await g.cmd("D;1"), "OK");
        assert.match(await hmp(vm, "info status"), /VM status: running/);
        g.close();
      });

      await t.step("a client that connects stops the VM; when it vanishes the VM runs on", async () => {
        // The socket serves one client at a time: let it see the first one go.
        await new Promise((r) => setTimeout(r, 300));
        const g2 = await RspClient.connect(vm.sock);
        assert.equal(
          await g2.cmd("qSupported:multiprocess+"),
          "PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+",
        );
        assert.match(await hmp(vm, "info status"), /VM status: paused\r?\n/);
        assert.equal(await g2.cmd(`Z1,${hex(syms.get("schedule")!)},1`), "OK");
        g2.close(); // breakpoint set, then gone without D
        await new Promise((r) => setTimeout(r, 300));
        assert.match(await hmp(vm, "info status"), /VM status: running/);
        const before = (await Deno.readTextFile(vm.serial)).length;
        for (let i = 0; i < 300 && (await Deno.readTextFile(vm.serial)).length === before; i++) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok((await Deno.readTextFile(vm.serial)).length > before, "the guest keeps printing");
      });

      await t.step("vKill ends the process", async () => {
        const g3 = await RspClient.connect(vm.sock);
        assert.equal(await g3.cmd("vKill;1"), "OK");
        const st = await vm.child.status;
        assert.equal(st.code, 0);
        assert.match(vm.stderr(), /Terminated via GDBstub/);
        g3.close();
      });
    } finally {
      g.close();
      await cleanup(vm);
    }
  },
});

Deno.test({
  name: "gdbstub protocol: without multiprocess thread ids are plain; k quits; HMP gdbserver none/restart",
  ...T,
  fn: async () => {
    const vm = await startVm();
    try {
      assert.match(await hmp(vm, "gdbserver none"), /Disabled gdbserver/);
      await new Promise((r) => setTimeout(r, 200));
      await assert.rejects(() => Deno.connect({ transport: "unix", path: vm.sock }));
      const out = await hmp(vm, `gdbserver unix:${vm.sock},server=on,wait=off`);
      assert.match(
        out,
        new RegExp(`Waiting for gdb connection on device 'unix:${vm.sock},server=on,wait=off'`),
      );
      assert.match(await hmp(vm, "gdbserver bogus:x"), /Could not open gdbserver on device 'bogus:x'/);
      let g: RspClient | null = null;
      for (let i = 0; i < 50 && !g; i++) {
        g = await RspClient.connect(vm.sock).catch(() => null);
        if (!g) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(g);
      assert.equal(
        await g.cmd("qSupported:xmlRegisters=i386"),
        "PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+",
      );
      assert.equal(await g.cmd("?"), "T05thread:01;");
      assert.equal(await g.cmd("qfThreadInfo"), "m01");
      assert.equal(await g.cmd("qC"), "QC01");
      await g.raw(frame("k"));
      const st = await vm.child.status;
      assert.equal(st.code, 0);
      assert.match(vm.stderr(), /QEMU: Terminated via GDBstub/);
      g.close();
    } finally {
      await cleanup(vm);
    }
  },
});
