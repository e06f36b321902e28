/**
 * The core runtime's public surface: shared contracts (types.ts, accel.ts), guest RAM and PhysMap,
 * memory regions / address spaces / dispatch / hooks / `info mtree`, interrupt wiring and the virtual clock.
 * @module
 */
export * from "./types.ts";
export * from "./accel.ts";
export * from "./memory.ts";
export * from "./region.ts";
export * from "./irq.ts";
export * from "./clock.ts";
