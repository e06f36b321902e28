import assert from "node:assert/strict";
import { type CliResult, formatCliError, isCliAction, parseCommandLine } from "./mod.ts";
import { CliError, parseKeyval, parseQemuOpts, parseSize } from "../options.ts";
import type { DeviceRegistry, VmConfig } from "../../core/config.ts";
import { UserError } from "../../core/types.ts";

const PROG = "qemu-system-x86_64";

/** A registry like the one the board provides (subset of QEMU 7.2's properties). */
const REGISTRY: DeviceRegistry = [
  {
    driver: "virtio-blk-device",
    desc: "Virtio block device",
    bus: "virtio-bus",
    category: "Storage",
    props: [
      { name: "drive", type: "drive", help: "Node name or ID of a block device to use as a backend" },
      { name: "num-queues", type: "uint16", default: 1 },
      { name: "config-wce", type: "bool", default: true },
      { name: "serial", type: "str" },
    ],
  },
  {
    driver: "virtio-net-device",
    desc: "",
    bus: "virtio-bus",
    category: "Network",
    props: [
      { name: "netdev", type: "netdev", help: "ID of a netdev to use as a backend" },
      { name: "mac", type: "macaddr", help: "Ethernet 6-byte MAC Address" },
      { name: "mtu", type: "uint16", default: 0 },
    ],
  },
  { driver: "virtio-serial-device", desc: "", bus: "virtio-bus", category: "Input", props: [] },
  {
    driver: "virtconsole",
    desc: "",
    bus: "virtio-serial-bus",
    category: "Input",
    props: [{ name: "chardev", type: "chr", help: "ID of a chardev to use as a backend" }],
  },
  { driver: "virtio-rng-device", desc: "", bus: "virtio-bus", category: "Misc", props: [] },
];

function parse(line: string | string[]): CliResult {
  const argv = typeof line === "string" ? line.split(" ").filter((s) => s !== "") : line;
  return parseCommandLine(argv, PROG, { devices: REGISTRY });
}

function vm(line: string | string[]): VmConfig {
  const r = parse(line);
  assert.ok(!isCliAction(r), "expected a VmConfig");
  return r;
}

function errorOf(argv: string[]): string {
  try {
    parseCommandLine(argv, PROG, { devices: REGISTRY });
  } catch (e) {
    assert.ok(e instanceof UserError, `not a UserError: ${e}`);
    return e.message;
  }
  return "(no error)";
}

// --- seed command lines (/work/shared/seeds/microvm.rst and the cover letter) ---------------------

const SEED1 = [
  "-M",
  "microvm",
  "-enable-kvm",
  "-cpu",
  "host",
  "-m",
  "512m",
  "-smp",
  "2",
  "-kernel",
  "vmlinux",
  "-append",
  "earlyprintk=ttyS0 console=ttyS0 root=/dev/vda",
  "-nodefaults",
  "-no-user-config",
  "-nographic",
  "-serial",
  "stdio",
  "-drive",
  "id=test,file=test.img,format=raw,if=none",
  "-device",
  "virtio-blk-device,drive=test",
  "-netdev",
  "tap,id=tap0,script=no,downscript=no",
  "-device",
  "virtio-net-device,netdev=tap0",
];

Deno.test("parseCommandLine parses the microvm.rst legacy example", () => {
  const c = vm(SEED1);
  assert.equal(c.machine.type, "microvm");
  assert.equal(c.machine.pit, "auto");
  assert.equal(c.machine.isaSerial, true);
  assert.equal(c.machine.graphics, false);
  assert.deepEqual(c.accel, [{ name: "kvm", props: {} }]);
  assert.deepEqual(c.cpu, { model: "host", features: [], props: {} });
  assert.deepEqual(c.memory, { sizeBytes: 512 * 1024 * 1024, slots: 0, maxBytes: 512 * 1024 * 1024 });
  assert.deepEqual(c.smp, { cpus: 2, maxCpus: 2, sockets: 1, dies: 1, cores: 2, threads: 1 });
  assert.equal(c.kernel, "vmlinux");
  assert.equal(c.append, "earlyprintk=ttyS0 console=ttyS0 root=/dev/vda");
  assert.equal(c.initrd, undefined);
  assert.equal(c.noDefaults, true);
  assert.equal(c.noUserConfig, true);
  assert.equal(c.nographic, true);
  assert.deepEqual(c.chardevs, [
    { id: "serial0", backend: { kind: "stdio", signal: true }, mux: false, logappend: false, implicit: true },
  ]);
  assert.deepEqual(c.serials, [{ chardev: "serial0" }]);
  assert.deepEqual(c.monitors, []);
  assert.equal(c.drives.length, 1);
  assert.deepEqual(c.drives[0], {
    id: "test",
    file: "test.img",
    format: "raw",
    interface: "none",
    readOnly: false,
    snapshot: false,
    cache: { writeback: true, direct: false, noFlush: false },
    aio: "threads",
    discard: "ignore",
    detectZeroes: "off",
    props: { file: "test.img", format: "raw", if: "none" },
  });
  assert.deepEqual(c.devices, [
    { driver: "virtio-blk-device", props: { drive: "test" } },
    { driver: "virtio-net-device", props: { netdev: "tap0" } },
  ]);
  assert.deepEqual(c.netdevs, [{ id: "tap0", type: "tap", props: { script: "no", downscript: "no" } }]);
  assert.deepEqual(c.warnings, []);
});

