import assert from "node:assert/strict";
import { CODE, getReg, loadVectors, longModeCpu, runUntil, setReg } from "./_testcpu.ts";

const data = { vectors: loadVectors() };

Deno.test("Interp matches the host CPU on ALU golden vectors (all widths, flags)", () => {
  const { c, it, ram } = longModeCpu();
  const failures: string[] = [];
  for (const v of data.vectors) {
    const code = new Uint8Array(v.bytes.match(/../g)!.map((h) => parseInt(h, 16)));
    ram.write(CODE, code);
    let bad = 0;
    for (const k of v.cases) {
      const [a, cc, d, f, ra, rc, rd, rf] = k.map((x) => BigInt("0x" + x));
      setReg(c, 0, a);
      setReg(c, 1, cc);
      setReg(c, 2, d);
      c.setFlags(Number(f));
      runUntil(c, it, CODE, CODE + code.length);
      const ga = getReg(c, 0), gc = getReg(c, 1), gd = getReg(c, 2);
      const mask = v.flagMask;
      const gf = c.getFlags() & mask, ef = Number(rf) & mask;
      if (ga !== ra || gc !== rc || gd !== rd || gf !== ef) {
        if (bad++ < 2) {
          failures.push(
            `${v.asm.replace("\n", ";")}: in a=${k[0]} c=${k[1]} d=${k[2]} f=${k[3]} -> want ${
              ra.toString(16)
            } ${rc.toString(16)} ${rd.toString(16)} f=${ef.toString(16)}, got ${ga.toString(16)} ${
              gc.toString(16)
            } ${gd.toString(16)} f=${gf.toString(16)}`,
          );
        }
      }
    }
  }
  assert.deepEqual(failures, []);
});
