/**
 * Seeded PRNG for plugins and the fuzzer (mulberry32): deterministic, 32-bit state, no globals.
 * @module
 */

/** A seeded 32-bit PRNG. */
export class Prng {
  #s: number;
  constructor(seed: number) {
    this.#s = (seed >>> 0) ^ 0x9e3779b9;
  }
  /** Next uint32. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }
  /** Integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor(this.float() * n);
  }
  /** One element of a non-empty array. */
  pick<T>(a: readonly T[]): T {
    return a[this.below(a.length)];
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }
}
