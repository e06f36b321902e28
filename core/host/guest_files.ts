/**
 * The default guest shipped in `guest/`: kernels, initramfs and root disk. Large files are stored
 * gzip-compressed in the repository and unpacked on first use into `guest/cache/` (git-ignored),
 * verified against guest/SHA256SUMS.
 * @module
 */

/** Absolute path of the repository's guest/ directory. */
export function guestDir(): string {
  return new URL("../../guest/", import.meta.url).pathname;
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

function expectedSums(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  try {
    for (const line of Deno.readTextFileSync(dir + "SHA256SUMS").split("\n")) {
      const [sum, name] = line.trim().split(/\s+/);
      if (sum && name) m.set(name, sum);
    }
  } catch {
    // No checksum file: files are used unverified.
  }
  return m;
}

async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Path of a default-guest file ("vmlinux", "bzImage", "initramfs.cpio.gz", "rootfs.ext4"), unpacking
 * `NAME.gz` into guest/cache/ when only the compressed form is in the repository.
 */
export async function guestFile(name: string): Promise<string> {
  const dir = guestDir();
  try {
    Deno.statSync(dir + name);
    return dir + name;
  } catch {
    // fall through to the compressed copy
  }
  const want = expectedSums(dir).get(name);
  for (const cacheDir of cacheDirs(dir)) {
    try {
      const cached = cacheDir + name;
      // A copy unpacked from an older guest/ (shared user caches outlive checkouts) must not be used.
      if (want && await sha256Hex(Deno.readFileSync(cached)) !== want) continue;
      return cached;
    } catch {
      // not unpacked there yet
    }
  }
  const packed = Deno.readFileSync(dir + name + ".gz");
  const data = await gunzip(packed);
  if (want && await sha256Hex(data) !== want) {
    throw new Error(`Default guest file '${name}' does not match guest/SHA256SUMS`);
  }
  let lastErr: unknown = null;
  for (const cacheDir of cacheDirs(dir)) {
    // guest/cache/ in a checkout; a user cache directory for a compiled binary (its guest/ is read-only).
    try {
      Deno.mkdirSync(cacheDir, { recursive: true });
      const cached = cacheDir + name;
      const tmp = `${cached}.${Deno.pid}.tmp`;
      Deno.writeFileSync(tmp, data);
      Deno.renameSync(tmp, cached);
      return cached;
    } catch (e) {
      lastErr = e;
    }
  }
  throw new Error(`Cannot unpack default guest file '${name}': ${(lastErr as Error)?.message}`);
}

function cacheDirs(dir: string): string[] {
  const dirs = [dir + "cache/"];
  const home = Deno.env.get("XDG_CACHE_HOME") ??
    (Deno.env.get("HOME") ? `${Deno.env.get("HOME")}/.cache` : null);
  if (home) dirs.push(`${home}/microvm-ts/`);
  dirs.push("/tmp/microvm-ts-cache/");
  return dirs;
}
