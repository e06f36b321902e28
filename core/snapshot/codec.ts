/**
 * Plain-data codec for snapshot state (device trees, vCPU records): JSON with tagged typed arrays and
 * bigints, so that a `saveState()` result survives a byte stream exactly. Objects keep named fields only
 * (STYLE.md §2.2: no positional state).
 * @module
 */
import { StateError } from "../types.ts";

/** Typed-array constructors the codec round-trips, by name. */
const TYPED = {
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
} as const;
type TypedName = keyof typeof TYPED;

/** Encode plain data (numbers, strings, booleans, null, arrays, objects, typed arrays, bigint, Map) as JSON text. */
export function encodeValue(v: unknown): string {
  return JSON.stringify(v, function (this: unknown, _k: string, x: unknown) {
    if (typeof x === "bigint") return { $big: x.toString() };
    if (typeof x === "number" && !Number.isFinite(x)) return { $num: String(x) };
    if (ArrayBuffer.isView(x) && !(x instanceof DataView)) {
      const name = x.constructor.name as TypedName;
      if (!(name in TYPED)) throw new StateError(`Cannot encode a ${name}`);
      const u8 = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
      return { $ta: name, b64: u8.slice().toBase64() };
    }
    if (x instanceof Map) return { $map: [...x.entries()] };
    return x;
  });
}

/** Decode what `encodeValue` wrote; throws StateError on malformed text. */
export function decodeValue(text: string): unknown {
  try {
    return JSON.parse(text, (_k, x) => {
      if (x === null || typeof x !== "object" || Array.isArray(x)) return x;
      if (typeof x.$big === "string") return BigInt(x.$big);
      if (typeof x.$num === "string") return Number(x.$num);
      if (Array.isArray(x.$map)) return new Map(x.$map);
      if (typeof x.$ta === "string" && typeof x.b64 === "string") {
        const C = TYPED[x.$ta as TypedName];
        if (!C) throw new StateError(`Unknown typed array "${x.$ta}"`);
        const u8 = Uint8Array.fromBase64(x.b64);
        if (u8.length % C.BYTES_PER_ELEMENT) throw new StateError(`Bad ${x.$ta} length ${u8.length}`);
        return new C(u8.buffer as ArrayBuffer, 0, u8.length / C.BYTES_PER_ELEMENT);
      }
      return x;
    });
  } catch (e) {
    if (e instanceof StateError) throw e;
    throw new StateError(`Malformed state record: ${(e as Error).message}`);
  }
}
