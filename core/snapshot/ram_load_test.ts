import assert from "node:assert/strict";
import fc from "fast-check";
import { UserError } from "../types.ts";
import { encodePages } from "./ram.ts";
import { readRamSection } from "./ram_load.ts";
import {
  BufferSource,
  type ByteSource,
  checksum32,
  encodeSection,
  PAGE,
  SEC_RAM,
  StreamReader,
} from "./stream.ts";

/** RAM sections of `src` (zero pages elided), concatenated. */
function sectionsOf(src: Uint8Array): { bytes: Uint8Array; n: number } {
  const parts: Uint8Array[] = [];
  encodePages(src, Array.from({ length: src.length / PAGE }, (_, i) => i), {
    sendZero: false,
    emit: (s) => parts.push(s),
  });
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return { bytes: out, n: parts.length };
}

async function load(bytes: Uint8Array, n: number, dst: Uint8Array, source?: ByteSource): Promise<number> {
  const r = new StreamReader(source ?? new BufferSource(bytes));
  let pages = 0;
  for (let i = 0; i < n; i++) {
    const { kind, len } = await r.sectionHeader();
    assert.equal(kind, SEC_RAM);
    pages += await readRamSection(r, dst, len);
  }
  return pages;
}

/** A source without readInto (tcp:/unix:/exec:), served in odd-sized pieces. */
function chunky(bytes: Uint8Array): ByteSource {
  const b = new BufferSource(bytes);
  return { read: (n) => b.read(n) };
}

Deno.test("RAM loader: pages land where the source had them, others untouched", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(63), fc.nat(PAGE - 1), fc.integer({ min: 1, max: 255 })), { maxLength: 40 }),
      fc.boolean(),
      async (writes, direct) => {
        const src = new Uint8Array(64 * PAGE);
        for (const [p, o, v] of writes) src[p * PAGE + o] = v;
        const { bytes, n } = sectionsOf(src);
        // The destination's untouched pages keep a marker: the loader must not write pages the stream omits.
        const dst = new Uint8Array(64 * PAGE).fill(0xee);
        const pages = await load(bytes, n, dst, direct ? undefined : chunky(bytes));
        const nonZero = new Set(writes.map(([p]) => p));
        assert.equal(pages, nonZero.size);
        for (let p = 0; p < 64; p++) {
          const got = dst.subarray(p * PAGE, (p + 1) * PAGE);
          if (nonZero.has(p)) assert.deepEqual(got, src.subarray(p * PAGE, (p + 1) * PAGE));
          else assert.ok(got.every((b) => b === 0xee), `page ${p} was touched`);
        }
      },
    ),
    { numRuns: 50 },
  );
});

Deno.test("RAM loader: a flipped byte anywhere in a section is refused", async () => {
  const src = new Uint8Array(16 * PAGE);
  for (let p = 0; p < 16; p += 3) src[p * PAGE + 7] = p + 1;
  const { bytes, n } = sectionsOf(src);
  for (const at of [8, 12, 16, 100, 8 + 8 + PAGE + 3, bytes.length - 5, bytes.length - 1]) {
    const bad = bytes.slice();
    bad[at] ^= 0x10;
    await assert.rejects(load(bad, n, new Uint8Array(16 * PAGE)), UserError);
  }
});

Deno.test("RAM loader: truncated streams and runs past the end are refused", async () => {
  const src = new Uint8Array(8 * PAGE);
  src[5 * PAGE] = 1;
  const { bytes, n } = sectionsOf(src);
  for (const cut of [4, 9, 20, bytes.length - 4, bytes.length - 1]) {
    await assert.rejects(load(bytes.subarray(0, cut), n, new Uint8Array(8 * PAGE)), /truncated/);
  }
  // A run naming pages beyond guest memory (checksum valid) is refused before anything is read into RAM.
  const run = new Uint8Array(8 + PAGE);
  new DataView(run.buffer).setUint32(0, 7, true);
  new DataView(run.buffer).setUint32(4, 2, true);
  const sec = encodeSection(SEC_RAM, run);
  await assert.rejects(load(sec, 1, new Uint8Array(8 * PAGE)), /outside guest memory/);
  assert.equal(checksum32(run) >>> 0, new DataView(sec.buffer).getUint32(8 + run.length, true));
});