Deno.test("parseCommandLine parses the microvm.rst example with all legacy devices off", () => {
  const c = vm([
    "-M",
    "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=off,rtc=off",
    "-enable-kvm",
    "-cpu",
    "host",
    "-m",
    "512m",
    "-smp",
    "2",
    "-kernel",
    "vmlinux",
    "-append",
    "console=hvc0 root=/dev/vda",
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-chardev",
    "stdio,id=virtiocon0",
    "-device",
    "virtio-serial-device",
    "-device",
    "virtconsole,chardev=virtiocon0",
    "-drive",
    "id=test,file=test.img,format=raw,if=none",
    "-device",
    "virtio-blk-device,drive=test",
    "-netdev",
    "tap,id=tap0,script=no,downscript=no",
    "-device",
    "virtio-net-device,netdev=tap0",
  ]);
  assert.equal(c.machine.xOptionRoms, false);
  assert.equal(c.machine.pit, "off");
  assert.equal(c.machine.pic, "off");
  assert.equal(c.machine.isaSerial, false);
  assert.equal(c.machine.rtc, "off");
  assert.equal(c.machine.autoKernelCmdline, true);
  assert.deepEqual(c.machine.raw, [
    ["x-option-roms", "off"],
    ["pit", "off"],
    ["pic", "off"],
    ["isa-serial", "off"],
    ["rtc", "off"],
    ["kernel", "vmlinux"],
    ["append", "console=hvc0 root=/dev/vda"],
    ["graphics", "off"],
  ]);
  assert.deepEqual(c.chardevs, [
    {
      id: "virtiocon0",
      backend: { kind: "stdio", signal: true },
      mux: false,
      logappend: false,
      implicit: false,
    },
  ]);
  assert.deepEqual(c.serials, []);
  assert.deepEqual(c.devices.map((d) => d.driver), [
    "virtio-serial-device",
    "virtconsole",
    "virtio-blk-device",
    "virtio-net-device",
  ]);
  assert.deepEqual(c.devices[1].props, { chardev: "virtiocon0" });
});

Deno.test("parseCommandLine parses the cover letter's normal and legacy command lines", () => {
  const normal = vm([
    "-M",
    "microvm",
    "-m",
    "512m",
    "-smp",
    "2",
    "-kernel",
    "vmlinux",
    "-append",
    "console=hvc0 root=/dev/vda",
    "-nodefaults",
    "-no-user-config",
    "-chardev",
    "pty,id=virtiocon0,server",
    "-device",
    "virtio-serial-device",
    "-device",
    "virtconsole,chardev=virtiocon0",
    "-drive",
    "id=test,file=test.img,format=raw,if=none",
    "-device",
    "virtio-blk-device,drive=test",
    "-netdev",
    "tap,id=tap0,script=no,downscript=no",
    "-device",
    "virtio-net-device,netdev=tap0",
  ]);
  assert.deepEqual(normal.accel, [{ name: "tcg", props: {} }]);
  assert.deepEqual(normal.chardevs[0].backend, { kind: "pty" });
  assert.deepEqual(normal.warnings, [
    "-chardev pty,id=virtiocon0,server: warning: short-form boolean option 'server' deprecated\n" +
    "Please use server=on instead",
  ]);
  const legacy = vm([
    "-M",
    "microvm,legacy",
    "-m",
    "512m",
    "-smp",
    "2",
    "-kernel",
    "vmlinux",
    "-append",
    "console=ttyS0 root=/dev/vda",
    "-nodefaults",
    "-no-user-config",
    "-drive",
    "id=test,file=test.img,format=raw,if=none",
    "-device",
    "virtio-blk-device,drive=test",
    "-netdev",
    "tap,id=tap0,script=no,downscript=no",
    "-device",
    "virtio-net-device,netdev=tap0",
    "-serial",
    "stdio",
  ]);
  assert.equal(legacy.machine.legacy, true);
  assert.deepEqual(legacy.serials, [{ chardev: "serial0" }]);
  assert.equal(legacy.smp.cpus, 2);
});

Deno.test("parseCommandLine parses the QEMU 7.2 capture command lines", () => {
  const c = vm([
    "-M",
    "microvm,acpi=off",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-m",
    "512m",
    "-smp",
    "2",
    "-kernel",
    "bzImage",
    "-initrd",
    "initramfs.cpio.gz",
    "-append",
    "earlyprintk=ttyS0 console=ttyS0 rdinit=/init reboot=t",
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-no-reboot",
  ]);
  assert.equal(c.machine.acpi, "off");
  assert.equal(c.cpu.model, "max");
  assert.equal(c.initrd, "initramfs.cpio.gz");
  assert.equal(c.noReboot, true);
  const k = vm([
    "-M",
    "microvm",
    "-enable-kvm",
    "-cpu",
    "host,-arch-capabilities",
    "-m",
    "512m",
    "-drive",
    "id=test,file=rootfs.ext4,format=raw,if=none,snapshot=on",
    "-device",
    "virtio-blk-device,drive=test",
    "-netdev",
    "tap,id=net0,ifname=tap0,script=no,downscript=no",
    "-device",
    "virtio-net-device,netdev=net0",
  ]);
  assert.deepEqual(k.cpu.features, [{ name: "arch-capabilities", on: false }]);
  assert.equal(k.drives[0].snapshot, true);
  assert.deepEqual(k.netdevs[0].props, { ifname: "tap0", script: "no", downscript: "no" });
});

// --- positive details --------------------------------------------------------------------------------

Deno.test("parseCommandLine applies QEMU defaults without options", () => {
  const c = vm([]);
  assert.equal(c.memory.sizeBytes, 128 * 1024 * 1024);
  assert.deepEqual(c.smp, { cpus: 1, maxCpus: 1, sockets: 1, dies: 1, cores: 1, threads: 1 });
  assert.equal(c.cpu.model, "qemu64");
  // Default serial+monitor share stdio (we have no graphical console, so -nographic's defaults apply).
  assert.deepEqual(c.serials, [{ chardev: "serial0" }]);
  assert.equal(c.chardevs[0].mux, true);
  assert.deepEqual(c.monitors, [{ mode: "readline", chardev: "serial0", pretty: false }]);
});

Deno.test("parseCommandLine sends defaults to null with -display none", () => {
  const c = vm("-display none");
  assert.deepEqual(c.chardevs.map((x) => [x.id, x.backend.kind]), [["compat_monitor0", "null"], [
    "serial0",
    "null",
  ]]);
});

Deno.test("parseCommandLine treats --opt like -opt", () => {
  assert.equal(vm("--m 1G").memory.sizeBytes, 1024 ** 3);
});

