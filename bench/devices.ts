/**
 * Device dispatch throughput in-process: port I/O and MMIO accesses per second through the board's
 * address spaces (flat-view lookup, region ops, device handler), on a board built from seed line 1 with
 * no CPU (tests/lib/machine.ts buildBoard), plus the cost of one installed no-op access hook.
 * Usage: deno run -A bench/devices.ts [runs=3]
 * @module
 */
import { buildBoard, SEED_LINE_1, withTcg } from "../tests/lib/machine.ts";
import type { AddressSpace } from "../core/region.ts";
import { fmt, fmtSummary, renderSection, type Section, summarize } from "./lib/stats.ts";

/** COM1 registers (16550A datasheet): scratch (SCR) at base+7, line status (LSR) at base+5. */
const COM1 = 0x3f8;
const UART_SCR = 7;
const UART_LSR = 5;
/** MC146818 index/data ports and the seconds register. */
const RTC_INDEX = 0x70;
const RTC_DATA = 0x71;
const RTC_SECONDS = 0x00;
/** A port no device claims on microvm. */
const UNASSIGNED_PORT = 0x100;
/** virtio-mmio slot 7 (the first -device, virtio-blk in seed line 1) and its registers (virtio 1.2 §4.2.2). */
const VIRTIO_SLOT7 = 0xfeb00e00;
const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
const VIRTIO_MMIO_CONFIG = 0x100;
/** IOAPIC index/window registers (82093AA datasheet §3.1), redirection entry 0 low word. */
const IOAPIC_BASE = 0xfec00000;
const IOAPIC_IOREGSEL = 0x00;
const IOAPIC_IOWIN = 0x10;
const IOAPIC_REDTBL0 = 0x10;

/** One measured access pattern: `body` performs `accesses` accesses and returns a value folded into a sink. */
export interface DeviceCase {
  name: string;
  accesses: number;
  body: (io: AddressSpace, mem: AddressSpace) => number;
  /** Install a no-op hook on the I/O space first. */
  hooked?: boolean;
}

/** The cases measured. */
export const DEVICE_CASES: readonly DeviceCase[] = [
  {
    name: "PIO uart scratch write + read (0x3ff)",
    accesses: 2,
    body: (io) => {
      io.write(COM1 + UART_SCR, 1, 0x5a);
      return io.read(COM1 + UART_SCR, 1);
    },
  },
  { name: "PIO uart LSR read (0x3fd)", accesses: 1, body: (io) => io.read(COM1 + UART_LSR, 1) },
  {
    name: "PIO rtc index write + seconds read (0x70/0x71)",
    accesses: 2,
    body: (io) => {
      io.write(RTC_INDEX, 1, RTC_SECONDS);
      return io.read(RTC_DATA, 1);
    },
  },
  { name: "PIO unassigned read (0x100)", accesses: 1, body: (io) => io.read(UNASSIGNED_PORT, 1) },
  {
    name: "MMIO virtio-mmio MagicValue read",
    accesses: 1,
    body: (_io, mem) => mem.read(VIRTIO_SLOT7 + VIRTIO_MMIO_MAGIC_VALUE, 4),
  },
  {
    name: "MMIO virtio-blk config read (capacity)",
    accesses: 1,
    body: (_io, mem) => mem.read(VIRTIO_SLOT7 + VIRTIO_MMIO_CONFIG, 4),
  },
  {
    name: "MMIO ioapic IOREGSEL write + IOWIN read",
    accesses: 2,
    body: (_io, mem) => {
      mem.write(IOAPIC_BASE + IOAPIC_IOREGSEL, 4, IOAPIC_REDTBL0);
      return mem.read(IOAPIC_BASE + IOAPIC_IOWIN, 4);
    },
  },
  {
    name: "PIO uart scratch write + read, 1 no-op hook",
    accesses: 2,
    hooked: true,
    body: (io) => {
      io.write(COM1 + UART_SCR, 1, 0x5a);
      return io.read(COM1 + UART_SCR, 1);
    },
  },
];

/** Accesses per second of `c` over about `targetS` seconds, on a fresh board. */
export function measureCase(c: DeviceCase, targetS: number): number {
  const { machine } = buildBoard(withTcg(SEED_LINE_1));
  const io = machine.io;
  const mem = machine.memory;
  const unhook = c.hooked ? io.addHook({ onAccess() {} }) : null;
  let sink = 0;
  // Warm up (JIT), then grow the batch until it takes long enough to time.
  for (let i = 0; i < 20_000; i++) sink ^= c.body(io, mem);
  let n = 10_000;
  let dt = 0;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink ^= c.body(io, mem);
    dt = (performance.now() - t0) / 1000;
    if (dt >= targetS || n >= 1 << 28) break;
    n = Math.min(1 << 28, Math.ceil(n * Math.max(2, (targetS * 1.1) / Math.max(dt, 1e-4))));
  }
  unhook?.();
  if (sink === 0x7fffffff + 1) console.error("unreachable");
  return (n * c.accesses) / dt;
}

/** Run the device benchmark and return its table. */
export function runDeviceBench(
  opts: { runs: number; targetS?: number; progress?: (msg: string) => void },
): Section {
  const rows: string[][] = [];
  for (const c of DEVICE_CASES) {
    const rates: number[] = [];
    for (let i = 0; i < opts.runs; i++) rates.push(measureCase(c, opts.targetS ?? 0.2) / 1e6);
    const s = summarize(rates);
    rows.push([c.name, fmtSummary(s, 2), fmt(1000 / s.median, 0)]);
    opts.progress?.(`devices ${c.name}: ${fmt(s.median, 2)} M accesses/s`);
  }
  return {
    title: "Device dispatch (in-process, no CPU)",
    headers: ["access", "M accesses/s", "ns/access"],
    rows,
    notes: [
      `Median / min / max of ${opts.runs} run(s) of about ${opts.targetS ?? 0.2} s each through ` +
      "AddressSpace.read/write of a seed-line-1 board (qtest accel, manual clock).",
      "No QEMU counterpart is measured (this is the cost our CPU and KVM exits pay per device access).",
    ],
  };
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 3);
  console.log(renderSection(runDeviceBench({ runs, progress: (m) => console.error(m) })));
}
