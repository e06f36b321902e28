/**
 * -uuid, -boot menu=/splash-time=/reboot-timeout=/strict= and -machine graphics=off read back through the
 * fw_cfg I/O ports as a guest (or QEMU's libqos fw_cfg helpers) reads them; QEMU 7.2's error lines for bad
 * values; QMP query-uuid.
 * @module
 */
import assert from "node:assert/strict";
import { buildBoard, parseArgs } from "./lib/machine.ts";
import type { Microvm } from "../devices/microvm.ts";
import { UserError } from "../core/types.ts";
import { formatCliError } from "../shell/cli/mod.ts";

const B = ["-M", "microvm,acpi=off", "-accel", "qtest", "-m", "64m", "-nodefaults"];

function select(m: Microvm, key: number): void {
  m.io.write(0x510, 2, key);
}
function read(m: Microvm, n: number): number[] {
  return Array.from({ length: n }, () => m.io.read(0x511, 1));
}
function item(m: Microvm, key: number, n: number): number[] {
  select(m, key);
  return read(m, n);
}
/** qfw_cfg_get_file: look the name up in FILE_DIR (0x19), then read the file. */
function file(m: Microvm, name: string): number[] | null {
  select(m, 0x19);
  const [a, b, c, d] = read(m, 4);
  const count = (a << 24) | (b << 16) | (c << 8) | d;
  for (let i = 0; i < count; i++) {
    const e = read(m, 64);
    const size = (e[0] << 24) | (e[1] << 16) | (e[2] << 8) | e[3];
    const sel = (e[4] << 8) | e[5];
    const fname = String.fromCharCode(...e.slice(8, e.indexOf(0, 8)));
    if (fname === name) return item(m, sel, size);
  }
  return null;
}

Deno.test("fw_cfg defaults as QEMU fills them: zero UUID, no boot menu, boot-fail-wait -1, no boot-menu-wait", () => {
  const { machine: m } = buildBoard(B);
  assert.deepEqual(item(m, 0x02, 16), new Array(16).fill(0));
  assert.deepEqual(item(m, 0x0e, 2), [0, 0]);
  assert.deepEqual(item(m, 0x04, 2), [0, 0]); // graphics on by default
  assert.deepEqual(file(m, "etc/boot-fail-wait"), [0xff, 0xff, 0xff, 0xff]);
  assert.equal(file(m, "etc/boot-menu-wait"), null);
  assert.deepEqual(file(m, "bootorder"), []); // strict=on adds HALT only when a device has a bootindex
});

Deno.test("-uuid goes to FW_CFG_UUID in string order; -boot menu/splash-time/reboot-timeout; graphics=off", () => {
  const { machine: m } = buildBoard([
    ...B,
    "-uuid",
    "12345678-9ABC-def0-1122-334455667788",
    "-boot",
    "menu=on,splash-time=5000,reboot-timeout=1000,strict=on",
    "-machine",
    "graphics=off",
  ]);
  assert.deepEqual(item(m, 0x02, 16), [
    0x12,
    0x34,
    0x56,
    0x78,
    0x9a,
    0xbc,
    0xde,
    0xf0,
    0x11,
    0x22,
    0x33,
    0x44,
    0x55,
    0x66,
    0x77,
    0x88,
  ]);
  assert.deepEqual(item(m, 0x0e, 2), [1, 0]);
  assert.deepEqual(item(m, 0x04, 2), [1, 0]);
  assert.deepEqual(file(m, "etc/boot-menu-wait"), [0x88, 0x13]); // 5000 LE
  assert.deepEqual(file(m, "etc/boot-fail-wait"), [0xe8, 0x03, 0, 0]); // 1000 LE
  // reboot-timeout=-1 is "never reboot": 0xffffffff, as QEMU's fw_cfg-test no_reboot_timeout expects.
  const { machine: m2 } = buildBoard([...B, "-boot", "reboot-timeout=-1,splash-time=12", "-nographic"]);
  assert.deepEqual(file(m2, "etc/boot-fail-wait"), [0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(file(m2, "etc/boot-menu-wait"), [12, 0]);
  assert.deepEqual(item(m2, 0x04, 2), [1, 0]); // -nographic
});

function cliError(argv: string[]): string {
  try {
    buildBoard([...B, ...argv]);
  } catch (e) {
    if (e instanceof UserError) return formatCliError("qemu-system-x86_64", e).trimEnd();
    throw e;
  }
  return "(accepted)";
}

Deno.test("bad -uuid/-boot/graphics values fail with QEMU 7.2's lines", () => {
  const cases: [string[], string][] = [
    [["-uuid", "xyz"], "qemu-system-x86_64: -uuid xyz: failed to parse UUID string: wrong format"],
    [["-boot", "menu=maybe"], "qemu-system-x86_64: Parameter 'boot.menu' expects 'on' or 'off'"],
    [["-boot", "strict=maybe"], "qemu-system-x86_64: Parameter 'boot.strict' expects 'on' or 'off'"],
    [["-boot", "splash-time=x"], "qemu-system-x86_64: Parameter 'boot.splash-time' expects integer"],
    [
      ["-boot", "splash-time=70000"],
      "qemu-system-x86_64: splash-time is invalid,it should be a value between 0 and 65535",
    ],
    [
      ["-boot", "reboot-timeout=-2"],
      "qemu-system-x86_64: reboot timeout is invalid,it should be a value between -1 and 65535",
    ],
    [["-machine", "graphics=maybe"], "qemu-system-x86_64: Parameter 'graphics' expects 'on' or 'off'"],
  ];
  for (const [argv, want] of cases) assert.equal(cliError(argv), want, argv.join(" "));
  // The last -uuid wins, as in QEMU.
  assert.equal(
    parseArgs([
      ...B,
      "-uuid",
      "12345678-1234-5678-9abc-def012345678",
      "-uuid",
      "00000000-0000-0000-0000-000000000001",
    ]).uuid,
    "00000000-0000-0000-0000-000000000001",
  );
});