Deno.test("parseCommandLine -m takes MiB without suffix and QEMU's size suffixes", () => {
  assert.equal(vm("-m 512").memory.sizeBytes, 512 * 1024 * 1024);
  assert.equal(vm("-m 512M").memory.sizeBytes, 512 * 1024 * 1024);
  assert.equal(vm("-m 1.5G").memory.sizeBytes, 1536 * 1024 * 1024);
  assert.equal(vm("-m size=2g").memory.sizeBytes, 2 * 1024 ** 3);
  assert.equal(vm("-m 0").memory.sizeBytes, 128 * 1024 * 1024);
  assert.equal(vm("-m 1000k").memory.sizeBytes, 1024000);
  assert.equal(vm("-m 1001k").memory.sizeBytes, 1032192); // rounded up to 8 KiB
  assert.deepEqual(vm("-m 1G,slots=2,maxmem=2G").memory, {
    sizeBytes: 1024 ** 3,
    slots: 2,
    maxBytes: 2 * 1024 ** 3,
  });
  assert.equal(vm("-M microvm,memory.size=256M").memory.sizeBytes, 256 * 1024 * 1024);
});

Deno.test("parseCommandLine computes the -smp topology like QEMU 7.2", () => {
  assert.deepEqual(vm("-smp 4").smp, { cpus: 4, maxCpus: 4, sockets: 1, dies: 1, cores: 4, threads: 1 });
  assert.deepEqual(vm("-smp 2,maxcpus=8").smp, {
    cpus: 2,
    maxCpus: 8,
    sockets: 1,
    dies: 1,
    cores: 8,
    threads: 1,
  });
  assert.deepEqual(vm("-smp sockets=2,cores=2,threads=2").smp, {
    cpus: 8,
    maxCpus: 8,
    sockets: 2,
    dies: 1,
    cores: 2,
    threads: 2,
  });
  assert.deepEqual(vm("-smp 4,sockets=2").smp, {
    cpus: 4,
    maxCpus: 4,
    sockets: 2,
    dies: 1,
    cores: 2,
    threads: 1,
  });
  assert.equal(vm("-smp 8,dies=1").smp.cpus, 8);
});

Deno.test("parseCommandLine parses accelerator lists and properties", () => {
  assert.deepEqual(vm("-accel kvm,kernel-irqchip=split").accel, [
    { name: "kvm", kernelIrqchip: "split", props: { "kernel-irqchip": "split" } },
  ]);
  assert.deepEqual(vm("-accel kvm -accel tcg,thread=single").accel.map((a) => a.name), ["kvm", "tcg"]);
  assert.deepEqual(vm("-M microvm,accel=kvm:tcg").accel.map((a) => a.name), ["kvm", "tcg"]);
  assert.deepEqual(vm("-accel kvm:tcg").accel.map((a) => a.name), ["kvm", "tcg"]);
  assert.equal(vm("-accel tcg,tb-size=64").accel[0].tbSize, 64);
  assert.deepEqual(vm("-M microvm,kernel-irqchip=off -enable-kvm").accel[0].kernelIrqchip, "off");
  assert.deepEqual(vm("-accel qtest -qtest unix:/tmp/q.sock").qtest, { chardev: "qtest" });
  assert.deepEqual(vm("-nodefaults -qtest stdio").accel, [{ name: "qtest", props: {} }]);
});

Deno.test("parseCommandLine parses -cpu features", () => {
  assert.deepEqual(vm("-cpu max,+x2apic,-pdpe1gb,vmx=off,avx2,tsc-frequency=2000000000").cpu, {
    model: "max",
    features: [
      { name: "x2apic", on: true },
      { name: "pdpe1gb", on: false },
      { name: "vmx", on: false },
      { name: "avx2", on: true },
    ],
    props: { "tsc-frequency": "2000000000" },
  });
});

Deno.test("parseCommandLine desugars -serial and -monitor specs", () => {
  const c = vm([
    "-nodefaults",
    "-serial",
    "mon:stdio",
    "-serial",
    "file:/tmp/s1,,x",
    "-serial",
    "none",
    "-serial",
    "unix:/tmp/s.sock,server=on,wait=off",
    "-serial",
    "tcp:127.0.0.1:4444,server,nowait",
    "-qmp",
    "unix:/tmp/qmp.sock,server=on,wait=off",
    "-monitor",
    "none",
  ]);
  assert.deepEqual(c.serials, [
    { chardev: "serial0" },
    { chardev: "serial1" },
    { chardev: null },
    { chardev: "serial3" },
    { chardev: "serial4" },
  ]);
  const byId = Object.fromEntries(c.chardevs.map((x) => [x.id, x]));
  assert.equal(byId.serial0.mux, true);
  assert.deepEqual(byId.serial1.backend, { kind: "file", path: "/tmp/s1,,x", append: false });
  assert.deepEqual(byId.serial3.backend, {
    kind: "socket",
    path: "/tmp/s.sock",
    server: true,
    wait: false,
    nodelay: false,
    telnet: false,
    reconnect: 0,
  });
  assert.deepEqual(byId.serial4.backend, {
    kind: "socket",
    host: "127.0.0.1",
    port: "4444",
    server: true,
    wait: false,
    nodelay: false,
    telnet: false,
    reconnect: 0,
  });
  assert.deepEqual(c.monitors, [
    { mode: "control", chardev: "compat_monitor0", pretty: false },
    { mode: "readline", chardev: "serial0", pretty: false },
  ]);
});

Deno.test("parseCommandLine -chardev honours ,, escapes and options", () => {
  const c = vm([
    "-nodefaults",
    "-chardev",
    "file,id=f0,path=/tmp/a,,b,append=on",
    "-chardev",
    "socket,id=s0,host=localhost,port=1234,server=on,wait=off,logfile=/tmp/log",
    "-chardev",
    "stdio,id=c0,signal=off,mux=on",
    "-mon",
    "chardev=c0,mode=readline",
    "-serial",
    "chardev:c0",
  ]);
  assert.deepEqual(c.chardevs[0].backend, { kind: "file", path: "/tmp/a,b", append: true });
  assert.equal(c.chardevs[1].logfile, "/tmp/log");
  assert.deepEqual(c.chardevs[2].backend, { kind: "stdio", signal: false });
  assert.equal(c.chardevs[2].mux, true);
  assert.deepEqual(c.monitors, [{ mode: "readline", chardev: "c0", pretty: false }]);
  assert.deepEqual(c.serials, [{ chardev: "c0" }]);
});

