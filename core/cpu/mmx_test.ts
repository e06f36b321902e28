import assert from "node:assert/strict";
import { CODE, longModeCpu, runUntil, setReg } from "./_testcpu.ts";

const DATA = 0x20000;

function unhex(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i += 2) out.push(parseInt(s.slice(i, i + 2), 16));
  return out;
}

Deno.test("MMX golden vectors from the host (testgen/mmxgen.c) replay bit-exactly", async () => {
  const gz = await Deno.readFile(new URL("./testgen/mmx_vectors.txt.gz", import.meta.url));
  const text = await new Response(new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip")))
    .text();
  const { c, it, ram } = longModeCpu();
  const fails: string[] = [];
  let name = "", n = 0, codeLen = 0;
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f[0] === "O") {
      name = f[1];
      // movq mm0,[rdi]; movq mm1,[rdi+8]; mov rax,[rdi+32]; <op>; movq [rdi+16],mm0; mov [rdi+24],rax; emms
      const code = [0x0f, 0x6f, 0x07, 0x0f, 0x6f, 0x4f, 0x08, 0x48, 0x8b, 0x47, 0x20, ...unhex(f[2])];
      code.push(0x0f, 0x7f, 0x47, 0x10, 0x48, 0x89, 0x47, 0x18, 0x0f, 0x77);
      ram.write(CODE, new Uint8Array(code));
      codeLen = code.length;
      continue;
    }
    if (f[0] !== "V") continue;
    const [a, b, r, want0, wantRax] = f.slice(1).map((x) => BigInt("0x" + x));
    ram.writeU64(DATA, a);
    ram.writeU64(DATA + 8, b);
    ram.writeU64(DATA + 16, 0n);
    ram.writeU64(DATA + 32, r);
    setReg(c, 7, BigInt(DATA));
    runUntil(c, it, CODE, CODE + codeLen, 20);
    n++;
    const u64 = (p: number) => (BigInt(ram.readU32(p + 4)) << 32n) | BigInt(ram.readU32(p));
    const got0 = u64(DATA + 16), gotRax = u64(DATA + 24);
    if (got0 !== want0 || gotRax !== wantRax) {
      fails.push(
        `${name} a=${a.toString(16)} b=${b.toString(16)}: mm0 ${got0.toString(16)} want ` +
          `${want0.toString(16)}, rax ${gotRax.toString(16)} want ${wantRax.toString(16)}`,
      );
    }
  }
  if (fails.length) console.log(fails.slice(0, 30).join("\n"));
  assert.ok(n > 4000);
  assert.equal(fails.length, 0);
});
