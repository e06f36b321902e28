import { assertText, golden } from "../tests/lib/golden.ts";
import { formatIoapic, formatLapic } from "./machine_view.ts";

Deno.test("formatLapic prints QEMU 7.2's info lapic for the captured register values", () => {
  const regs: Record<number, number> = {
    0x350: 0x10700,
    0x360: 0x400,
    0x340: 0x10000,
    0x370: 0xfe,
    0x330: 0x10000,
    0x320: 0x200ec,
    0x3e0: 0x3,
    0x380: 250014,
    0x390: 2650,
    0xf0: 0x1ff,
    0x300: 0x8fd,
    0x310: 0x02000000,
    0x280: 0,
    0xe0: 0xffffffff,
    0xd0: 0x01000000,
    0x80: 0x10,
    0x90: 0,
    0xa0: 0x10,
  };
  assertText(formatLapic(0, (o) => regs[o] ?? 0, false), golden("info/lapic.txt"));
});

Deno.test("formatIoapic prints QEMU 7.2's redirection table dump for the captured entries", () => {
  const text = golden("info/ioapic.txt");
  const redtbl = [...text.matchAll(/pin \d+\s+0x([0-9a-f]{16})/g)].map((m) => {
    const v = BigInt("0x" + m[1]);
    return [Number(v & 0xffffffffn), Number(v >> 32n)];
  });
  assertText(formatIoapic({ id: 0, ioregsel: 0x18, irr: 0, redtbl }), text);
});
