/**
 * Monitor server tests over in-memory chardevs (core/host/chardev.ts BufferChar): HMP with the banner,
 * prompt and "\r\n" output; HMP on a mux'ed stream switched with Ctrl-A c; qtest replies.
 * @module
 */
import assert from "node:assert/strict";
import { BufferChar } from "../core/host/chardev.ts";
import { makeFakeMachine } from "./_fake_machine_test_util.ts";
import { startMonitor } from "./monitor_server.ts";

Deno.test("startMonitor serves HMP: banner, prompt, echo and CRLF output", () => {
  const chr = new BufferChar({ id: "mon0" });
  const mon = startMonitor("hmp", makeFakeMachine(), chr, { historyFile: null });
  try {
    assert.equal(chr.takeText(), "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ");
    chr.inject("info status\r");
    assert.equal(chr.takeText(), "info status\r\nVM status: running\r\n(qemu) ");
  } finally {
    mon.close();
  }
});

Deno.test("startMonitor on a mux'ed stream takes input only while the monitor has focus (Ctrl-A c)", () => {
  const chr = new BufferChar({ id: "char0", mux: true });
  const serialIn: string[] = [];
  chr.setReceiver({ canReceive: () => 100, receive: (d) => void serialIn.push(new TextDecoder().decode(d)) });
  const mon = startMonitor("hmp", makeFakeMachine(), chr, { mux: true, historyFile: null });
  try {
    assert.equal(chr.takeText(), "");
    chr.inject("ls\r");
    assert.deepEqual(serialIn, ["ls\r"]);
    chr.inject("\x01c");
    assert.equal(chr.takeText(), "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ");
    chr.inject("info name\r");
    assert.equal(chr.takeText(), "info name\r\nfakevm\r\n(qemu) ");
    chr.inject("\x01c");
    chr.inject("x");
    assert.deepEqual(serialIn, ["ls\r", "x"]);
    chr.inject("\x01c");
    assert.equal(chr.takeText(), "(qemu) "); // banner only once
  } finally {
    mon.close();
  }
});

Deno.test("startMonitor serves qtest lines", () => {
  const chr = new BufferChar({ id: "qtest" });
  const mon = startMonitor("qtest", makeFakeMachine(), chr);
  try {
    chr.inject("outb 0x70 0x0a\ninb 0x70\nendianness\n");
    assert.equal(chr.takeText(), "OK\nOK 0x00ff\nOK little\n");
  } finally {
    mon.close();
  }
});
