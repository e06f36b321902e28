import assert from "node:assert/strict";
import { isCliAction, parseCommandLine } from "./mod.ts";
import { MICROVM_DEVICES } from "../../devices/microvm.ts";
import type { VmConfig } from "../../core/config.ts";

const PROG = "qemu-system-x86_64";

function parse(args: string[]): VmConfig {
  const r = parseCommandLine(args, PROG, { devices: MICROVM_DEVICES });
  if (isCliAction(r)) throw new Error("unexpected help");
  return r;
}

function error(args: string[]): string {
  try {
    parse(args);
  } catch (e) {
    return (e as Error).message;
  }
  return "no error";
}

Deno.test("-fsdev local and -device virtio-9p-device reach the config", () => {
  const c = parse([
    "-fsdev",
    "local,id=fs0,path=/srv/x,security_model=mapped,readonly=on",
    "-device",
    "virtio-9p-device,fsdev=fs0,mount_tag=host0",
  ]);
  assert.deepEqual(c.fsdevs, [{
    id: "fs0",
    driver: "local",
    path: "/srv/x",
    securityModel: "mapped-xattr",
    readOnly: true,
  }]);
  assert.deepEqual(c.devices, [{ driver: "virtio-9p-device", props: { fsdev: "fs0", mount_tag: "host0" } }]);
});

Deno.test("-virtfs is an fsdev (id = mount_tag) plus a virtio-9p-device", () => {
  const c = parse(["-virtfs", "local,path=/srv,mount_tag=t0,security_model=none"]);
  assert.equal(c.fsdevs?.[0].id, "t0");
  assert.deepEqual(c.devices, [{ driver: "virtio-9p-device", props: { fsdev: "t0", mount_tag: "t0" } }]);
});

Deno.test("-fsdev errors are QEMU's lines", () => {
  assert.equal(
    error(["-fsdev", "local,path=/x,security_model=none"]),
    "-fsdev local,path=/x,security_model=none: fsdev: No id specified",
  );
  assert.equal(
    error(["-fsdev", "local,id=a,path=/x"]),
    "-fsdev local,id=a,path=/x: security_model property not set",
  );
  assert.equal(
    error(["-fsdev", "local,id=a,path=/x,security_model=bogus"]),
    "-fsdev local,id=a,path=/x,security_model=bogus: invalid security_model property 'bogus'",
  );
  assert.equal(
    error(["-fsdev", "local,id=a,security_model=none"]),
    "-fsdev local,id=a,security_model=none: path property not set",
  );
  assert.equal(error(["-fsdev", "nfs,id=a"]), "-fsdev nfs,id=a: fsdev: fsdriver nfs not found");
  assert.equal(
    error(["-virtfs", "local,path=/x"]),
    "-virtfs local,path=/x: Usage: -virtfs fsdriver,mount_tag=tag",
  );
  assert.match(
    error([
      "-fsdev",
      "local,id=a,path=/x,security_model=none",
      "-fsdev",
      "local,id=a,path=/y,security_model=none",
    ]),
    /Duplicate ID 'a' for fsdev/,
  );
});

Deno.test("-device help lists the host-integration devices under QEMU's categories", () => {
  const r = parseCommandLine(["-device", "help"], PROG, { devices: MICROVM_DEVICES });
  assert.ok(isCliAction(r));
  const text = r.text;
  const storage = text.slice(text.indexOf("Storage devices:"));
  assert.match(storage, /name "virtio-9p-device", bus virtio-bus/);
  const misc = text.slice(text.indexOf("Misc devices:"));
  for (const n of ["virtio-balloon-device", "virtio-vsock-device", "vhost-vsock-device"]) {
    assert.match(misc, new RegExp(`name "${n}", bus virtio-bus`));
  }
  const h = parseCommandLine(["-device", "virtio-balloon-device,help"], PROG, { devices: MICROVM_DEVICES });
  assert.ok(isCliAction(h));
  assert.match(h.text, /deflate-on-oom=<bool>/);
  assert.match(h.text, /free-page-reporting=<bool>/);
});