Deno.test("parseCommandLine parses drives, globals, -nic and if=virtio sugar", () => {
  const c = vm([
    "-drive",
    "file=a.qcow2,format=qcow2,if=virtio,readonly=on,cache=none,aio=native,discard=unmap",
    "-global",
    "virtio-blk-device.num-queues=2",
    "-global",
    "driver=virtio-net-device,property=mtu,value=1400",
    "-nic",
    "tap,ifname=tap1,script=no,mac=52:54:00:12:34:56",
  ]);
  assert.equal(c.drives[0].id, "virtio0");
  assert.equal(c.drives[0].readOnly, true);
  assert.deepEqual(c.drives[0].cache, { writeback: true, direct: true, noFlush: false });
  assert.equal(c.drives[0].aio, "native");
  assert.equal(c.drives[0].discard, "unmap");
  assert.deepEqual(c.globals, [
    { driver: "virtio-blk-device", property: "num-queues", value: "2" },
    { driver: "virtio-net-device", property: "mtu", value: "1400" },
  ]);
  assert.deepEqual(c.netdevs, [{
    id: "__org.qemu.nic0",
    type: "tap",
    props: { ifname: "tap1", script: "no" },
  }]);
  assert.deepEqual(c.devices, [
    { driver: "virtio-net-device", props: { netdev: "__org.qemu.nic0", mac: "52:54:00:12:34:56" } },
    { driver: "virtio-blk-device", props: { drive: "virtio0" } },
  ]);
});

Deno.test("parseCommandLine: -netdev user keeps repeated hostfwd/dnssearch in order; a bare -nic is user", () => {
  const c = vm([
    "-netdev",
    "user,id=u0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-:53,dnssearch=a.test,dnssearch=b.test,restrict=on",
    "-device",
    "virtio-net-device,netdev=u0",
    "-nic",
    "",
  ]);
  assert.deepEqual(c.netdevs[0], {
    id: "u0",
    type: "user",
    props: { hostfwd: "udp::5353-:53", dnssearch: "b.test", restrict: "on" },
    lists: { hostfwd: ["tcp:127.0.0.1:2222-:22", "udp::5353-:53"], dnssearch: ["a.test", "b.test"] },
    loc: "-netdev user,id=u0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-:53,dnssearch=a.test," +
      "dnssearch=b.test,restrict=on",
  });
  assert.deepEqual(c.netdevs[1], { id: "__org.qemu.nic0", type: "user", props: {}, lists: {}, loc: "-nic " });
  assert.deepEqual(c.devices.map((d) => d.props.netdev), ["u0", "__org.qemu.nic0"]);
});

Deno.test("parseCommandLine parses flags, logging, rtc, name, icount, plugins", () => {
  const c = vm([
    "-S",
    "-no-shutdown",
    "-no-reboot",
    "-d",
    "guest_errors,unimp,trace:virtio_*",
    "-D",
    "/tmp/log",
    "-rtc",
    "base=2006-06-17T16:01:21,clock=vm,driftfix=slew",
    "-name",
    "guest1,debug-threads=on",
    "-icount",
    "shift=3,align=off",
    "-plugin",
    "./p.so,arg=1,verbose=on",
    "-pidfile",
    "/tmp/pid",
    "-bios",
    "bios.bin",
    "-L",
    "/usr/share/qemu",
    "-k",
    "en-us",
    "-vga",
    "none",
    "-boot",
    "order=c",
    "-trace",
    "enable=virtio*",
  ]);
  assert.equal(c.startPaused, true);
  assert.equal(c.noShutdown, true);
  assert.deepEqual(c.log, {
    items: ["guest_errors", "unimp"],
    tracePatterns: ["virtio_*"],
    file: "/tmp/log",
  });
  assert.deepEqual(c.rtc, {
    base: { date: "2006-06-17T16:01:21", epochSeconds: 1150560081 },
    clock: "vm",
    driftfix: "slew",
  });
  assert.equal(c.name, "guest1");
  assert.equal(c.debugThreads, true);
  assert.deepEqual(c.icount, { shift: 3, align: false, sleep: true });
  assert.deepEqual(c.plugins, [{ path: "./p.so", args: ["arg=1", "verbose=on"] }]);
  assert.equal(c.pidfile, "/tmp/pid");
  assert.equal(c.bios, "bios.bin");
  assert.deepEqual(c.dataDirs, ["/usr/share/qemu"]);
  assert.deepEqual(c.boot.props, { order: "c" });
  assert.deepEqual(c.warnings, [
    "-trace enable=virtio*: warning: trace events are not supported; -trace ignored",
  ]);
  assert.equal(vm("-rtc base=localtime").rtc.base, "localtime");
  assert.equal(vm("-snapshot -drive file=a,if=none").drives[0].snapshot, true);
  assert.equal(vm("-snapshot -drive file=a,if=none,snapshot=off").drives[0].snapshot, false);
  assert.equal(vm("-no-acpi").machine.acpi, "off");
});

// --- help and version ----------------------------------------------------------------------------

function text(line: string): string {
  const r = parse(line);
  assert.ok(isCliAction(r), "expected an action");
  return r.text;
}

Deno.test("parseCommandLine answers -version and -h", () => {
  assert.match(
    text("-version"),
    /^microvm\.ts version \d+\.\d+\.\d+ \(QEMU 7\.2 compatible command line\)\n/,
  );
  const h = text("-h");
  assert.match(h, /usage: qemu-system-x86_64 \[options\]/);
  for (
    const o of ["-machine", "-accel", "-smp", "-drive", "-device", "-netdev", "-chardev", "-qmp", "-qtest"]
  ) {
    assert.ok(h.includes(`\n${o} `), `help mentions ${o}`);
  }
  assert.equal(text("--help"), h);
  // Options after -h are not parsed.
  assert.equal(text("-help -bogus"), h);
});

Deno.test("parseCommandLine -M help lists machines like QEMU", () => {
  assert.equal(text("-M help"), "Supported machines are:\nmicrovm              microvm (i386) (default)\n");
  assert.equal(text("-machine ?"), text("-M help"));
});

