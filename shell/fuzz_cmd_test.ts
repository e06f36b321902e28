import assert from "node:assert/strict";
import { fuzzMain, parseFuzzArgs } from "./fuzz_cmd.ts";

Deno.test("parseFuzzArgs reads the QEMU-fuzzer-like options and defaults to 60 s", () => {
  const o = parseFuzzArgs([
    "--target",
    "rtc,pit",
    "--seed=7",
    "--runs",
    "10",
    "--crashes",
    "c",
    "--coverage",
    "state",
  ]);
  assert.ok(o !== "help");
  assert.deepEqual(o.targets, ["rtc", "pit"]);
  assert.equal(o.seed, 7);
  assert.equal(o.runs, 10);
  assert.equal(o.timeSec, undefined);
  assert.equal(o.crashes, "c");
  assert.equal(o.coverage, "state");
  const d = parseFuzzArgs([]);
  assert.ok(d !== "help" && d.timeSec === 60 && d.coverage === "v8");
  assert.equal(parseFuzzArgs(["--help"]), "help");
  assert.throws(() => parseFuzzArgs(["--seed", "x"]), /--seed expects a non-negative number, got "x"/);
  assert.throws(() => parseFuzzArgs(["--coverage", "gcov"]), /--coverage expects v8 or state/);
  assert.throws(() => parseFuzzArgs(["--bogus"]), /unknown option "--bogus"/);
  assert.throws(() => parseFuzzArgs(["--replay"]), /--replay expects a path/);
});

Deno.test("fuzz --replay exits 0 for a clean reproducer and 1 for an unreadable file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.writeTextFileSync(`${dir}/ok.qtest`, "outb 0x70 0x0\ninb 0x71\n");
    assert.equal(await fuzzMain(["--replay", `${dir}/ok.qtest`]), 0);
    assert.equal(await fuzzMain(["--replay", `${dir}/missing.qtest`]), 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("fuzz with --runs writes the report files and exits 0 without findings", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const code = await fuzzMain([
      "--target",
      "serial0",
      "--runs",
      "20",
      "--quiet",
      "--report",
      dir,
      "--corpus",
      `${dir}/corpus`,
    ]);
    assert.equal(code, 0);
    assert.match(
      Deno.readTextFileSync(`${dir}/coverage.svg`),
      /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/,
    );
    assert.match(Deno.readTextFileSync(`${dir}/report.txt`), /^fuzz: 20 execs in/);
    assert.ok([...Deno.readDirSync(`${dir}/corpus`)].length > 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
