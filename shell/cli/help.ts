/**
 * Help and version texts of the command line, in QEMU 7.2's formats, and the tables they list
 * (machine properties, CPU models, log items).
 * @module
 */
import { type DeviceRegistry, MACHINE_TYPE, type MachinePropDef, MAX_CPUS } from "../../core/config.ts";
import { CliError, formatPropHelp } from "../options.ts";
import { MACHINE_QOM_TYPE } from "./common.ts";
import type { PropDef } from "../../core/types.ts";

/** Microvm machine properties we accept (QEMU 7.2 microvm + x86-machine + machine, minus what we lack). */
export const MICROVM_MACHINE_PROPS: readonly MachinePropDef[] = [
  { name: "acpi", type: "OnOffAuto", help: "Enable ACPI" },
  { name: "append", type: "string", help: "Linux kernel command line" },
  {
    name: "auto-kernel-cmdline",
    type: "bool",
    help: "Set off to disable adding virtio-mmio devices to the kernel cmdline",
  },
  { name: "boot", type: "BootConfiguration", help: "Boot configuration" },
  { name: "dump-guest-core", type: "bool", help: "Include guest memory in a core dump" },
  { name: "firmware", type: "string", help: "Firmware image" },
  { name: "graphics", type: "bool", help: "Set on/off to enable/disable graphics emulation" },
  { name: "initrd", type: "string", help: "Linux initial ramdisk file" },
  { name: "ioapic2", type: "OnOffAuto", help: "Enable second IO-APIC" },
  { name: "isa-serial", type: "bool", help: "Set off to disable the instantiation an ISA serial port" },
  { name: "kernel", type: "string", help: "Linux kernel image file" },
  { name: "mem-merge", type: "bool", help: "Enable/disable memory merge support" },
  { name: "memory", type: "MemorySizeConfiguration", help: "Memory size configuration" },
  { name: "pcie", type: "OnOffAuto", help: "Enable PCIe" },
  { name: "pic", type: "OnOffAuto", help: "Enable i8259 PIC" },
  { name: "pit", type: "OnOffAuto", help: "Enable i8254 PIT" },
  { name: "rtc", type: "OnOffAuto", help: "Enable MC146818 RTC" },
  { name: "smm", type: "OnOffAuto", help: "Enable SMM" },
  { name: "smp", type: "SMPConfiguration", help: "CPU topology" },
  { name: "x-option-roms", type: "bool", help: "Set off to disable loading option ROMs" },
];

/** Version of this program. */
export const VERSION = "0.1.0";

/** Map a PropDef type to the type name QEMU prints in `-device X,help`. */
export function qdevTypeName(t: PropDef["type"]): string {
  switch (t) {
    case "chr":
    case "drive":
    case "netdev":
    case "macaddr":
      return "str";
    default:
      return t;
  }
}

/** CPU models we accept for -cpu (x86_64). */
export const CPU_MODELS: readonly { name: string; desc: string }[] = [
  { name: "base", desc: "base CPU model type with no features enabled" },
  { name: "host", desc: "KVM processor with all supported host features" },
  { name: "kvm64", desc: "Common KVM processor" },
  { name: "max", desc: "Enables all features supported by the accelerator in the current host" },
  { name: "qemu64", desc: "QEMU Virtual CPU version 2.5+" },
];

/** -d items we accept (QEMU 7.2 util/log.c names). */
export const LOG_ITEMS: readonly [string, string][] = [
  ["in_asm", "show target assembly code for each compiled TB"],
  ["int", "show interrupts/exceptions in short format"],
  ["exec", "show trace before each executed TB (lots of logs)"],
  ["cpu", "show CPU registers before entering a TB (lots of logs)"],
  ["fpu", "include FPU registers in the 'cpu' logging"],
  ["mmu", "log MMU-related activities"],
  ["pcall", "x86 only: show protected mode far calls/returns/exceptions"],
  ["cpu_reset", "show CPU state before CPU resets"],
  ["unimp", "log unimplemented functionality"],
  ["guest_errors", "log when the guest OS does something invalid (eg accessing a\nnon-existent register)"],
  ["nochain", 'do not chain compiled TBs so that "exec" and "cpu" show\ncomplete traces'],
  ["plugin", "output from TCG plugins\n"],
];

