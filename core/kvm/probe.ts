/**
 * Honest host detection for `-enable-kvm` / `-accel kvm`: does /dev/kvm exist and open, and is it the
 * kvm_pvm software backend (guest CPL0 emulated; an unmodified Linux guest kernel fails early there)?
 * @module
 */
import { UserError } from "../types.ts";
import { ENOENT, Libc, O_CLOEXEC, O_RDWR } from "./ffi.ts";
import { KVM_GET_API_VERSION } from "./kvm_api.ts";

/** What probeKvm found. */
export interface KvmProbe {
  /** The device node exists. */
  present: boolean;
  /** It opened read-write and answered KVM_GET_API_VERSION. */
  usable: boolean;
  /** API version (12), or -1. */
  apiVersion: number;
  /** The kvm_pvm module is loaded, or the CPU lacks vmx/svm (so KVM cannot be hardware-assisted). */
  pvm: boolean;
  /** errno text when not usable ("No such file or directory", "Permission denied"). */
  error: string | null;
}

/** The warning printed once for `-enable-kvm` on a kvm_pvm host. */
export const PVM_WARNING =
  "warning: /dev/kvm is kvm_pvm (software-emulated guest kernel mode): an unmodified Linux guest kernel cannot run there; use -accel tcg";

/** Probe the host's KVM. Never throws; `path` and the sysfs/proc roots are injectable for tests. */
export function probeKvm(
  opts: { path?: string; sysModule?: string; cpuinfo?: string; libc?: Libc } = {},
): KvmProbe {
  const path = opts.path ?? "/dev/kvm";
  let present = false;
  try {
    Deno.statSync(path);
    present = true;
  } catch (e: unknown) {
    if (!(e instanceof Deno.errors.NotFound)) present = true;
  }
  const pvm = detectPvm(opts.sysModule ?? "/sys/module", opts.cpuinfo ?? "/proc/cpuinfo");
  if (!present) return { present, usable: false, apiVersion: -1, pvm, error: "No such file or directory" };
  const libc = opts.libc ?? new Libc();
  const fd = libc.open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const error = -fd === ENOENT ? "No such file or directory" : libc.strerror(-fd);
    return { present, usable: false, apiVersion: -1, pvm, error };
  }
  const api = libc.ioctl(fd, KVM_GET_API_VERSION);
  libc.close(fd);
  return {
    present,
    usable: api === 12,
    apiVersion: api,
    pvm,
    error: api === 12 ? null : "unexpected API version",
  };
}

function detectPvm(sysModule: string, cpuinfo: string): boolean {
  try {
    Deno.statSync(`${sysModule}/kvm_pvm`);
    return true;
  } catch (e: unknown) {
    if (!(e instanceof Deno.errors.NotFound)) return false;
  }
  try {
    const text = Deno.readTextFileSync(cpuinfo);
    const flags = text.split("\n").find((l) => l.startsWith("flags"));
    if (flags === undefined) return false;
    const set = new Set(flags.split(":")[1]?.trim().split(/\s+/) ?? []);
    return !set.has("vmx") && !set.has("svm");
  } catch (_e: unknown) {
    // No /proc (unusual sandbox): nothing to conclude.
    return false;
  }
}

/**
 * What `-enable-kvm` does with a probe: throw QEMU's error when KVM is unusable, return the warning
 * line to print on kvm_pvm, or null when all is well.
 */
export function checkKvmUsable(p: KvmProbe): string | null {
  if (!p.usable) {
    throw new UserError(`Could not access KVM kernel module: ${p.error ?? "No such file or directory"}`);
  }
  return p.pvm ? PVM_WARNING : null;
}
