import assert from "node:assert/strict";
import { buildBoard } from "../tests/lib/machine.ts";
import { findBalloon } from "./hostdev.ts";

Deno.test("info qtree shows virtio-balloon-device with its properties on a virtio-mmio bus", () => {
  const { machine } = buildBoard([
    "-M",
    "microvm",
    "-device",
    "virtio-balloon-device,id=b0,deflate-on-oom=on",
  ]);
  const q = machine.infoQtree();
  assert.match(q, /dev: virtio-balloon-device, id "b0"/);
  assert.match(q, /deflate-on-oom = true/);
  assert.match(q, /free-page-reporting = false/);
  assert.ok(machine.kernelCmdline.includes("virtio_mmio.device=512@0xfeb00e00:12"));
  assert.notEqual(findBalloon(machine.virtioDevices().values()), null);
});

Deno.test("virtio-9p-device without -fsdev and vhost-vsock-device are refused with one line", () => {
  assert.throws(
    () => buildBoard(["-M", "microvm", "-device", "virtio-9p-device,fsdev=x,mount_tag=t"]),
    /9pfs device couldn't find fsdev with the id = x/,
  );
  assert.throws(
    () => buildBoard(["-M", "microvm", "-device", "vhost-vsock-device,guest-cid=3"]),
    /vhost-vsock-device: kernel vhost is not supported/,
  );
  assert.throws(
    () => buildBoard(["-M", "microvm", "-device", "virtio-balloon-device,free-page-hint=on"]),
    /free-page-hint=on is not supported/,
  );
});
