/**
 * The qtest protocol against the real microvm board (`-accel qtest`, manual clock): the MC146818 RTC and a
 * virtio-blk request queue are programmed only through qtest lines, as QEMU's rtc-test.c and
 * virtio-blk-test.c do. When the runner (shell/vm.ts) does not implement MachineIface yet, a small adapter
 * over the board's address spaces stands in for it.
 * @module
 */
import assert from "node:assert/strict";
import { isCliAction, parseCommandLine } from "../shell/cli/mod.ts";
import { buildVm, type VmRunner } from "../shell/vm.ts";
import { MICROVM_DEVICES } from "../devices/microvm.ts";
import type { MachineIface } from "../shell/machine_iface.ts";
import { QtestSession } from "../shell/qtest.ts";

function adapter(r: VmRunner): MachineIface {
  if (typeof (r as unknown as MachineIface).memReadN === "function") return r as unknown as MachineIface;
  const mem = r.machine.memory;
  const io = r.machine.io;
  const c = r.clock;
  const nope = () => {
    throw new Error("not in the test adapter");
  };
  return {
    name: undefined,
    versionPackage: "",
    accel: "qtest",
    ramSize: r.machine.ram.size,
    runState: "running",
    stop: nope,
    cont: nope,
    systemReset: nope,
    quit: nope,
    on: () => () => {},
    cpus: () => [],
    memRead: (a, len) => {
      const out = new Uint8Array(len);
      for (let i = 0; i < len; i++) out[i] = mem.read(a + i, 1);
      return out;
    },
    memWrite: (a, d) => d.forEach((b, i) => mem.write(a + i, 1, b)),
    memReadN: (a, s) => mem.read(a, s),
    memWriteN: (a, s, v) => mem.write(a, s, v),
    ioRead: (p, s) => io.read(p, s),
    ioWrite: (p, s, v) => io.write(p, s, v),
    clock: {
      mode: "manual",
      now: () => c.now(),
      step: (ns) => c.step(ns),
      set: (ns) => c.set(ns),
      nextDeadline: () => c.nextDeadline(),
    },
    deviceTypes: MICROVM_DEVICES,
    deviceAdd: nope,
    deviceDel: nope,
    infoMtree: () => "",
    infoQtree: () => "",
    qomObjects: () => [],
    chardevs: () => [],
    blocks: () => [],
    setLogItems: () => {},
    setLogFile: () => {},
  };
}

async function boot(extra: string[]): Promise<{ runner: VmRunner; cmd: (line: string) => string }> {
  const cfg = parseCommandLine(
    ["-M", "microvm", "-accel", "qtest", "-m", "64m", "-nodefaults", "-display", "none", ...extra],
    "microvm.ts",
    { devices: MICROVM_DEVICES },
  );
  if (isCliAction(cfg)) throw new Error("unexpected CLI action");
  const runner = await buildVm(cfg);
  const out: string[] = [];
  const q = new QtestSession(adapter(runner), { send: (t) => out.push(t) });
  q.opened();
  return {
    runner,
    cmd: (line: string) => {
      out.length = 0;
      q.input(line + "\n");
      assert.equal(out.length, 1, `one reply to ${line}`);
      return out[0].replace(/\n$/, "");
    },
  };
}

const RTC_SECONDS = 0x00;
const RTC_REG_A = 0x0a;
const RTC_REG_B = 0x0b;
const RTC_REG_D = 0x0d;
const REG_B_24H = 0x02;
const REG_B_DM = 0x04;

Deno.test("qtest drives the real board's MC146818 RTC: CMOS RAM, register D, seconds tick with clock_step", async () => {
  const { runner, cmd } = await boot([]);
  try {
    const cmosRead = (i: number) => {
      assert.equal(cmd(`outb 0x70 0x${i.toString(16)}`), "OK");
      return parseInt(cmd("inb 0x71").slice(3), 16);
    };
    const cmosWrite = (i: number, v: number) => {
      assert.equal(cmd(`outb 0x70 0x${i.toString(16)}`), "OK");
      assert.equal(cmd(`outb 0x71 0x${v.toString(16)}`), "OK");
    };
    assert.equal(cmd("endianness"), "OK little");
    cmosWrite(0x40, 0x5a);
    assert.equal(cmosRead(0x40), 0x5a);
    assert.equal(cmosRead(RTC_REG_D), 0x80); // VRT: valid RAM and time
    assert.equal(cmosRead(RTC_REG_A) & 0x7f, 0x26);
    cmosWrite(RTC_REG_B, REG_B_24H | REG_B_DM); // binary, 24 h
    const s0 = cmosRead(RTC_SECONDS);
    assert.match(cmd("clock_step 1000000000"), /^OK \d+$/);
    const s1 = cmosRead(RTC_SECONDS);
    assert.equal(s1, (s0 + 1) % 60);
    assert.match(cmd("clock_set 100"), /^OK \d+$/); // never backwards
  } finally {
    runner.close();
  }
});

