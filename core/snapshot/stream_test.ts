import assert from "node:assert/strict";
import fc from "fast-check";
import { UserError } from "../types.ts";
import { decodeValue, encodeValue } from "./codec.ts";
import { allPages, applyPages, DirtyLog, encodePages } from "./ram.ts";
import {
  BufferSource,
  checksum32,
  encodeHeader,
  encodeSection,
  PAGE,
  SEC_RAM,
  SEC_STATE,
  SEC_ZERO,
  StreamReader,
} from "./stream.ts";

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function readAll(
  bytes: Uint8Array,
): Promise<{ header: unknown; sections: { kind: number; payload: Uint8Array }[] }> {
  const r = new StreamReader(new BufferSource(bytes));
  const header = await r.header();
  const sections = [];
  for (let i = 0; i < 2; i++) sections.push(await r.section());
  return { header, sections };
}

Deno.test("checksum32 changes when any single word changes", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 4, maxLength: 256 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (b, at, x) => {
        const data = b.subarray(0, b.length & ~3);
        if (data.length === 0) return;
        const c = data.slice();
        c[at % c.length] ^= x;
        assert.notEqual(checksum32(c), checksum32(data));
      },
    ),
  );
});

Deno.test("codec round-trips typed arrays, bigints, maps and nested objects", () => {
  fc.assert(
    fc.property(
      fc.uint8Array(),
      fc.bigInt({ min: -(1n << 64n), max: 1n << 64n }),
      fc.array(fc.integer()),
      (u8, big, ints) => {
        const v = {
          u8,
          i32: new Int32Array(ints),
          f64: new Float64Array([NaN, -0, Infinity, 1.5]),
          big,
          m: new Map([[1, 2n]]),
          nested: { a: [1, "x", null, true] },
        };
        const back = decodeValue(encodeValue(v)) as typeof v;
        assert.deepEqual(back.u8, u8);
        assert.deepEqual([...back.i32], ints);
        assert.ok(Number.isNaN(back.f64[0]) && Object.is(back.f64[1], -0) && back.f64[2] === Infinity);
        assert.equal(back.big, big);
        assert.equal(back.m.get(1), 2n);
        assert.deepEqual(back.nested, v.nested);
      },
    ),
  );
});

Deno.test("stream reader verifies header and sections and refuses corruption and truncation", async () => {
  const payload = new Uint8Array(64).map((_, i) => i);
  const bytes = concat([
    encodeHeader({ config: { ram: 1 } }),
    encodeSection(SEC_STATE, payload),
    encodeSection(SEC_RAM, new Uint8Array(0)),
  ]);
  const ok = await readAll(bytes);
  assert.deepEqual(ok.header, { config: { ram: 1 } });
  assert.deepEqual(ok.sections[0].payload, payload);
  // Every single-byte corruption and every truncation is one UserError line.
  for (let i = 0; i < bytes.length; i++) {
    const bad = bytes.slice();
    bad[i] ^= 0x41;
    await assert.rejects(
      readAll(bad),
      (e) => e instanceof UserError && !e.message.includes("\n"),
      `byte ${i}`,
    );
  }
  for (let n = 0; n < bytes.length; n += 3) {
    await assert.rejects(readAll(bytes.subarray(0, n)), UserError, `truncated at ${n}`);
  }
});

Deno.test("RAM codec elides zero pages and restores any page set", () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.nat(63), { maxLength: 64 }), fc.boolean(), (nonzero, sendZero) => {
      const src = new Uint8Array(64 * PAGE);
      for (const p of nonzero) src[p * PAGE + (p % PAGE)] = p + 1;
      const sections: Uint8Array[] = [];
      const r = encodePages(src, allPages(src), { sendZero, emit: (s) => sections.push(s) });
      assert.equal(r.data, nonzero.length);
      assert.equal(r.zero, 64 - nonzero.length);
      const dst = new Uint8Array(64 * PAGE).fill(sendZero ? 0xcc : 0);
      for (const s of sections) {
        const dv = new DataView(s.buffer, s.byteOffset);
        const kind = dv.getUint32(0, true), len = dv.getUint32(4, true);
        assert.ok(kind === SEC_RAM || kind === SEC_ZERO);
        applyPages(dst, kind, s.subarray(8, 8 + len));
      }
      assert.deepEqual(dst, src);
      // Only non-zero pages cost bytes.
      const total = sections.reduce((n, s) => n + s.length, 0);
      assert.ok(total <= nonzero.length * (PAGE + 8) + (sendZero ? 12 + 8 * 64 : 0) + 12);
    }),
  );
});

Deno.test("RAM runs outside guest memory are refused", () => {
  const p = new Uint8Array(8);
  new DataView(p.buffer).setUint32(0, 63, true);
  new DataView(p.buffer).setUint32(4, 2, true);
  assert.throws(() => applyPages(new Uint8Array(64 * PAGE), SEC_ZERO, p), /outside guest memory/);
});

Deno.test("DirtyLog marks and takes pages", () => {
  const d = new DirtyLog(10 * PAGE);
  d.mark(PAGE - 1, 2);
  d.mark(9 * PAGE, 1);
  assert.equal(d.count(), 3);
  assert.deepEqual(d.take(), [0, 1, 9]);
  assert.equal(d.count(), 0);
});
