/**
 * Campaign report: an SVG plot of coverage over time and a per-device / per-file coverage table.
 * @module
 */
import type { FuzzProgress, FuzzResult } from "./engine.ts";

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** An SVG line plot of coverage (left axis) and corpus size (dashed) over seconds. */
export function coverageSvg(timeline: readonly FuzzProgress[], title: string): string {
  const W = 640;
  const H = 360;
  const L = 60;
  const R = 20;
  const T = 40;
  const B = 40;
  const pts = timeline.length
    ? timeline
    : [{ execs: 0, elapsedMs: 0, execsPerSec: 0, coverage: 0, corpus: 0, findings: 0 }];
  const maxT = Math.max(1, ...pts.map((p) => p.elapsedMs / 1000));
  const maxY = Math.max(1, ...pts.map((p) => Math.max(p.coverage, p.corpus)));
  const x = (t: number) => L + (t / maxT) * (W - L - R);
  const y = (v: number) => H - B - (v / maxY) * (H - T - B);
  const line = (f: (p: FuzzProgress) => number) =>
    [{ elapsedMs: 0, v: 0 }, ...pts.map((p) => ({ elapsedMs: p.elapsedMs, v: f(p) }))]
      .map((p, i) => `${i ? "L" : "M"}${x(p.elapsedMs / 1000).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  let ticks = "";
  for (let i = 0; i <= 4; i++) {
    const v = Math.round((maxY * i) / 4);
    const t = (maxT * i) / 4;
    ticks += `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`;
    ticks += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`;
    ticks += `<text x="${x(t)}" y="${H - B + 16}" text-anchor="middle">${t.toFixed(t < 10 ? 1 : 0)}</text>`;
  }
  const finds = pts.filter((p, i) => p.findings > (i ? pts[i - 1].findings : 0))
    .map((p) => `<circle cx="${x(p.elapsedMs / 1000)}" cy="${y(p.coverage)}" r="4" fill="#c00"/>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>
${ticks}
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>
<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>
<text x="${W / 2}" y="${H - 6}" text-anchor="middle">seconds</text>
<path d="${line((p) => p.coverage)}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<path d="${line((p) => p.corpus)}" fill="none" stroke="#ff7f0e" stroke-width="1.5" stroke-dasharray="5,3"/>
${finds}
<text x="${L + 10}" y="${T + 12}" fill="#1f77b4">coverage</text>
<text x="${L + 10}" y="${T + 26}" fill="#ff7f0e">corpus</text>
<text x="${L + 10}" y="${T + 40}" fill="#c00">● new finding</text>
</svg>
`;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** The text report: totals, per-device table, per-file V8 coverage, findings. */
export function textReport(r: FuzzResult, opts: { coverage: string; seed: number }): string {
  const secs = r.elapsedMs / 1000;
  let s =
    `fuzz: ${r.execs} execs in ${secs.toFixed(1)} s (${
      (r.execs / Math.max(secs, 1e-9)).toFixed(0)
    } execs/s), ` +
    `feedback ${opts.coverage}, seed ${opts.seed}\n`;
  s +=
    `coverage: ${r.coverage} features, ${r.v8.blocks} V8 blocks in devices/; corpus ${r.corpus.length}; findings ${r.findings.length}\n\n`;
  s += "device                      ops sent   states\n";
  for (const d of r.devices) {
    s += `${d.device.padEnd(26)} ${String(d.ops).padStart(10)} ${String(d.states).padStart(8)}\n`;
  }
  s += "\nfile (V8 block coverage)         blocks  of seen  code covered (approx)\n";
  for (const f of r.v8.perFile()) {
    s += `${f.file.padEnd(32)} ${String(f.blocks).padStart(6)} ${String(f.blocksSeen).padStart(8)}  ${
      pct(f.share).padStart(8)
    }\n`;
  }
  if (r.findings.length) {
    s += "\nfindings:\n";
    for (const f of r.findings) {
      s +=
        `  ${f.finding.kind} in ${f.finding.device}: ${f.finding.message} (${f.ops.length} ops, from ${f.originalOps})\n`;
    }
  }
  return s;
}
