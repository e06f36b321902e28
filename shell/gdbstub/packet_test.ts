import assert from "node:assert/strict";
import {
  bytesToText,
  escapeBinary,
  framePacket,
  fromHex,
  MAX_PACKET_LENGTH,
  PacketReader,
  textToBytes,
  toHex,
} from "./packet.ts";

const feed = (r: PacketReader, s: string) =>
  r.feed(textToBytes(s)).map((e) => e.kind === "packet" ? `pkt:${bytesToText(e.data)}` : e.kind);

Deno.test("packet reader: checksums, acks, Ctrl-C, garbage between packets", () => {
  const r = new PacketReader();
  assert.deepEqual(feed(r, "+$qSupported#37"), ["ack", "pkt:qSupported"]);
  assert.deepEqual(feed(r, "$g#67-"), ["pkt:g", "nack"]);
  assert.deepEqual(feed(r, "$g#00"), ["bad-checksum"]);
  assert.deepEqual(feed(r, "xyz\x03"), ["interrupt"]);
  // Split across reads.
  assert.deepEqual(feed(r, "$?#"), []);
  assert.deepEqual(feed(r, "3f"), ["pkt:?"]);
  // Upper-case checksum digits are accepted.
  assert.deepEqual(feed(r, "$m0,4#FD"), ["pkt:m0,4"]);
});

Deno.test("packet reader: } escapes and * run lengths, invalid checksum digits resume the line", () => {
  const r = new PacketReader();
  // "X0,1:" + escaped '#'  ('}' 0x03 → '#')
  const body = textToBytes("X0,1:}\x03");
  let sum = 0;
  for (const b of body) sum += b;
  const pkt = `$${bytesToText(body)}#${(sum & 0xff).toString(16).padStart(2, "0")}`;
  assert.deepEqual(feed(r, pkt), ["pkt:X0,1:#"]);
  // "0* " = '0' repeated 3 more times (count ' ' = 32 → 32-29 = 3).
  const rle = "m0* ";
  let s2 = 0;
  for (const c of rle) s2 += c.charCodeAt(0);
  assert.deepEqual(feed(r, `$${rle}#${(s2 & 0xff).toString(16).padStart(2, "0")}`), ["pkt:m0000"]);
  // A non-hex checksum character sends the reader back to the line: the packet is then completed later.
  const r2 = new PacketReader();
  assert.deepEqual(feed(r2, "$g#zz"), []);
  assert.equal(feed(r2, "#67").length, 1);
});

Deno.test("packet reader: an oversize packet is dropped without a reply", () => {
  const r = new PacketReader();
  const big = "$" + "a".repeat(MAX_PACKET_LENGTH + 10) + "#00";
  assert.deepEqual(feed(r, big), []);
  assert.deepEqual(feed(r, "$g#68"), ["bad-checksum"]);
  assert.deepEqual(feed(r, "$g#67"), ["pkt:g"]);
});

Deno.test("framing, binary escapes and hex", () => {
  assert.equal(bytesToText(framePacket(textToBytes("OK"))), "$OK#9a");
  assert.equal(bytesToText(framePacket(textToBytes(""))), "$#00");
  assert.deepEqual([...escapeBinary(new Uint8Array([0x23, 0x24, 0x2a, 0x7d, 0x41]))], [
    0x7d,
    0x03,
    0x7d,
    0x04,
    0x7d,
    0x0a,
    0x7d,
    0x5d,
    0x41,
  ]);
  assert.equal(toHex(new Uint8Array([0, 0xab, 0x10])), "00ab10");
  assert.deepEqual([...fromHex("00AB10")], [0, 0xab, 0x10]);
  assert.deepEqual([...fromHex("0g12")], []);
});