/** Text of `-d help` (qemu_print_log_usage). */
export function logUsage(): string {
  let s = "Log items (comma separated):\n";
  for (const [name, help] of LOG_ITEMS) s += `${name.padEnd(15)} ${help}\n`;
  s += "trace:PATTERN   enable trace events\n";
  return s;
}

/** `-M help` / `-machine microvm,help` text (machine_help_func, type_print_class_properties). */
export function machineHelp(type: string | undefined): string {
  if (type === MACHINE_TYPE) {
    const lines = MICROVM_MACHINE_PROPS.map((d) => formatPropHelp(d.name, d.type, d.help)).sort();
    return `${MACHINE_QOM_TYPE} options:\n` + lines.map((l) => l + "\n").join("");
  }
  return "Supported machines are:\n" + `${"microvm".padEnd(20)} microvm (i386) (default)\n`;
}

/** `-cpu help` text (x86_cpu_list format, models only). */
export function cpuHelp(): string {
  return "Available CPUs:\n" + CPU_MODELS.map((c) => `x86 ${c.name.padEnd(20)}  ${c.desc}\n`).join("");
}

export const DEVICE_CATEGORIES = (
  "Controller/Bridge/Hub USB Storage Network Input Display Sound Misc CPU Watchdog " +
  "Uncategorized"
).split(" ");

/** `-device help` text (qdev_print_devinfos) from the board's registry. */
export function deviceListHelp(registry: DeviceRegistry): string {
  const sorted = [...registry].sort((a, b) => (a.driver < b.driver ? -1 : a.driver > b.driver ? 1 : 0));
  let out = "";
  DEVICE_CATEGORIES.forEach((cat, i) => {
    const inCat = sorted.filter((d) => (d.category ?? "Misc") === cat);
    if (inCat.length === 0) return;
    out += `${i ? "\n" : ""}${cat} devices:\n`;
    for (const d of inCat) {
      let line = `name "${d.driver}"`;
      if (d.bus) line += `, bus ${d.bus}`;
      if (d.desc) line += `, desc "${d.desc}"`;
      out += line + "\n";
    }
  });
  return out;
}

/** `-device DRIVER,help` text (qdev_device_help). */
export function deviceHelp(driver: string, registry: DeviceRegistry | undefined): string {
  const info = registry?.find((d) => d.driver === driver);
  if (!info) throw new CliError(`Device '${driver}' not found`);
  if (info.props.length === 0) return `There are no options for ${driver}.\n`;
  const lines = info.props.map((d) => formatPropHelp(d.name, qdevTypeName(d.type), d.help, d.default)).sort();
  return `${driver} options:\n` + lines.map((l) => l + "\n").join("");
}

/** `-version` text. */
export function versionText(): string {
  return `microvm.ts version ${VERSION} (QEMU 7.2 compatible command line)\n` +
    "Copyright (c) 2026 the microvm.ts authors\n";
}

