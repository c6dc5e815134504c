"use strict";
// The track record page: GET /api/track-record, drawn as SVG plots and a table.
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const W = 520, H = 240, PAD = { left: 44, right: 12, top: 10, bottom: 34 };
let record = null;

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function say(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = kind || "";
}

function fmt(x, digits = 3) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }

// a plot of points with interval bars over x; `ref` are horizontal reference lines, `band` a shaded range
function plot(svg, points, { xMax, yMin, yMax, ref = [], band = null, xLabel, xTicks = [], diagonal = false }) {
  svg.replaceChildren();
  const x = (v) => PAD.left + (v / xMax) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - yMin) / (yMax - yMin)) * (H - PAD.top - PAD.bottom);
  svg.append(el("rect", { x: PAD.left, y: PAD.top, width: W - PAD.left - PAD.right, height: H - PAD.top - PAD.bottom,
                          class: "frame" }));
  if (band) svg.append(el("rect", { x: PAD.left, y: y(band[1]), width: W - PAD.left - PAD.right,
                                     height: y(band[0]) - y(band[1]), class: "goal" }));
  if (diagonal) svg.append(el("line", { x1: x(0), y1: y(0), x2: x(xMax), y2: y(xMax), class: "ref" }));
  for (const r of ref) svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(r), y2: y(r), class: "ref" }));
  for (let i = 0; i <= 4; i++) {
    const v = yMin + (i / 4) * (yMax - yMin);
    svg.append(el("text", { x: PAD.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, v.toFixed(2)));
  }
  for (const t of xTicks) {
    svg.append(el("text", { x: x(t), y: H - PAD.bottom + 12, class: "tick", "text-anchor": "middle" }, String(t)));
  }
  svg.append(el("text", { x: (W + PAD.left) / 2, y: H - 3, class: "tick", "text-anchor": "middle" }, xLabel));
  let drawn = 0;
  for (const p of points) {
    if (p.y === null || p.y === undefined) continue;
    const clamp = (v) => Math.min(yMax, Math.max(yMin, v));
    if (p.low !== undefined) svg.append(el("line", { x1: x(p.x), x2: x(p.x), y1: y(clamp(p.low)), y2: y(clamp(p.high)),
                                                     class: "interval" }));
    svg.append(el("circle", { cx: x(p.x), cy: y(clamp(p.y)), r: 3, class: "point" }));
    drawn++;
  }
  svg.dataset.points = String(drawn);
}

function draw() {
  const version = record.versions.find((v) => v.model_version === $("version").value) || record.versions[0];
  const body = $("horizons").querySelector("tbody");
  body.replaceChildren();
  if (!version) {
    $("plots").hidden = true;
    $("horizons").hidden = true;
    say(`No scored forecast of the ${record.timeframe} ledger yet in the last ${record.days} days: ` +
        "forecasts are scored once their candles close.", "stale");
    return;
  }
  const ok = version.horizons.filter((h) => h.status === "ok");
  say(ok.length ? `${version.forecasts} forecasts of ${version.model_version} scored; horizons with fewer than ` +
      `${record.min_n} scored forecasts say "not enough data yet".` :
      `not enough data yet: every horizon has fewer than ${record.min_n} scored forecasts of ${version.model_version}.`,
      ok.length ? "" : "stale");
  const xMax = 31, xTicks = [1, 5, 10, 15, 20, 25, 30];
  const coverage = ok.map((h) => ({ x: h.horizon, y: h.coverage_80.value, low: h.coverage_80.low,
                                    high: h.coverage_80.high }));
  const floor = Math.max(0, Math.floor(10 * Math.min(0.5, ...coverage.map((p) => p.low))) / 10);
  plot($("coverage-plot"), coverage, { xMax, yMin: floor, yMax: 1.0, ref: [0.8], band: [0.77, 0.83], xTicks,
                                       xLabel: "horizon (candles ahead)" });
  const ratios = ok.map((h) => ({ x: h.horizon, y: h.mae_ratio.value, low: h.mae_ratio.low, high: h.mae_ratio.high }));
  const top = Math.max(1.1, ...ratios.map((p) => p.high));
  const bottom = Math.min(0.9, ...ratios.map((p) => p.low));
  plot($("mae-plot"), ratios, { xMax, yMin: bottom, yMax: top, ref: [1.0], xTicks, xLabel: "horizon (candles ahead)" });
  plot($("reliability-plot"), version.reliability.map((b) => ({ x: b.mean_confidence, y: b.hit_rate })),
       { xMax: 1.0, yMin: 0, yMax: 1.0, diagonal: true, xTicks: [0, 0.25, 0.5, 0.75, 1],
         xLabel: "stated confidence (diagonal: calibrated)" });
  $("plots").hidden = false;
  for (const h of version.horizons) {
    const row = document.createElement("tr");
    const cells = h.status === "ok" ? [
      h.horizon, h.status, h.n,
      `${fmt(h.mae_ratio.value)} [${fmt(h.mae_ratio.low)}, ${fmt(h.mae_ratio.high)}]`,
      h.dm_statistic === null ? "–" : `${fmt(h.dm_statistic, 2)} (${fmt(h.dm_p_value)})`,
      h.directional_accuracy === null ? "none called" : `${fmt(h.directional_accuracy)} of ${h.called}`,
      `${fmt(h.coverage_80.value)} [${fmt(h.coverage_80.low)}, ${fmt(h.coverage_80.high)}]`,
      h.interval_score_ratio === null ? "–" :
        `${fmt(h.interval_score_ratio.value)} [${fmt(h.interval_score_ratio.low)}, ${fmt(h.interval_score_ratio.high)}]`,
    ] : [h.horizon, h.status, h.n, "", "", "", "", ""];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = String(c);
      row.append(td);
    }
    body.append(row);
  }
  $("horizons").hidden = false;
}

async function load() {
  say("Loading the track record…");
  const url = `/api/track-record?timeframe=${encodeURIComponent($("timeframe").value)}&days=${$("days").value}`;
  try {
    const response = await fetch(url);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    record = body;
  } catch (err) {
    say(`Could not load the track record: ${err.message}`, "error");
    return;
  }
  const head = record.ledger_head;
  $("head-seq").textContent = String(head.seq);
  $("head-hash").textContent = head.hash;
  $("head-made").textContent = head.made_at ? new Date(head.made_at + (head.made_at.endsWith("Z") ? "" : "Z"))
    .toISOString().replace(".000Z", " UTC") : "(no forecast entered yet)";
  const select = $("version");
  select.replaceChildren(...record.versions.map((v) => new Option(v.model_version, v.model_version)));
  select.hidden = record.versions.length < 2;
  draw();
}

$("timeframe").addEventListener("change", load);
$("days").addEventListener("change", load);
$("version").addEventListener("change", draw);
const wanted = new URLSearchParams(location.search).get("timeframe");
if (wanted && [...$("timeframe").options].some((o) => o.value === wanted)) $("timeframe").value = wanted;
load();