Deno.test("parseCommandLine -machine microvm,help lists properties in QEMU 7.2's format", () => {
  const t = text("-machine microvm,help");
  const lines = t.split("\n");
  assert.equal(lines[0], "microvm-machine options:");
  assert.ok(lines.includes("  pit=<OnOffAuto>        - Enable i8254 PIT"));
  assert.ok(lines.includes("  x-option-roms=<bool>   - Set off to disable loading option ROMs"));
  assert.ok(
    lines.includes("  isa-serial=<bool>      - Set off to disable the instantiation an ISA serial port"),
  );
  assert.ok(
    lines.includes(
      "  auto-kernel-cmdline=<bool> - Set off to disable adding virtio-mmio devices to the kernel cmdline",
    ),
  );
  const props = lines.slice(1, -1);
  assert.deepEqual(props, [...props].sort());
});

Deno.test("parseCommandLine -device help and -device DRIVER,help use the board registry", () => {
  assert.equal(
    text("-device help"),
    // qdev_print_devinfos puts "\n" before every category but the first of its table (Controller/Bridge/Hub).
    '\nStorage devices:\nname "virtio-blk-device", bus virtio-bus, desc "Virtio block device"\n' +
      '\nNetwork devices:\nname "virtio-net-device", bus virtio-bus\n' +
      '\nInput devices:\nname "virtconsole", bus virtio-serial-bus\nname "virtio-serial-device", bus virtio-bus\n' +
      '\nMisc devices:\nname "virtio-rng-device", bus virtio-bus\n',
  );
  assert.equal(
    text("-device virtio-blk-device,help"),
    "virtio-blk-device options:\n" +
      "  config-wce=<bool>      -  (default: true)\n" +
      "  drive=<str>            - Node name or ID of a block device to use as a backend\n" +
      "  num-queues=<uint16>    -  (default: 1)\n" +
      "  serial=<str>\n",
  );
  assert.equal(text("-device virtio-rng-device,help"), "There are no options for virtio-rng-device.\n");
});

Deno.test("parseCommandLine answers other help queries", () => {
  assert.match(text("-cpu help"), /^Available CPUs:\nx86 base {17}/);
  assert.match(text("-d help"), /^Log items \(comma separated\):\nin_asm /);
  assert.equal(text("-accel help"), "Accelerators supported in QEMU binary:\ntcg\nkvm\n");
  assert.match(text("-chardev help"), /^Available chardev backend types: file null pipe pty socket stdio\n$/);
  assert.match(text("-m 1G,help"), /^memory options:\n {2}maxmem=<size>\n/);
  assert.match(text("-smp help"), /^smp-opts options:\n/);
});

// --- errors --------------------------------------------------------------------------------------

const SIZE_HINT = "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n" +
  "and exabytes, respectively.\n";

