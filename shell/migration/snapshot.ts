/**
 * A whole machine in the migration stream (core/snapshot/stream.ts): header with the machine
 * configuration, RAM, then one STATE section (virtual clock, vCPUs, device tree) and END. Used by
 * `migrate`, `-incoming` and tests; the reader puts RAM pages in place as they arrive (each section's
 * checksum verified at its end) and the rest only once END was verified, so a bad stream never leaves a
 * runnable half-restored machine (the destination refuses it and exits).
 * @module
 */
import type { Accelerator } from "../../core/accel.ts";
import type { VirtualClock } from "../../core/clock.ts";
import { StateError, UserError } from "../../core/types.ts";
import { decodeValue, encodeValue } from "../../core/snapshot/codec.ts";
import { allPages, applyPages, encodePages } from "../../core/snapshot/ram.ts";
import { readRamSection } from "../../core/snapshot/ram_load.ts";
import {
  type ByteSource,
  encodeHeader,
  encodeJsonSection,
  encodeSection,
  payloadText,
  SEC_END,
  SEC_RAM,
  SEC_STATE,
  SEC_ZERO,
  StreamReader,
} from "../../core/snapshot/stream.ts";
import type { Microvm } from "../../devices/microvm.ts";
import {
  configMismatch,
  loadBoardState,
  machineConfigId,
  saveBoardState,
} from "../../devices/microvm_state.ts";

/** What a snapshot covers. */
export interface MachineParts {
  machine: Microvm;
  accel: Accelerator | null;
  clock: VirtualClock;
}

/** The header of a stream from this machine. */
export function streamHeader(p: MachineParts): Uint8Array {
  return encodeHeader({ producer: "microvm.ts", config: machineConfigId(p.machine) });
}

/** The STATE section (call with the vCPUs stopped). */
export function stateSection(p: MachineParts, running: boolean): Uint8Array {
  const cpus = p.accel?.saveState ? p.accel.saveState() : null;
  if (p.accel && !p.accel.saveState) {
    throw new UserError(`Migration is not supported with -accel ${p.accel.name} yet`);
  }
  const state = { clockNs: p.clock.now(), running, cpus, board: saveBoardState(p.machine) };
  return encodeJsonSection(SEC_STATE, encodeValue(state));
}

/** END after `n` sections. */
export function endSection(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return encodeSection(SEC_END, b);
}

/** A complete stop-and-copy stream of a stopped machine, as chunks. */
export function saveMachine(p: MachineParts, running: boolean): Uint8Array[] {
  const out: Uint8Array[] = [streamHeader(p)];
  let n = 0;
  encodePages(p.machine.ram.u8, allPages(p.machine.ram.u8), {
    sendZero: false,
    emit: (s) => {
      out.push(s);
      n++;
    },
  });
  out.push(stateSection(p, running));
  out.push(endSection(n + 1));
  return out;
}

/** Result of reading a stream into a machine. */
export interface LoadResult {
  /** The source was running when it stopped (the destination resumes then, unless -S). */
  running: boolean;
  bytes: number;
  pages: number;
}

/**
 * Read a stream into a freshly built (never run) machine. Throws UserError with one line for a stream
 * that is not ours, from another machine configuration, corrupted or truncated.
 */
export async function loadMachine(p: MachineParts, src: ByteSource): Promise<LoadResult> {
  const r = new StreamReader(src);
  const h = await r.header();
  const here = machineConfigId(p.machine);
  const diff = configMismatch((h.config ?? {}) as Record<string, unknown>, here);
  if (diff !== null) throw new UserError(`Machine configuration mismatch: ${diff}`);
  const u8 = p.machine.ram.u8;
  // The boot loader filled pages of this (never run) machine: they must read as the source left them.
  const lp = p.machine.loaderPages;
  if (lp) { for (let i = 0; i < lp.length; i++) if (lp[i]) u8.fill(0, i * 4096, (i + 1) * 4096); }
  let state: unknown = null, pages = 0;
  for (;;) {
    const { kind, len } = await r.sectionHeader();
    if (kind === SEC_RAM) {
      // Straight into guest RAM (ram_load.ts); nothing runs unless the whole stream verifies.
      pages += await readRamSection(r, u8, len);
      continue;
    }
    const payload = await r.payload(len);
    if (kind === SEC_ZERO) {
      pages += applyPages(u8, kind, payload);
    } else if (kind === SEC_STATE) {
      try {
        state = decodeValue(payloadText(payload));
      } catch (e) {
        throw new UserError(`Migration stream corrupted: ${(e as Error).message}`);
      }
    } else if (kind === SEC_END) {
      const n = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true);
      if (n !== r.count - 1) {
        throw new UserError(`Migration stream corrupted: END after ${r.count - 1} sections, expected ${n}`);
      }
      break;
    }
  }
  if (state === null) throw new UserError("Migration stream has no machine state");
  applyState(p, state);
  return { running: (state as { running?: boolean }).running === true, bytes: r.bytes, pages };
}

/** Apply a decoded STATE record: clock first (devices re-arm timers against it), then vCPUs, then devices. */
export function applyState(p: MachineParts, state: unknown): void {
  const s = state as { clockNs?: unknown; cpus?: unknown; board?: unknown };
  if (typeof s.clockNs !== "number" || !(s.clockNs >= 0)) throw new UserError("Migration stream: bad clock");
  try {
    p.clock.restore(s.clockNs);
    if (p.accel) {
      if (!p.accel.loadState) {
        throw new UserError(`Migration is not supported with -accel ${p.accel.name} yet`);
      }
      p.accel.loadState(s.cpus);
    }
    loadBoardState(p.machine, s.board);
    p.machine.kvmclock.refresh();
  } catch (e) {
    if (e instanceof StateError) throw new UserError(`Migration stream refused: ${e.message}`);
    throw e;
  }
}
