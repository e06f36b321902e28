/**
 * qom-list-types against QEMU 7.2's own answer (tests/golden/qemu-7.2-qom-list-types.json, captured with
 * Debian's qemu-system-x86 7.2: `-M microvm,acpi=off -qmp stdio`, `qom-list-types abstract=true`): every type
 * we implement has QEMU's parent and abstract flag, and `implements=` answers what QEMU answers restricted to
 * the types we implement.
 * @module
 */
import assert from "node:assert/strict";
import { MICROVM_DEVICES } from "../devices/microvm.ts";
import { qomListTypes, type QomTypeInfo } from "../devices/qom_types.ts";
import { QmpSession } from "../shell/qmp.ts";
import { makeFakeMachine } from "../shell/_fake_machine_test_util.ts";

const golden: QomTypeInfo[] = JSON.parse(
  await Deno.readTextFile(new URL("./golden/qemu-7.2-qom-list-types.json", import.meta.url)),
);
const qemu = new Map(golden.map((t) => [t.name, t]));

function qemuIsA(name: string, want: string): boolean {
  for (let n: string | undefined = name; n; n = qemu.get(n)?.parent) if (n === want) return true;
  return false;
}

/** Our own types QEMU 7.2 does not have (listed with the closest QEMU parent). */
const EXTENSIONS = new Set(["virtio-vsock-device"]);

Deno.test("every type we implement is in QEMU 7.2's list with the same parent and abstract flag", () => {
  const ours = qomListTypes(MICROVM_DEVICES, { abstract: true });
  assert.ok(ours.length > 30, `only ${ours.length} types`);
  for (const t of ours) {
    if (EXTENSIONS.has(t.name)) {
      assert.ok(!qemu.has(t.name) && qemu.has(t.parent!), t.name);
      continue;
    }
    const q = qemu.get(t.name);
    assert.ok(q, `${t.name} is not a QEMU 7.2 type`);
    assert.deepEqual({ ...t }, { ...q }, t.name);
  }
  // Every -device driver of the registry is listed (devices that register appear by registering).
  const names = new Set(ours.map((t) => t.name));
  for (const d of MICROVM_DEVICES) assert.ok(names.has(d.driver), d.driver);
});

Deno.test("qom-list-types implements= answers as QEMU's list restricted to our types", () => {
  const ours = new Set(qomListTypes(MICROVM_DEVICES, { abstract: true }).map((t) => t.name));
  for (const want of ["device", "virtio-device", "sys-bus-device", "isa-device", "cpu", "bus", "machine"]) {
    for (const abstract of [false, true]) {
      const expect = golden.filter((t) =>
        ours.has(t.name) && (abstract || !t.abstract) && qemuIsA(t.name, want)
      )
        .map((t) => t.name).sort();
      const got = qomListTypes(MICROVM_DEVICES, { implements: want, abstract }).map((t) => t.name)
        .filter((n) => !EXTENSIONS.has(n)).sort();
      assert.deepEqual(got, expect, `implements=${want} abstract=${abstract}`);
    }
  }
  const devs = qomListTypes(MICROVM_DEVICES, { implements: "virtio-device" }).map((t) => t.name);
  assert.ok(devs.includes("virtio-blk-device") && devs.includes("virtio-net-device"), devs.join(" "));
  assert.deepEqual(qomListTypes(MICROVM_DEVICES, { implements: "no-such-type" }), []);
});

Deno.test("QMP qom-list-types: implements=device finds the devices (libqos-style discovery)", () => {
  const out: string[] = [];
  const q = new QmpSession(makeFakeMachine(), { send: (t) => out.push(t) });
  q.opened();
  q.input('{"execute":"qmp_capabilities"}{"execute":"qom-list-types","arguments":{"implements":"device"}}');
  const list = JSON.parse(out.at(-1)!).return as QomTypeInfo[];
  const names = list.map((t) => t.name);
  for (const n of ["virtio-mmio", "isa-serial", "mc146818rtc", "fw_cfg_io", "virtio-blk-device", "ioapic"]) {
    assert.ok(names.includes(n), n);
  }
  assert.ok(!names.includes("device"), "abstract types need abstract=true");
  assert.deepEqual(list.find((t) => t.name === "virtio-blk-device"), {
    name: "virtio-blk-device",
    parent: "virtio-device",
  });
});

Deno.test("qom-list walks /, /machine and its containers as QEMU's tree", () => {
  const out: string[] = [];
  const q = new QmpSession(makeFakeMachine(), { send: (t) => out.push(t) });
  q.opened();
  const call = (cmd: unknown) => {
    q.input(JSON.stringify(cmd));
    return JSON.parse(out.at(-1)!);
  };
  call({ execute: "qmp_capabilities" });
  const root = call({ execute: "qom-list", arguments: { path: "/" } }).return as {
    name: string;
    type: string;
  }[];
  assert.deepEqual(root.find((p) => p.name === "machine"), {
    name: "machine",
    type: "child<microvm-machine>",
  });
  assert.ok(root.some((p) => p.name === "objects" && p.type === "child<container>"));
  const mach = call({ execute: "qom-list", arguments: { path: "/machine" } }).return as { name: string }[];
  assert.ok(mach.some((p) => p.name === "unattached"), JSON.stringify(mach));
  assert.deepEqual(
    call({ execute: "qom-get", arguments: { path: "/machine/unattached", property: "type" } }),
    {
      return: "container",
    },
  );
});
