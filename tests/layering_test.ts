/**
 * The import graph keeps its layers: value imports point down `main.ts → shell/ → plugins/ → devices/ →
 * core/`, and no file-level import cycle exists among value imports (`import type` is erased and may point
 * anywhere). The graph is `deno info --json` over main.ts and every non-test source file of the four layers
 * (so files main.ts does not reach, such as plugins, are checked too). Dynamic `import()` counts as a value
 * import.
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url);
const ROOT_PATH = ROOT.pathname;
const LAYERS = ["main.ts", "shell/", "plugins/", "devices/", "core/"];

/** Layer rank of a repository file (0 = main.ts … 4 = core/), or -1 outside the layered tree. */
export function layerOf(rel: string): number {
  if (rel === "main.ts") return 0;
  return LAYERS.findIndex((l, i) => i > 0 && rel.startsWith(l));
}

interface InfoModule {
  specifier: string;
  dependencies?: { specifier: string; code?: { specifier: string }; type?: { specifier: string } }[];
}

/** Product source files: every .ts under the layers except tests and test utilities. */
async function sourceFiles(): Promise<string[]> {
  const out: string[] = ["main.ts"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, ROOT))) {
      const rel = `${dir}${e.name}`;
      if (e.isDirectory) await walk(`${rel}/`);
      else if (e.name.endsWith(".ts") && !/(_test|_test_util)\.ts$/.test(e.name)) out.push(rel);
    }
  };
  for (const l of LAYERS.slice(1)) await walk(l);
  return out.sort();
}

/** Value edges (file → files it imports for their values), repository-relative. */
async function valueGraph(files: string[]): Promise<Map<string, Set<string>>> {
  const dir = await Deno.makeTempDir();
  const rootFile = `${dir}/all.ts`;
  await Deno.writeTextFile(rootFile, files.map((f) => `import "${new URL(f, ROOT).href}";\n`).join(""));
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", rootFile],
    cwd: ROOT_PATH,
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dir, { recursive: true });
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  const info = JSON.parse(new TextDecoder().decode(r.stdout)) as { modules: InfoModule[] };
  const rel = (s: string) => s.startsWith(ROOT.href) ? s.slice(ROOT.href.length) : null;
  const g = new Map<string, Set<string>>();
  for (const m of info.modules) {
    const from = rel(m.specifier);
    if (!from || !from.endsWith(".ts") || from.startsWith("/")) continue;
    const to = new Set<string>();
    for (const d of m.dependencies ?? []) {
      const t = d.code?.specifier ? rel(d.code.specifier) : null;
      if (t) to.add(t);
    }
    g.set(from, to);
  }
  return g;
}

/** Strongly connected components with more than one file (Tarjan). */
function cycles(g: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

const graph = await valueGraph(await sourceFiles());

Deno.test("value imports point down main.ts → shell → plugins → devices → core", () => {
  const bad: string[] = [];
  for (const [from, tos] of graph) {
    const a = layerOf(from);
    if (a < 0) continue;
    for (const to of tos) {
      const b = layerOf(to);
      if (b < a) bad.push(`${from} → ${to}`);
    }
  }
  assert.deepEqual(bad, []);
});

Deno.test("no file-level cycles among value imports", () => {
  assert.deepEqual(cycles(graph), []);
});

Deno.test("the layering check can fail: an upward edge and a cycle are found", () => {
  const g = new Map([["core/a.ts", new Set(["shell/b.ts"])], ["shell/b.ts", new Set(["core/a.ts"])]]);
  assert.ok(layerOf("shell/b.ts") < layerOf("core/a.ts"));
  assert.deepEqual(cycles(g), [["core/a.ts", "shell/b.ts"]]);
  assert.ok(graph.size > 100, `graph has only ${graph.size} files`);
});