/** `-h` text: only the options this program accepts. */
export function helpText(prog: string): string {
  return `${versionText().split("\n")[0]}
usage: ${prog} [options]

Standard options:
-h or -help      display this help and exit
-version         display version information and exit
-machine [type=]microvm[,prop[=value][,...]]
                 select the machine (only microvm; -machine microvm,help lists properties)
                 x-option-roms=on|off, pit=on|off|auto, pic=on|off|auto, rtc=on|off|auto,
                 isa-serial=on|off, auto-kernel-cmdline=on|off, acpi=on|off|auto,
                 accel=kvm|tcg|qtest[:...], kernel-irqchip=on|off|split
-M               same as -machine
-accel [accel=]kvm|tcg|qtest[,kernel-irqchip=on|off|split][,thread=single|multi][,tb-size=n][,jit=on|off]
                 select accelerator; repeat (or use kvm:tcg) for a fallback list;
                 tcg,jit=off interprets every instruction (the reference CPU; default jit=on)
-enable-kvm      same as -accel kvm
-cpu model[,+feat|-feat|feat=on|off]
                 select CPU (host, max, qemu64, kvm64, base; -cpu help lists them)
-smp [cpus=]n[,maxcpus=n][,sockets=n][,dies=1][,cores=n][,threads=n]
                 set the number of CPUs to 'n' (at most ${MAX_CPUS})
-m [size=]megs[,slots=n,maxmem=size]
                 RAM size in MiB, or with a suffix k, M, G, T (default 128M)
-name string1[,debug-threads=on|off]
                 set the name of the guest
-rtc [base=utc|localtime|date][,clock=host|rt|vm][,driftfix=none|slew]
                 set the RTC base and clock
-no-acpi         same as -machine acpi=off
-boot [order=drives][,menu=on|off][,strict=on|off]
                 accepted for compatibility (the kernel is booted directly)
-k language      accepted for compatibility (no keyboard device)

Block device options:
-drive [file=file][,if=none|virtio][,id=name][,format=raw|qcow2][,readonly=on|off]
       [,snapshot=on|off][,cache=writeback|none|writethrough|directsync|unsafe]
       [,aio=threads|native|io_uring][,discard=ignore|unmap][,detect-zeroes=on|off|unmap]
                 use 'file' as a drive image (attach if=none drives with -device virtio-blk-device)
-snapshot        write to temporary files instead of disk image files (snapshot=on for every drive)

Device options:
-device driver[,prop[=value][,...]]
                 add a device (-device help lists drivers, -device driver,help their properties)
-global driver.property=value
                 set a default value of a driver's property

Network options:
-netdev user,id=str[,ipv4=on|off][,net=addr[/mask]][,host=addr][,ipv6=on|off]
         [,ipv6-net=addr[/int]][,ipv6-host=addr][,restrict=on|off][,hostname=host]
         [,dhcpstart=addr][,dns=addr][,ipv6-dns=addr][,dnssearch=domain][,domainname=domain]
         [,tftp=dir][,tftp-server-name=name][,bootfile=f]
         [,hostfwd=rule][,guestfwd=rule]
                 user-mode network (libslirp): no root needed
-netdev tap,id=str[,ifname=name][,script=no][,downscript=no][,vnet_hdr=on|off]
-netdev socket,id=str[,listen=[host]:port][,connect=host:port]
                 configure a network backend (connect with -device virtio-net-device,netdev=str)
-nic [user|tap|socket][,model=virtio-net-device][,mac=addr][,netdev options]|none
                 shortcut for -netdev plus -device (no type: user)

Character device options:
-chardev stdio|null|pty|file|pipe|socket,id=id[,path=path][,host=host,port=port]
         [,server=on|off][,wait=on|off][,mux=on|off][,signal=on|off][,logfile=file]

Display options:
-display none    no display
-nographic       no display; serial port and monitor on stdio
-vga none        accepted (there is no display adapter)

Linux/Multiboot boot specific:
-kernel bzImage  use 'bzImage' (or an ELF vmlinux) as kernel image
-append cmdline  use 'cmdline' as kernel command line
-initrd file     use 'file' as initial ram disk

Debug/Expert options:
-serial dev      redirect the serial port to char device 'dev' (stdio, null, none, pty,
                 file:path, pipe:path, tcp:host:port[,...], telnet:host:port[,...],
                 unix:path[,server=on,wait=off], mon:dev, chardev:id)
-monitor dev     redirect the monitor (HMP) to char device 'dev' (or none)
-qmp dev         like -monitor but opens in 'control' mode (QMP)
-qmp-pretty dev  like -qmp but uses pretty JSON formatting
-mon [chardev=]name[,mode=readline|control][,pretty=on|off]
-qtest dev       qtest protocol on char device 'dev' (unix:path, stdio, ...)
-qtest-log file  log the qtest protocol to 'file'
-S               freeze CPU at startup (use 'c' to start execution)
-gdb dev         accept gdb connection on 'dev'. (QEMU defaults to starting
                 the guest without waiting for gdb to connect; use -S too
                 if you want it to not start execution.)
-s               shorthand for -gdb tcp::1234
-no-reboot       exit instead of rebooting
-no-shutdown     stop before shutdown
-nodefaults      don't create default devices
-no-user-config  do not load default user-provided config files (accepted)
-d item1,...     enable logging of specified items (use '-d help' for a list)
-D logfile       output log to logfile (default stderr)
-icount [shift=N|auto][,align=on|off][,sleep=on|off]
                 enable instruction counting with 2^N ns per instruction
-plugin [file=]file[,argname=argvalue]
                 load a plugin
-pidfile file    write PID to 'file'
-trace ...       accepted; trace events are not supported
-bios file       accepted and ignored (no firmware is loaded)
-L path          accepted and ignored
`;
}