/** [argv, exact message without "<prog>: "]. */
const BAD: [string[], string][] = [
  // option lookup (vl.c lookup_opt)
  [["-foo"], "-foo: invalid option"],
  [["--foo"], "--foo: invalid option"],
  [["-"], "-: invalid option"],
  [["-m"], "-m: requires an argument"],
  [["-M", "microvm", "-kernel"], "-kernel: requires an argument"],
  [["--serial"], "--serial: requires an argument"],
  [["disk.img"], "disk.img: machine type does not support if=ide,bus=0,unit=0"],
  [["-usb"], "-usb: Option not supported in this build"],
  [["-daemonize"], "-daemonize: Option not supported in this build"],
  [["-hda", "x.img"], "-hda x.img: Option not supported in this build"],
  [["-object", "rng-random,id=r"], "-object rng-random,id=r: Option not supported in this build"],
  // -m
  [["-m", "12q"], "-m 12q: Parameter 'size' expects a non-negative number below 2^64"],
  [["-m", "-1"], "-m -1: Parameter 'size' expects a non-negative number below 2^64"],
  [["-m", "0.5"], "-m 0.5: Parameter 'size' expects a non-negative number below 2^64"],
  [
    ["-m", "99999999999999999999"],
    "-m 99999999999999999999: Value '99999999999999999999' is out of range for parameter 'size'",
  ],
  [["-m", "20E"], "-m 20E: Value '20E' is out of range for parameter 'size'"],
  [["-m", "1G,foo=1"], "-m 1G,foo=1: Invalid parameter 'foo'"],
  [["-m", "1G,slots=x"], "-m 1G,slots=x: Parameter 'slots' expects a number"],
  [["-m", "1G,id=m0"], "-m 1G,id=m0: Invalid parameter 'id'"],
  [["-m", "1G,slots=2"], "slots specified but no max-size"],
  [
    ["-m", "1G,maxmem=512M"],
    "invalid value of maxmem: maximum memory size (0x20000000) must be at least the initial memory size (0x40000000)",
  ],
  [
    ["-m", "1G,slots=1,maxmem=1G"],
    "invalid value of maxmem: memory slots were specified but maximum memory size (0x40000000) is equal to the initial memory size (0x40000000)",
  ],
  // -smp
  [["-smp", "9"], "Invalid SMP CPUs 9. The max CPUs supported by machine 'microvm' is 8"],
  [["-smp", "2,maxcpus=16"], "Invalid SMP CPUs 16. The max CPUs supported by machine 'microvm' is 8"],
  [["-smp", "foo"], "Parameter 'smp.cpus' expects integer"],
  [["-smp", "2,bogus=1"], "Parameter 'smp.bogus' is unexpected"],
  [["-smp", "2,dies=2"], "dies not supported by this machine's CPU topology"],
  [["-smp", "2,clusters=2"], "clusters not supported by this machine's CPU topology"],
  [
    ["-smp", "4,maxcpus=2"],
    "Invalid CPU topology: maxcpus must be equal to or greater than smp: sockets (1) * cores (2) * threads (1) == maxcpus (2) < smp_cpus (4)",
  ],
  [["-m", "help"], "-m help: Parameter 'size' expects a non-negative number below 2^64"],
  [
    ["-smp", "6,sockets=4"],
    "Invalid CPU topology: product of the hierarchy must match maxcpus: sockets (4) * cores (1) * threads (1) != maxcpus (6)",
  ],
  [
    ["-smp", "4,sockets=2,cores=1,threads=1,maxcpus=2"],
    "Invalid CPU topology: maxcpus must be equal to or greater than smp: sockets (2) * cores (1) * threads (1) == maxcpus (2) < smp_cpus (4)",
  ],
  [["-smp", "2,cpus"], "-smp 2,cpus: Expected '=' after parameter 'cpus'"],
  // -machine
  [["-M", "pc"], "unsupported machine type"],
  [["-M", "microvm,foo=1"], "Property 'microvm-machine.foo' not found"],
  [["-M", "microvm,pit=maybe"], "Parameter 'pit' does not accept value 'maybe'"],
  [["-M", "microvm,rtc=1"], "Parameter 'rtc' does not accept value '1'"],
  [["-M", "microvm,x-option-roms=maybe"], "Parameter 'x-option-roms' expects 'on' or 'off'"],
  [["-M", "microvm,isa-serial=2"], "Parameter 'isa-serial' expects 'on' or 'off'"],
  [["-M", "microvm,pit"], "-M microvm,pit: Expected '=' after parameter 'pit'"],
  [["-M", "microvm,=on"], "-M microvm,=on: Invalid parameter ''"],
  [["-M", "microvm,a b=1"], "-M microvm,a b=1: Invalid parameter 'a b'"],
  [["-M", "microvm,smp=2"], "Invalid parameter type for 'smp', expected: object"],
  [["-M", "microvm,usb=on"], "Property 'microvm-machine.usb' not found"],
  [["-M", "microvm,boot.bogus=1"], "Parameter 'boot.bogus' is unexpected"],
  // -accel
  [["-accel", "hvf"], "invalid accelerator hvf"],
  [["-M", "microvm,accel=xen"], "invalid accelerator xen"],
  [["-accel", "kvm", "-M", "microvm,accel=tcg"], 'The -accel and "-machine accel=" options are incompatible'],
  [["-accel", "kvm,foo=1"], "-accel kvm,foo=1: Property 'kvm-accel.foo' not found"],
  [
    ["-accel", "kvm,kernel-irqchip=maybe"],
    "-accel kvm,kernel-irqchip=maybe: Parameter 'kernel-irqchip' does not accept value 'maybe'",
  ],
  [["-accel", "tcg,thread=many"], "-accel tcg,thread=many: Invalid 'thread' setting many"],
  [["-accel", "tcg,tb-size=big"], "-accel tcg,tb-size=big: Parameter 'tb-size' expects uint64"],
  [
    ["-accel", "tcg,kernel-irqchip=on"],
    "-accel tcg,kernel-irqchip=on: Property 'tcg-accel.kernel-irqchip' not found",
  ],
  // -cpu
  [["-cpu", "pentium9"], "unable to find CPU model 'pentium9'"],
  [
    ["-cpu", "max,+bogus"],
    "can't apply global max-x86_64-cpu.bogus=on: Property 'max-x86_64-cpu.bogus' not found",
  ],
  // kernel options
  [["-append", "console=ttyS0"], "-append only allowed with -kernel option"],
  [["-initrd", "initrd.img"], "-initrd only allowed with -kernel option"],
  // -chardev
  [["-chardev", "stdio"], "-chardev stdio: chardev: no id specified"],
  [["-chardev", "id=c0"], '-chardev id=c0: chardev: "c0" missing backend'],
  [["-chardev", "vc,id=c0"], "-chardev vc,id=c0: 'vc' is not a valid char driver name"],
  [["-chardev", "bogus,id=c0"], "-chardev bogus,id=c0: 'bogus' is not a valid char driver name"],
  [["-chardev", "stdio,id=c0,foo=1"], "-chardev stdio,id=c0,foo=1: Invalid parameter 'foo'"],
  [
    ["-chardev", "stdio,id=c0,signal=maybe"],
    "-chardev stdio,id=c0,signal=maybe: Parameter 'signal' expects 'on' or 'off'",
  ],
  [["-chardev", "stdio,id=0bad"], "-chardev stdio,id=0bad: Parameter 'id' expects an identifier"],
  [
    ["-chardev", "stdio,id=c0", "-chardev", "null,id=c0"],
    "-chardev null,id=c0: Duplicate ID 'c0' for chardev",
  ],
  [["-chardev", "file,id=f"], "-chardev file,id=f: chardev: file: no filename given"],
  [["-chardev", "pipe,id=p"], "-chardev pipe,id=p: chardev: pipe: no filename given"],
  [
    ["-chardev", "socket,id=s,host=localhost"],
    "-chardev socket,id=s,host=localhost: chardev: socket: no port given",
  ],
  [
    ["-chardev", "socket,id=s,path=/a,host=b,port=1"],
    "-chardev socket,id=s,path=/a,host=b,port=1: None or one of 'path', 'fd' or 'host' option required.",
  ],
  [
    ["-chardev", "socket,id=s,path=/a,delay=on,nodelay=on"],
    "-chardev socket,id=s,path=/a,delay=on,nodelay=on: 'delay' and 'nodelay' are mutually exclusive",
  ],
  [
    ["-chardev", "socket,id=s,path=/a,reconnect=x"],
    "-chardev socket,id=s,path=/a,reconnect=x: Parameter 'reconnect' expects a number",
  ],
  // -serial / -monitor / -qmp
  [["-serial", "vc"], "-serial vc: 'vc' is not a valid char driver"],
  [["-serial", "bogus"], "-serial bogus: 'bogus' is not a valid char driver"],
  [["-serial", "tcp:nohostport"], "-serial tcp:nohostport: 'tcp:nohostport' is not a valid char driver"],
  [["-serial", "unix:/tmp/s,bogus=1"], "-serial unix:/tmp/s,bogus=1: Invalid parameter 'bogus'"],
  [["-monitor", "bogus"], "-monitor bogus: 'bogus' is not a valid char driver"],
  [
    ["-qmp", "unix:/tmp/q,server=maybe"],
    "-qmp unix:/tmp/q,server=maybe: Parameter 'server' expects 'on' or 'off'",
  ],
  [["-mon", "mode=readline"], "-mon mode=readline: Parameter 'chardev' is missing"],
  [
    ["-mon", "chardev=c0,mode=raw", "-chardev", "null,id=c0"],
    "-mon chardev=c0,mode=raw: Parameter 'mode' does not accept value 'raw'",
  ],
  [["-nodefaults", "-monitor", "chardev:nope"], 'chardev "nope" not found'],
  [["-nographic", "-serial", "stdio"], "-serial stdio: cannot use stdio by multiple character devices"],
  [
    ["-chardev", "stdio,id=c0", "-monitor", "stdio"],
    "-monitor stdio: cannot use stdio by multiple character devices",
  ],
  [["-chardev", "null,id=serial0", "-serial", "null"], "-serial null: Duplicate ID 'serial0' for chardev"],
  [
    ["-chardev", "socket,id=s,path=/a,server=on,reconnect=1"],
    "-chardev socket,id=s,path=/a,server=on,reconnect=1: 'reconnect' option is incompatible with socket in server listen mode",
  ],
  [
    ["-chardev", "socket,id=s,path=/a,wait=off"],
    "-chardev socket,id=s,path=/a,wait=off: 'wait' option is incompatible with socket in client connect mode",
  ],
  // -device
  [["-device", "e1000"], "-device e1000: 'e1000' is not a valid device model name"],
  [
    ["-device", "virtio-blk-device,foo=1"],
    "-device virtio-blk-device,foo=1: Property 'virtio-blk-device.foo' not found",
  ],
  [
    ["-device", "virtio-blk-device,drive=nope"],
    "-device virtio-blk-device,drive=nope: Property 'virtio-blk-device.drive' can't find value 'nope'",
  ],
  [
    ["-device", "virtio-net-device,netdev=nope"],
    "-device virtio-net-device,netdev=nope: Property 'virtio-net-device.netdev' can't find value 'nope'",
  ],
  [
    ["-device", "virtconsole,chardev=nope"],
    "-device virtconsole,chardev=nope: Property 'virtconsole.chardev' can't find value 'nope'",
  ],
  [
    ["-device", "virtio-blk-device,config-wce=2"],
    "-device virtio-blk-device,config-wce=2: Parameter 'config-wce' expects 'on' or 'off'",
  ],
  [
    ["-device", "virtio-blk-device,num-queues=x"],
    "-device virtio-blk-device,num-queues=x: Parameter 'num-queues' expects integer",
  ],
  [
    ["-device", "virtio-blk-device,num-queues=65536"],
    "-device virtio-blk-device,num-queues=65536: Parameter 'num-queues' expects uint16_t",
  ],
  [
    ["-device", "virtio-net-device,mac=zz"],
    "-device virtio-net-device,mac=zz: Property 'virtio-net-device.mac' doesn't take value 'zz'",
  ],
  [["-device", "id=d0"], "-device id=d0: Parameter 'driver' is missing"],
  [
    ["-device", "virtio-rng-device,id=r", "-device", "virtio-rng-device,id=r"],
    "-device virtio-rng-device,id=r: Duplicate ID 'r' for device",
  ],
  [["-device", "bogus,help"], "-device bogus,help: Device 'bogus' not found"],
  [
    [
      "-drive",
      "id=d,file=a.img,if=none",
      "-device",
      "virtio-blk-device,drive=d",
      "-device",
      "virtio-blk-device,drive=d",
    ],
    "-device virtio-blk-device,drive=d: Drive 'd' is already in use by another device",
  ],
  [
    ["-drive", "id=d,if=none", "-device", "virtio-blk-device,drive=d"],
    "-device virtio-blk-device,drive=d: Device needs media, but drive is empty",
  ],
  // -drive
  [["-drive", "file=a.img"], "-drive file=a.img: machine type does not support if=ide,bus=0,unit=0"],
  [["-drive", "file=a.img,if=bogus"], "-drive file=a.img,if=bogus: unsupported bus type 'bogus'"],
  [
    ["-drive", "file=a.img,if=none,format=vmdk"],
    "-drive file=a.img,if=none,format=vmdk: Unknown driver 'vmdk'",
  ],
  [["-drive", "file=a.img,if=none,cache=fast"], "-drive file=a.img,if=none,cache=fast: invalid cache option"],
  [["-drive", "file=a.img,if=none,aio=posix"], "-drive file=a.img,if=none,aio=posix: invalid aio option"],
  [
    ["-drive", "file=a.img,if=none,discard=maybe"],
    "-drive file=a.img,if=none,discard=maybe: Invalid discard option",
  ],
  [
    ["-drive", "file=a.img,if=none,readonly=2"],
    "-drive file=a.img,if=none,readonly=2: Parameter 'read-only' expects 'on' or 'off'",
  ],
  [
    ["-drive", "file=a.img,if=none,snapshot=x"],
    "-drive file=a.img,if=none,snapshot=x: Parameter 'snapshot' expects 'on' or 'off'",
  ],
  [
    ["-drive", "file=a.img,if=none,format=raw,bogus=1"],
    "-drive file=a.img,if=none,format=raw,bogus=1: Block format 'raw' does not support the option 'bogus'",
  ],
  [
    ["-drive", "id=d,file=a,if=none", "-drive", "id=d,file=b,if=none"],
    "-drive id=d,file=b,if=none: Duplicate ID 'd' for drive",
  ],
  [
    ["-drive", "file=a.img,if=none,aio=native"],
    "-drive file=a.img,if=none,aio=native: aio=native was specified, but it requires cache.direct=on, which was not specified.",
  ],
  // -netdev / -nic
  [["-netdev", "tap"], "-netdev tap: Parameter 'id' is missing"],
  [["-netdev", "id=n0"], "-netdev id=n0: Parameter 'type' is missing"],
  [["-netdev", "bogus,id=n0"], "-netdev bogus,id=n0: Parameter 'type' does not accept value 'bogus'"],
  [
    ["-netdev", "bridge,id=n0"],
    "-netdev bridge,id=n0: network backend 'bridge' is not compiled into this binary",
  ],
  [["-netdev", "tap,id=n0,foo=1"], "-netdev tap,id=n0,foo=1: Invalid parameter 'foo'"],
  [
    ["-netdev", "tap,id=n0,vhost=maybe"],
    "-netdev tap,id=n0,vhost=maybe: Parameter 'vhost' expects 'on' or 'off'",
  ],
  [["-netdev", "tap,id=n0", "-netdev", "user,id=n0"], "-netdev user,id=n0: Duplicate ID 'n0' for netdev"],
  [
    ["-netdev", "socket,id=s0"],
    "-netdev socket,id=s0: exactly one of listen=, connect=, mcast= or udp= is required",
  ],
  [["-nic", "tap,foo=1"], "-nic tap,foo=1: Invalid parameter 'foo'"],
  [["-netdev", "user,id=n0,net=foo"], "-netdev user,id=n0,net=foo: Failed to parse netmask"],
  [
    ["-nic", "user,hostfwd=tcp::99999-:22"],
    "-nic user,hostfwd=tcp::99999-:22: Invalid host forwarding rule 'tcp::99999-:22' (Bad host port)",
  ],
  [["-nic", "user,bogus=1"], "-nic user,bogus=1: Invalid parameter 'bogus'"],
  // -global
  [["-global", "foo"], "-global foo: Invalid parameter 'foo'"],
  [["-global", "driver=x"], "-global driver=x: options 'driver', 'property', and 'value' are required"],
  // -rtc / -name / -icount / -d / misc
  [["-rtc", "utc"], "-rtc utc: Invalid parameter 'utc'"],
  [["-rtc", "base=yesterday"], "invalid datetime format"],
  [["-rtc", "clock=wall"], "invalid option value 'wall'"],
  [["-rtc", "driftfix=fast"], "invalid option value 'fast'"],
  [
    ["-name", "g,debug-threads=2"],
    "-name g,debug-threads=2: Parameter 'debug-threads' expects 'on' or 'off'",
  ],
  [["-name", "g,foo=1"], "-name g,foo=1: Invalid parameter 'foo'"],
  [["-icount", "shift=99"], "-icount shift=99: icount: Invalid shift value"],
  [["-icount", "align=on"], "-icount align=on: Please specify shift option when using align"],
  [
    ["-icount", "shift=auto,align=on"],
    "-icount shift=auto,align=on: shift=auto and align=on are incompatible",
  ],
  [["-icount", "shift=1,foo=2"], "-icount shift=1,foo=2: Invalid parameter 'foo'"],
  [["-enable-kvm", "-icount", "shift=1"], "-icount is not allowed with hardware virtualization"],
  [["-d", "bogus"], "-d bogus: Invalid log item 'bogus'"],
  [["-plugin", "arg=1"], "-plugin arg=1: Parameter 'file' is missing"],
  [["-vga", "std"], "-vga std: std not available"],
  [["-display", "gtk"], "-display gtk: Display 'gtk' is not available."],
  [["-trace", "foo=1"], "-trace foo=1: Invalid parameter 'foo'"],
  [
    ["-device", '{"driver":"virtio-rng-device"}'],
    '-device {"driver":"virtio-rng-device"}: JSON -device syntax is not supported',
  ],
];