// virtio-mmio legacy (v1) register offsets (virtio spec 1.1 §4.2.4).
const VIRTIO_BASE = 0xfeb00e00; // top transport: QEMU plugs the first -device there
const MAGIC = 0x000;
const VERSION = 0x004;
const DEVICE_ID = 0x008;
const GUEST_PAGE_SIZE = 0x028;
const QUEUE_SEL = 0x030;
const QUEUE_NUM_MAX = 0x034;
const QUEUE_NUM = 0x038;
const QUEUE_ALIGN = 0x03c;
const QUEUE_PFN = 0x040;
const QUEUE_NOTIFY = 0x050;
const INTERRUPT_STATUS = 0x060;
const INTERRUPT_ACK = 0x064;
const STATUS = 0x070;
const CONFIG = 0x100;
const S_ACK = 1;
const S_DRIVER = 2;
const S_DRIVER_OK = 4;
const VRING_DESC_F_NEXT = 1;
const VRING_DESC_F_WRITE = 2;
const VIRTIO_BLK_T_IN = 0;

Deno.test("qtest drives a virtio-blk request queue on the real board (legacy virtio-mmio)", async () => {
  const dir = Deno.makeTempDirSync();
  const img = `${dir}/disk.raw`;
  const disk = new Uint8Array(1 << 20);
  for (let i = 0; i < 512; i++) disk[512 * 3 + i] = (i * 7 + 1) & 0xff;
  Deno.writeFileSync(img, disk);
  const { runner, cmd } = await boot([
    "-drive",
    `id=d0,file=${img},format=raw,if=none`,
    "-device",
    "virtio-blk-device,drive=d0",
  ]);
  const rl = (off: number) => parseInt(cmd(`readl 0x${(VIRTIO_BASE + off).toString(16)}`).slice(3), 16);
  const wl = (off: number, v: number) =>
    assert.equal(cmd(`writel 0x${(VIRTIO_BASE + off).toString(16)} 0x${v.toString(16)}`), "OK");
  try {
    assert.equal(rl(MAGIC), 0x74726976);
    assert.equal(rl(VERSION), 1);
    assert.equal(rl(DEVICE_ID), 2);
    // Capacity in 512-byte sectors (config space offset 0).
    assert.equal(rl(CONFIG), (1 << 20) / 512);
    wl(STATUS, 0);
    wl(STATUS, S_ACK);
    wl(STATUS, S_ACK | S_DRIVER);
    wl(GUEST_PAGE_SIZE, 4096);
    wl(QUEUE_SEL, 0);
    assert.ok(rl(QUEUE_NUM_MAX) >= 8);
    const qsize = 8;
    const ring = 0x100000; // vring: descriptors, avail ring, then (4 KiB aligned) used ring
    const avail = ring + 16 * qsize;
    const used = ring + 4096;
    assert.equal(cmd(`memset 0x${ring.toString(16)} 8192 0`), "OK");
    wl(QUEUE_NUM, qsize);
    wl(QUEUE_ALIGN, 4096);
    wl(QUEUE_PFN, ring >> 12);
    wl(STATUS, S_ACK | S_DRIVER | S_DRIVER_OK);

    const hdr = 0x110000;
    const data = 0x111000;
    const status = 0x112000;
    // Request header: type IN, reserved, sector 3.
    assert.equal(cmd(`writel 0x${hdr.toString(16)} ${VIRTIO_BLK_T_IN}`), "OK");
    assert.equal(cmd(`writel 0x${(hdr + 4).toString(16)} 0`), "OK");
    assert.equal(cmd(`writeq 0x${(hdr + 8).toString(16)} 3`), "OK");
    assert.equal(cmd(`writeb 0x${status.toString(16)} 0xff`), "OK");
    const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
      const d = ring + 16 * i;
      assert.equal(cmd(`writeq 0x${d.toString(16)} 0x${addr.toString(16)}`), "OK");
      assert.equal(cmd(`writel 0x${(d + 8).toString(16)} ${len}`), "OK");
      assert.equal(cmd(`writew 0x${(d + 12).toString(16)} ${flags}`), "OK");
      assert.equal(cmd(`writew 0x${(d + 14).toString(16)} ${next}`), "OK");
    };
    desc(0, hdr, 16, VRING_DESC_F_NEXT, 1);
    desc(1, data, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
    desc(2, status, 1, VRING_DESC_F_WRITE, 0);
    assert.equal(cmd(`writew 0x${(avail + 4).toString(16)} 0`), "OK"); // ring[0] = head 0
    assert.equal(cmd(`writew 0x${(avail + 2).toString(16)} 1`), "OK"); // avail idx = 1
    wl(QUEUE_NOTIFY, 0);
    // Completion may need the (manual) clock to run the device's bottom half.
    let usedIdx = 0;
    for (let i = 0; i < 10 && usedIdx === 0; i++) {
      usedIdx = parseInt(cmd(`readw 0x${(used + 2).toString(16)}`).slice(3), 16);
      if (usedIdx === 0) cmd("clock_step 1000000");
    }
    assert.equal(usedIdx, 1);
    assert.equal(cmd(`readl 0x${(used + 4).toString(16)}`), "OK 0x0000000000000000"); // used id = head 0
    assert.equal(cmd(`readb 0x${status.toString(16)}`), "OK 0x0000000000000000"); // VIRTIO_BLK_S_OK
    const b64 = cmd(`b64read 0x${data.toString(16)} 512`).slice(3);
    const got = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    assert.deepEqual(got, disk.subarray(512 * 3, 512 * 4));
    assert.equal(rl(INTERRUPT_STATUS) & 1, 1);
    wl(INTERRUPT_ACK, 1);
    assert.equal(rl(INTERRUPT_STATUS) & 1, 0);
  } finally {
    runner.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Read one "\n"-terminated line from a connection, or null after `ms` without one. */
async function readLine(conn: Deno.Conn, state: { buf: string }, ms: number): Promise<string | null> {
  const dec = new TextDecoder();
  const deadline = Date.now() + ms;
  while (!state.buf.includes("\n")) {
    const left = deadline - Date.now();
    if (left <= 0) return null;
    const b = new Uint8Array(4096);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(b),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), left)),
    ]);
    clearTimeout(timer);
    if (n === "timeout" || n === null) return null;
    state.buf += dec.decode(b.subarray(0, n));
  }
  const i = state.buf.indexOf("\n");
  const line = state.buf.slice(0, i);
  state.buf = state.buf.slice(i + 1);
  return line;
}

