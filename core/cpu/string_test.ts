import assert from "node:assert/strict";
import { CODE, getReg, longModeCpu, runUntil, setReg } from "./_testcpu.ts";

Deno.test("REP MOVSB copies across page boundaries and leaves RSI/RDI/RCX as the CPU does", () => {
  const { c, it, ram } = longModeCpu();
  for (let i = 0; i < 10000; i++) ram.writeU8(0x100000 + i, (i * 7) & 0xff);
  setReg(c, 6, 0x100000n + 5n);
  setReg(c, 7, 0x200000n + 4090n);
  setReg(c, 1, 9000n);
  ram.write(CODE, new Uint8Array([0xf3, 0xa4])); // rep movsb
  runUntil(c, it, CODE, CODE + 2, 100);
  for (let i = 0; i < 9000; i++) assert.equal(ram.readU8(0x200000 + 4090 + i), ((i + 5) * 7) & 0xff);
  assert.equal(getReg(c, 1), 0n);
  assert.equal(getReg(c, 6), 0x100000n + 5n + 9000n);
  assert.equal(getReg(c, 7), 0x200000n + 4090n + 9000n);
});

Deno.test("REP STOSQ fills, STD + REP MOVSD copies backwards, REPNE SCASB finds a byte", () => {
  const { c, it, ram } = longModeCpu();
  setReg(c, 0, 0x1122334455667788n);
  setReg(c, 7, 0x300000n);
  setReg(c, 1, 1000n);
  ram.write(CODE, new Uint8Array([0xf3, 0x48, 0xab])); // rep stosq
  runUntil(c, it, CODE, CODE + 3, 100);
  assert.equal(ram.readU64(0x300000 + 999 * 8), 0x1122334455667788);
  assert.equal(getReg(c, 7), 0x300000n + 8000n);
  for (let i = 0; i < 16; i++) ram.writeU32(0x340000 + 4 * i, i);
  setReg(c, 6, 0x340000n + 60n);
  setReg(c, 7, 0x360000n + 60n);
  setReg(c, 1, 16n);
  ram.write(CODE, new Uint8Array([0xfd, 0xf3, 0xa5, 0xfc])); // std; rep movsd; cld
  runUntil(c, it, CODE, CODE + 4, 100);
  for (let i = 0; i < 16; i++) assert.equal(ram.readU32(0x360000 + 4 * i), i);
  ram.write(0x380000, new TextEncoder().encode("hello, world\0"));
  setReg(c, 7, 0x380000n);
  setReg(c, 0, 0x2cn); // ','
  setReg(c, 1, 100n);
  ram.write(CODE, new Uint8Array([0xf2, 0xae])); // repne scasb
  runUntil(c, it, CODE, CODE + 2, 100);
  assert.equal(getReg(c, 7), 0x380000n + 6n);
  assert.equal(getReg(c, 1), 94n);
  assert.notEqual(c.zf(), 0);
});