Deno.test(`parseCommandLine rejects ${BAD.length} bad command lines with QEMU's messages`, () => {
  assert.ok(BAD.length >= 60);
  for (const [argv, message] of BAD) {
    assert.equal(errorOf(argv), message, `argv: ${JSON.stringify(argv)}`);
  }
});

Deno.test("formatCliError prints QEMU's line and hint", () => {
  let err: unknown;
  try {
    parseCommandLine(["-m", "12q"], PROG);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof CliError);
  assert.equal(
    formatCliError(PROG, err),
    `${PROG}: -m 12q: Parameter 'size' expects a non-negative number below 2^64\n${SIZE_HINT}`,
  );
  try {
    parseCommandLine(["-M", "pc"], PROG);
  } catch (e) {
    err = e;
  }
  assert.equal(
    formatCliError(PROG, err as Error),
    `${PROG}: unsupported machine type\nUse -machine help to list supported machines\n`,
  );
});

// --- options.ts ----------------------------------------------------------------------------------

Deno.test("parseQemuOpts handles implied keys, ,, escapes and short-form booleans", () => {
  assert.deepEqual(parseQemuOpts("tap,id=a,,b,script=no,vhost,nowait", "type"), {
    pairs: [
      { key: "type", value: "tap", flag: false },
      { key: "id", value: "a,b", flag: false },
      { key: "script", value: "no", flag: false },
      { key: "vhost", value: "on", flag: true },
      { key: "wait", value: "off", flag: true },
    ],
    help: false,
  });
  assert.deepEqual(parseQemuOpts("file=a,,b,,", undefined).pairs, [{
    key: "file",
    value: "a,b,",
    flag: false,
  }]);
  assert.equal(parseQemuOpts("virtio-blk-device,help", "driver").help, true);
});