Deno.test({
  name:
    "qtest through the QTEST_QEMU_BINARY launcher: libqtest's socket handshake, RTC lines, exit 0 on SIGTERM",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync();
    const sock = `${dir}/qtest.sock`;
    // libqtest listens and QEMU connects (-qtest unix:PATH is a client chardev).
    const listener = Deno.listen({ transport: "unix", path: sock });
    const bin = new URL("./qtest_bin/qemu-system-x86_64", import.meta.url).pathname;
    const child = new Deno.Command(bin, {
      args: [
        "-qtest",
        `unix:${sock}`,
        "-qtest-log",
        "/dev/null",
        "-M",
        "microvm",
        "-accel",
        "qtest",
        "-nodefaults",
        "-display",
        "none",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let conn: Deno.Conn | null = null;
    try {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const accepted = await Promise.race([
        listener.accept(),
        new Promise<null>((r) => timer = setTimeout(() => r(null), 30000)),
      ]);
      clearTimeout(timer);
      if (accepted === null) {
        console.log("SKIP: microvm.ts did not connect to the qtest socket");
        return;
      }
      conn = accepted;
      const st = { buf: "" };
      await conn.write(new TextEncoder().encode("endianness\n"));
      const first = await readLine(conn, st, 10000);
      if (first === null) {
        console.log("SKIP: the runner does not serve -qtest yet (shell/monitors.ts)");
        return;
      }
      assert.equal(first, "OK little");
      const cmd = async (line: string) => {
        await conn!.write(new TextEncoder().encode(line + "\n"));
        return await readLine(conn!, st, 10000);
      };
      assert.equal(await cmd("outb 0x70 0x0d"), "OK");
      assert.equal(await cmd("inb 0x71"), "OK 0x0080");
      assert.match((await cmd("clock_step 1000"))!, /^OK \d+$/);
      child.kill("SIGTERM");
      const status = await child.status;
      assert.equal(status.code, 0);
    } finally {
      conn?.close();
      listener.close();
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.stderr.cancel();
      await child.status;
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
