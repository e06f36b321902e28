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
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
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
  const cached = dir + "cache/" + name;
  try {
    Deno.statSync(cached);
    return cached;
  } catch {
    // unpack below
  }
  const packed = Deno.readFileSync(dir + name + ".gz");
  const data = await gunzip(packed);
  const want = expectedSums(dir).get(name);
  if (want && await sha256Hex(data) !== want) {
    throw new Error(`Default guest file '${name}' does not match guest/SHA256SUMS`);
  }
  Deno.mkdirSync(dir + "cache", { recursive: true });
  const tmp = `${cached}.${Deno.pid}.tmp`;
  Deno.writeFileSync(tmp, data);
  Deno.renameSync(tmp, cached);
  return cached;
}