Deno.test("parseKeyval follows keyval.c", () => {
  assert.deepEqual(parseKeyval("microvm,pit=off,append=a,,b", "type"), {
    pairs: [["type", "microvm"], ["pit", "off"], ["append", "a,b"]],
    help: false,
  });
  assert.deepEqual(parseKeyval("microvm,legacy", "type", ["legacy"]).pairs, [["type", "microvm"], [
    "legacy",
    "on",
  ]]);
  assert.equal(parseKeyval("help", "type").help, true);
});

Deno.test("parseSize follows do_strtosz", () => {
  const ok = (s: string, d: "B" | "M" = "B") => {
    const r = parseSize(s, d);
    return r.ok ? r.value : r.reason;
  };
  assert.equal(ok("512"), 512n);
  assert.equal(ok("512", "M"), 512n << 20n);
  assert.equal(ok("1k"), 1024n);
  assert.equal(ok("1K"), 1024n);
  assert.equal(ok("2T"), 2n << 40n);
  assert.equal(ok("0x10"), 16n);
  assert.equal(ok("1.5k"), 1536n);
  assert.equal(ok("1.k"), 1024n);
  assert.equal(ok("0.5"), "invalid");
  assert.equal(ok("1e3"), "invalid");
  assert.equal(ok("-1"), "invalid");
  assert.equal(ok("16E"), "range");
  assert.equal(ok("12q"), "invalid");
});
