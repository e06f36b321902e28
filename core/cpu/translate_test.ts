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

/** Map virtual 0x201000 to physical 0x280000 (4 KiB pages over 0x200000-0x3fffff), the rest identity. */
function splitPageCpu(): ReturnType<typeof longModeCpu> {
  const t = longModeCpu();
  const { c, ram } = t;
  ram.writeU64(0x2000, 0x5000n | 7n);
  for (let i = 0; i < 512; i++) ram.writeU64(0x5000 + i * 8, (BigInt(i) * 0x200000n) | 0x87n);
  ram.writeU64(0x5008, 0x6000n | 7n);
  for (let j = 0; j < 512; j++) ram.writeU64(0x6000 + j * 8, (0x200000n + BigInt(j) * 0x1000n) | 7n);
  ram.writeU64(0x6008, 0x280000n | 7n);
  c.flushTlb();
  return t;
}

for (const straddle of [false, true]) {
  Deno.test(
    `Translator never decodes past a page end into the physically next page (${
      straddle ? "first instruction straddles" : "first instruction ends at"
    } the boundary)`,
    () => {
      // Regression (cpu_bugs.md bug 1: `segfault ... ip 0000000000470000`): a block entered in the last
      // bytes of a page took its tail from the physically following page, not the next virtual page.
      const { c, it, ram } = splitPageCpu();
      const first = straddle ? [0x48, 0xc7, 0xc0, 0x00, 0x10, 0x00, 0x00] : [0xb8, 0x00, 0x10, 0x00, 0x00];
      const start = 0x201000 - (straddle ? 4 : 5);
      const k = 0x201000 - start;
      ram.write(start, new Uint8Array(first.slice(0, k)));
      ram.write(0x280000, new Uint8Array([...first.slice(k), 0x83, 0xc0, 0x01, 0xf4])); // add eax, 1; hlt
      ram.write(0x201000, new Uint8Array([...first.slice(k), 0x83, 0xc0, 0x64, 0xf4])); // decoy
      const tr = new Translator(1);
      for (let round = 0; round < 3; round++) {
        c.rip = start;
        c.halted = false;
        for (let i = 0; i < 10 && !c.halted; i++) if (!tr.run(c)) it.step();
        assert.equal(c.r[0], 0x1001, `round ${round}`);
      }
    },
  );
}
