import assert from "node:assert/strict";
import { fuzzParallel } from "./fuzz_par.ts";
import { fuzzMain, parseFuzzArgs } from "./fuzz_cmd.ts";

const buggy = new URL("../tests/lib/fuzz_buggy_port.ts", import.meta.url).href;

Deno.test({
  name: "fuzz --jobs 2: workers share their corpus and the buggy port's crash is reported once",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const r = await fuzzParallel({
      targets: ["buggy0", "rtc", "serial0"],
      seed: 3,
      runs: 1200,
      coverage: "state",
      maxOps: 48,
      hangMs: 60_000,
      fresh: false,
      seeds: [],
      prepareModule: buggy,
    }, 2);
    assert.equal(r.jobs, 2);
    assert.equal(r.execs, 1200);
    assert.equal(r.workers.length, 2);
    // One distinct finding however many workers hit it.
    assert.equal(r.findings.length, 1);
    assert.equal(r.findings[0].finding.device, "buggy0");
    assert.match(r.findings[0].finding.message, /RangeError: index out of range/);
    // Each worker kept inputs (published them) and ran inputs the other one found.
    for (const w of r.workers) {
      assert.ok(w.published > 0, `published ${w.published}`);
      assert.ok(w.imported > 0, `imported ${w.imported}`);
      assert.ok(w.importedKept <= w.imported);
    }
    assert.ok(r.workers[0].imported <= r.workers[1].published);
    assert.ok(r.workers[1].imported <= r.workers[0].published);
    assert.equal(r.corpus.length > 0, true);
  },
});

Deno.test("parseFuzzArgs: --jobs defaults to the core count and takes N", () => {
  const d = parseFuzzArgs([]);
  assert.ok(d !== "help" && d.jobs === Math.max(1, navigator.hardwareConcurrency || 1));
  const o = parseFuzzArgs(["--jobs", "3"]);
  assert.ok(o !== "help" && o.jobs === 3);
  assert.throws(() => parseFuzzArgs(["--jobs", "x"]), /--jobs expects a non-negative number/);
});

Deno.test("fuzz --jobs 1 stays deterministic for a seed (same corpus files twice)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = async (sub: string) => {
      const code = await fuzzMain([
        "--jobs",
        "1",
        "--target",
        "rtc,pit",
        "--seed",
        "5",
        "--runs",
        "60",
        "--coverage",
        "state",
        "--quiet",
        "--corpus",
        `${dir}/${sub}`,
      ]);
      assert.equal(code, 0);
      return [...Deno.readDirSync(`${dir}/${sub}`)].map((e) => e.name).sort();
    };
    const a = await run("a");
    const b = await run("b");
    assert.ok(a.length > 0);
    assert.deepEqual(a, b);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "fuzz --jobs 2 with an unknown target is one user error, not a worker crash",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await assert.rejects(
      fuzzParallel({
        targets: ["bogus"],
        seed: 1,
        runs: 4,
        coverage: "state",
        maxOps: 8,
        hangMs: 1000,
        fresh: false,
        seeds: [],
      }, 2),
      (e: Error) => e.name === "UserError" && /Unknown fuzz target "bogus"/.test(e.message),
    );
  },
});
