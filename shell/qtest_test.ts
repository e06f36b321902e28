/**
 * qtest protocol tests against a fake machine: every command's reply format as softmmu/qtest.c prints it.
 * @module
 */
import assert from "node:assert/strict";
import { makeFakeMachine } from "./_fake_machine_test_util.ts";
import { parseQtestInt, QtestSession } from "./qtest.ts";

function session(accel: "qtest" | "tcg" = "qtest") {
  const m = makeFakeMachine({ accel });
  const out: string[] = [];
  const q = new QtestSession(m, { send: (t) => out.push(t) });
  q.opened();
  const cmd = (line: string): string => {
    out.length = 0;
    q.input(line + "\n");
    return out.join("");
  };
  return { m, q, out, cmd };
}

Deno.test("QtestSession port I/O replies OK and OK 0x%04x", () => {
  const { cmd, m } = session();
  assert.equal(cmd("outb 0x70 0x0a"), "OK\n");
  assert.equal(cmd("outb 0x71 0x26"), "OK\n");
  assert.equal(m.cmos[0x0a], 0x26);
  assert.equal(cmd("inb 0x71"), "OK 0x0026\n");
  assert.equal(cmd("inw 0x80"), "OK 0xffff\n");
  assert.equal(cmd("inl 0x80"), "OK 0xffffffff\n");
  assert.equal(cmd("outb 112 10"), "OK\n"); // decimal, as strtoul base 0
});

Deno.test("QtestSession memory reads and writes in every width, readq as 16 hex digits", () => {
  const { cmd } = session();
  assert.equal(cmd("writeb 0x1000 0x12"), "OK\n");
  assert.equal(cmd("writew 0x1002 0x3456"), "OK\n");
  assert.equal(cmd("writel 0x1004 0x789abcde"), "OK\n");
  assert.equal(cmd("readb 0x1000"), "OK 0x0000000000000012\n");
  assert.equal(cmd("readw 0x1002"), "OK 0x0000000000003456\n");
  assert.equal(cmd("readl 0x1004"), "OK 0x00000000789abcde\n");
  assert.equal(cmd("writeq 0x2000 0x0102030405060708"), "OK\n");
  assert.equal(cmd("readq 0x2000"), "OK 0x0102030405060708\n");
  assert.equal(cmd("readl 0xfeb00000"), "OK 0x0000000074726976\n");
});

Deno.test("QtestSession read/write hex, b64read/b64write, memset", () => {
  const { cmd } = session();
  assert.equal(cmd("write 0x3000 4 0xdeadbeef"), "OK\n");
  assert.equal(cmd("read 0x3000 4"), "OK 0xdeadbeef\n");
  // Short data is zero-filled up to len, as QEMU does.
  assert.equal(cmd("write 0x3000 4 0xaa"), "OK\n");
  assert.equal(cmd("read 0x3000 4"), "OK 0xaa000000\n");
  assert.equal(cmd("write 0x3000 4 0x"), "ERR invalid argument size\n");
  assert.equal(cmd("b64write 0x3010 3 AQID"), "OK\n");
  assert.equal(cmd("b64read 0x3010 3"), "OK AQID\n");
  assert.equal(cmd("memset 0x3020 4 0x5a"), "OK\n");
  assert.equal(cmd("read 0x3020 5"), "OK 0x5a5a5a5a00\n");
});

Deno.test("QtestSession clock_step and clock_set move the manual clock and fire timers", () => {
  const { cmd, m } = session();
  assert.equal(cmd("clock_step 100"), "OK 100\n");
  // No argument: to the next deadline (the fake's timer at 1000 ns).
  assert.equal(cmd("clock_step"), "OK 1000\n");
  assert.equal(cmd("clock_set 5000"), "OK 5000\n");
  assert.equal(cmd("clock_set 10"), "OK 5000\n"); // never backwards
  assert.equal(m.manual.now(), 5000);
  assert.equal(cmd("clock_step"), "OK 5000\n"); // no timer armed: time stays
});

Deno.test("QtestSession clock commands are unknown without -accel qtest", () => {
  const { cmd } = session("tcg");
  assert.equal(cmd("clock_step 10"), "FAIL Unknown command 'clock_step'\n");
});

Deno.test("QtestSession IRQ intercept sends IRQ raise/lower once per level change", () => {
  const { cmd, m, out } = session();
  assert.equal(cmd("irq_intercept_out nosuch"), "FAIL Unknown device\n");
  assert.equal(cmd("irq_intercept_out fakedev"), "OK\n");
  assert.equal(cmd("irq_intercept_out fakedev"), "OK\n");
  assert.equal(cmd("irq_intercept_in ioapic"), "FAIL IRQ intercept already enabled\n");
  out.length = 0;
  m.raiseOut(3, true);
  m.raiseOut(3, true);
  m.raiseOut(3, false);
  assert.deepEqual(out, ["IRQ raise 3\n", "IRQ lower 3\n"]);
});

Deno.test("QtestSession set_irq_in, endianness, module_load, unknown commands", () => {
  const { cmd, m } = session();
  assert.equal(cmd("set_irq_in ioapic unnamed-gpio-in 8 1"), "OK\n");
  assert.equal(m.inLevels.get(":8"), true);
  assert.equal(cmd("set_irq_in nosuch x 0 1"), "FAIL Unknown device\n");
  assert.equal(cmd("endianness"), "OK little\n");
  assert.equal(cmd("module_load block curl"), "FAIL\n");
  assert.equal(cmd("frobnicate 1"), "FAIL Unknown command 'frobnicate'\n");
});

Deno.test("QtestSession answers FAIL instead of aborting on malformed lines", () => {
  const { cmd } = session();
  assert.equal(cmd("outb"), "FAIL invalid address ''\n");
  assert.equal(cmd("readl zz"), "FAIL invalid address 'zz'\n");
  assert.equal(cmd("outb 0x10000 1"), "FAIL port '0x10000' out of range\n");
  assert.equal(cmd("read 0 0"), "FAIL invalid length '0'\n");
});

Deno.test("QtestSession handles several lines and partial lines in one chunk", () => {
  const { q, out } = session();
  out.length = 0;
  q.input("outb 0x70 0x0b\noutb 0x71 0x02\ninb 0x7");
  assert.deepEqual(out, ["OK\n", "OK\n"]);
  q.input("1\n");
  assert.deepEqual(out, ["OK\n", "OK\n", "OK 0x0002\n"]);
});

Deno.test("parseQtestInt parses like qemu_strtou64 base 0", () => {
  assert.equal(parseQtestInt("0x10"), 16n);
  assert.equal(parseQtestInt("010"), 8n);
  assert.equal(parseQtestInt("10"), 10n);
  assert.equal(parseQtestInt("-1"), 0xffffffffffffffffn);
  assert.equal(parseQtestInt("1x"), null);
});
