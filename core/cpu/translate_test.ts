import assert from "node:assert/strict";
import { CODE, getReg, installTables, loadVectors, longModeCpu, setReg } from "./_testcpu.ts";
import { Translator } from "./translate.ts";

const data = { vectors: loadVectors() };

Deno.test("Translator matches the host CPU on ALU golden vectors it translates", () => {
  const { c, it, ram } = longModeCpu();
  const failures: string[] = [];
  let translated = 0;
  for (const v of data.vectors) {
    const code = new Uint8Array(v.bytes.match(/../g)!.map((h) => parseInt(h, 16)));
    ram.write(CODE, code);
    ram.writeU8(CODE + code.length, 0xf4); // HLT ends the block
    const tr = new Translator(1);
    let bad = 0;
    for (const k of v.cases) {
      const [a, cc, d, f, ra, rc, rd, rf] = k.map((x) => BigInt("0x" + x));
      setReg(c, 0, a);
      setReg(c, 1, cc);
      setReg(c, 2, d);
      c.setFlags(Number(f));
      c.rip = CODE;
      for (let i = 0; i < 10 && c.rip !== CODE + code.length; i++) {
        if (!tr.run(c)) it.step();
      }
      const ga = getReg(c, 0), gc = getReg(c, 1), gd = getReg(c, 2);
      const gf = c.getFlags() & v.flagMask, ef = Number(rf) & v.flagMask;
      if (ga !== ra || gc !== rc || gd !== rd || gf !== ef) {
        if (bad++ < 2) {
          failures.push(
            `${v.asm.replace("\n", ";")}: in ${k.slice(0, 4).join(" ")} want ${k.slice(4).join(" ")} got ${
              [ga, gc, gd].map((x) => x.toString(16)).join(" ")
            } f=${gf.toString(16)}/${ef.toString(16)}`,
          );
        }
      }
    }
    if (tr.compiled) translated++;
  }
  assert.deepEqual(failures, []);
  assert.ok(translated > 200, `only ${translated} vectors translated`);
});

Deno.test("Translator blocks run push/call/ret and re-check code after it changes", () => {
  const { c, it, ram } = longModeCpu();
  installTables(c, ram);
  setReg(c, 4, 0x8000n);
  // call f; add rax, 1; hlt ... f: mov rax, 41; push rax; pop rbx; ret
  ram.write(CODE, new Uint8Array([0xe8, 0x05, 0, 0, 0, 0x48, 0x83, 0xc0, 0x01, 0xf4]));
  ram.write(CODE + 10, new Uint8Array([0x48, 0xc7, 0xc0, 41, 0, 0, 0, 0x50, 0x5b, 0xc3]));
  const tr = new Translator(1);
  const run = () => {
    c.rip = CODE;
    c.halted = false;
    for (let i = 0; i < 20 && !c.halted; i++) if (!tr.run(c)) it.step();
  };
  run();
  assert.equal(getReg(c, 0), 42n);
  assert.equal(getReg(c, 3), 41n);
  assert.equal(getReg(c, 4), 0x8000n);
  assert.ok(tr.compiled >= 2);
  ram.writeU8(CODE + 13, 99); // patch the immediate: mov rax, 99
  run();
  assert.equal(getReg(c, 0), 100n);
  assert.ok(tr.invalidated >= 1);
});
