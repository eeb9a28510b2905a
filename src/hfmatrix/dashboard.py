"""The HTML dashboard: one self-contained page (inline CSS and JS, no network) that draws
summary.json's totals, what changed since the baseline, class x hardware grid (classes
grouped under their family; columns named by backend and stack), findings, models,
performance, drift between stacks and hardware, coverage and environments."""

from __future__ import annotations

import json
import math
from typing import Any

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hfmatrix report</title>
<style>
body { font: 14px/1.4 system-ui, "Segoe UI", sans-serif; margin: 1.5em; color: #222; }
h1 { margin: 0 0 .2em; }
h2 { margin: 1.4em 0 .4em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .4em 0 1em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; }
.meta, .hint { color: #555; }
.badge { display: inline-block; padding: 2px 8px; margin-right: 6px; border-radius: 3px; }
.s-passed { background: #c8e6c9; }
.s-failed { background: #ffcc80; }
.s-error { background: #ef9a9a; }
.s-skipped { background: #e0e0e0; }
.s-declared { background: #d1c4e9; }
#grid tr.family th, #grid tr.family td { border-top: 2px solid #888; font-weight: bold; }
#grid tr.model-class th { font-weight: normal; padding-left: 1.6em; }
#grid tr.model-class th, #grid tr.model-class td { padding-top: 2px; padding-bottom: 2px; }
#grid button.toggle { font: inherit; border: 0; background: none; cursor: pointer; padding: 0; }
.f-declared { background: #d1c4e9; }
.f-new { background: #ffcc80; }
.f-stale { background: #fff59d; }
#grid td { white-space: pre-line; min-width: 9em; cursor: pointer; }
#grid td.s-none { cursor: default; color: #999; text-align: center; }
#grid td.selected { outline: 3px solid #1565c0; outline-offset: -3px; }
#grid thead th .label { display: block; font-weight: normal; font-size: 12px; color: #555; }
#grid td[data-since] { box-shadow: inset 4px 0 0 #1565c0; }
#grid td[data-since*="new failure"] { box-shadow: inset 4px 0 0 #c62828; }
#since td { white-space: nowrap; }
#since td:last-child { white-space: normal; min-width: 20em; overflow-wrap: anywhere; }
.t-bad { background: #ef9a9a; }
.t-good { background: #c8e6c9; }
.t-note { background: #fff59d; }
#drift td { white-space: nowrap; }
.d-agree { background: #c8e6c9; }
.d-declared { background: #fff59d; }
.d-drift { background: #ffcc80; }
.o-passed { background: #c8e6c9; }
.o-near-bound { background: #fff59d; }
.o-failed { background: #ffcc80; }
.o-na { background: #eeeeee; }
#models th, #models td { white-space: nowrap; }
#models td:last-child { white-space: normal; min-width: 20em; overflow-wrap: anywhere; }
#charts { display: flex; flex-wrap: wrap; gap: 24px; }
svg.chart { font-size: 12px; }
svg.chart .title { font-weight: bold; }
svg.chart rect.bar { fill: #5c8fd6; }
svg.chart .whisker { stroke: #222; stroke-width: 1.5; }
svg.chart .tick { stroke: #e3e3e3; }
svg.chart .axis { fill: #555; }
</style>
</head>
<body>
<noscript>This page draws its tables with JavaScript; summary.md holds the same results.</noscript>
<main id="app"></main>
"""

_JS = r"""
"use strict";
const S = JSON.parse(document.getElementById("summary").textContent);
const STATUSES = ["passed", "failed", "error", "skipped", "timeout"];
const MODELS = S.models || [];
const MATRIX = S.matrix || {};
const CLASSES = S.classes || {};
const COLUMNS = S.columns || {};
const APP = document.getElementById("app");

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(value) {
  if (typeof value !== "number") return value == null ? "" : String(value);
  if (Number.isInteger(value)) return String(value);
  const size = Math.abs(value);
  return size < 1e-3 || size >= 1e5 ? value.toExponential(2) : String(+value.toPrecision(3));
}

function tone(status) {
  return status === "timeout" ? "error" : status || "none";
}

function section(title, ...nodes) {
  APP.append(el("h2", {}, title), ...nodes);
}

// rows: arrays of cells, each a value or {text, title, status}
function table(attrs, headers, rows) {
  const node = el("table", attrs);
  const head = node.createTHead().insertRow();
  for (const name of headers) head.append(el("th", {}, name));
  const body = node.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const value of row) {
      const cell = value !== null && typeof value === "object" ? value : {text: value};
      const cls = cell.status ? "s-" + tone(cell.status) : cell.cls;
      const td = el("td", cls ? {class: cls} : {}, fmt(cell.text));
      if (cell.title) td.title = cell.title;
      tr.append(td);
    }
  }
  return node;
}

function header() {
  const totals = S.totals || {};
  const line = el("p", {id: "totals"});
  line.append(el("span", {class: "badge"}, `${totals.total ?? MODELS.length} records`));
  for (const status of STATUSES) {
    const attrs = {class: "badge s-" + tone(status), "data-status": status};
    line.append(el("span", attrs, `${status} ${totals[status] || 0}`));
  }
  const meta = `Generated ${S.generated_at || "?"} from ${S.results_dir || "?"}`;
  APP.append(el("h1", {}, "hfmatrix report"), el("p", {class: "meta"}, meta), line);
}

// ---------------------------------------------------------------- grid and models

// A cell's lines; a class row's on one line (sep " · "), to keep 40+ classes readable
function cellText(cell, sep = "\n") {
  const counts = Object.entries(cell.counts || {}).filter(([, n]) => n);
  const lines = [counts.map(([status, n]) => `${status} ${n}`).join(", ") || cell.status];
  if (cell.status === "declared") lines.push("declared finding");
  if (cell.max_abs_diff != null) lines.push(`max |diff| ${fmt(cell.max_abs_diff)}`);
  if (cell.greedy_ids_match === false) lines.push("greedy ids differ");
  const since = Object.entries(cell.since || {});
  if (since.length) lines.push("since baseline: " + since.map(([e, n]) => `${e} ${n}`).join(", "));
  return lines.join(sep);
}

function reasons(family, column) {
  return MODELS.filter((m) => m.family === family && m.hardware === column)
    .filter((m) => m.status !== "passed")
    .map((m) => `${m.model_id} (${m.status}): ${m.reason || "no reason given"}`)
    .join("\n");
}

// A class cell's failing records, each with the declared finding it is
function findingLines(cell) {
  return (cell.findings || []).map((f) => `${f.model_id} (${f.status}` +
    (f.declared ? `, declared: ${f.declared}` : "") + `): ${f.reason || "no reason given"}`)
    .join("\n");
}

// One grid cell: its status colour, counts, and a click that lists its models
function gridCell(cell, attrs, title, sep) {
  attrs = {...attrs, "data-status": cell ? cell.status : "none",
           class: "s-" + tone(cell?.status)};
  const td = el("td", attrs, cell ? cellText(cell, sep) : "-");
  const since = Object.keys(cell?.since || {});
  if (since.length) td.dataset.since = since.join(",");
  if (cell) {
    if (title) td.title = title;
    td.tabIndex = 0;
    td.addEventListener("click", () => showModels(td));
    td.addEventListener("keydown", (e) => e.key === "Enter" && showModels(td));
  }
  return td;
}

// Families in bold, each with its classes below it (a click on the family folds them)
function grid() {
  const columns = [...new Set(Object.values(MATRIX).flatMap(Object.keys))].sort();
  const node = el("table", {id: "grid"});
  const head = node.createTHead().insertRow();
  head.append(el("th", {}, "family / class"));
  for (const name of columns) {
    const th = el("th", {"data-column": name}, name);
    const label = COLUMNS[name]?.label;
    if (label) th.append(el("span", {class: "label"}, label));
    head.append(th);
  }
  const body = node.createTBody();
  for (const family of Object.keys(MATRIX).sort()) {
    const classes = CLASSES[family] || {};
    const names = Object.keys(classes).sort();
    const tr = body.insertRow();
    tr.className = "family";
    tr.dataset.family = family;
    const th = el("th", {scope: "row"});
    if (names.length) {
      const toggle = el("button", {type: "button", class: "toggle", "aria-expanded": "true",
                                   "data-family": family}, `▾ ${family} (${names.length})`);
      toggle.addEventListener("click", () => fold(toggle));
      th.append(toggle);
    } else {
      th.textContent = family;
    }
    tr.append(th);
    for (const column of columns) {
      const cell = MATRIX[family][column];
      const attrs = {"data-family": family, "data-column": column};
      tr.append(gridCell(cell, attrs, cell && reasons(family, column)));
    }
    for (const name of names) {
      const row = body.insertRow();
      row.className = "model-class";
      Object.assign(row.dataset, {family, modelClass: name});
      row.append(el("th", {scope: "row"}, name));
      for (const column of columns) {
        const cell = classes[name][column];
        const attrs = {"data-family": family, "data-class": name, "data-column": column};
        row.append(gridCell(cell, attrs, cell && findingLines(cell), " · "));
      }
    }
  }
  return node;
}

// Fold or unfold a family's class rows
function fold(toggle) {
  const open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", String(open));
  toggle.textContent = (open ? "▾" : "▸") + toggle.textContent.slice(1);
  for (const row of document.querySelectorAll("#grid tr.model-class")) {
    if (row.dataset.family === toggle.dataset.family) row.hidden = !open;
  }
}

function environmentText(fingerprint) {
  const env = (S.environments || {})[fingerprint];
  if (!env) return "";
  return `python ${env.python}, torch ${env.torch}, transformers ${env.transformers}, ` +
    `${env.platform}`;
}

function modelRow(m) {
  const tests = m.tests || {};
  const reason = m.reason || "";
  return [
    m.family, {text: m.model_id, title: m.model_class},
    {text: m.hardware, title: m.label || COLUMNS[m.hardware]?.label || ""},
    {text: m.status, status: m.status},
    {text: tests.pipeline || "-", status: tests.pipeline},
    {text: tests.from_pretrained || "-", status: tests.from_pretrained},
    {text: m.max_abs_diff, title: m.atol == null ? "" : `atol ${fmt(m.atol)}`},
    {text: m.environment, title: environmentText(m.environment)}, m.host,
    {text: reason.length > 300 ? reason.slice(0, 299) + "…" : reason, title: reason},
  ];
}

function modelsTable() {
  const headers = ["family", "model", "hardware", "status", "pipeline", "from_pretrained",
                   "max |diff|", "environment", "host", "reason"];
  const node = table({id: "models"}, headers, MODELS.map(modelRow));
  MODELS.forEach((m, i) => {
    const tr = node.tBodies[0].rows[i];
    Object.assign(tr.dataset, {family: m.family, column: m.hardware, status: m.status,
                               modelClass: m.model_class || ""});
  });
  return node;
}

// Show the models of one grid cell (a td), or all of them (null).
function showModels(td) {
  const rows = [...document.querySelectorAll("#models tbody tr")];
  const wanted = td && td.dataset.class;  // a class cell; a family cell takes every class
  for (const tr of rows) {
    tr.hidden = td !== null &&
      (tr.dataset.family !== td.dataset.family || tr.dataset.column !== td.dataset.column ||
       (wanted !== undefined && tr.dataset.modelClass !== wanted));
  }
  for (const cell of document.querySelectorAll("#grid td.selected")) {
    cell.classList.remove("selected");
  }
  const shown = rows.filter((tr) => !tr.hidden).length;
  const line = document.getElementById("shown");
  if (td === null) {
    line.textContent = `All ${rows.length} results.`;
  } else {
    td.classList.add("selected");
    line.textContent = `${shown} of ${rows.length} results: ` +
      `${td.dataset.class || td.dataset.family} on ${td.dataset.column}.`;
    line.scrollIntoView({block: "nearest"});
  }
  document.getElementById("show-all").hidden = td === null;
}

// ---------------------------------------------------------------- performance charts

function median(values) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const TARGETS = ["forward", "generate"];

// {target: [[label, timings]]} per family x column, each model under forward, else generate
function performanceGroups() {
  const byTarget = {};
  for (const m of MODELS) {
    const perf = m.performance || {};
    const target = TARGETS.find((t) => perf[t] && typeof perf[t] === "object");
    if (!target) continue;
    const groups = (byTarget[target] ||= new Map());
    const label = `${m.family} · ${m.hardware}`;
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push({...perf[target], model: m.model_id});
  }
  const sorted = (groups) => [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(Object.entries(byTarget).map(([t, g]) => [t, sorted(g)]));
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= value);
}

// bars: [{label, value, whisker?, tip}]
function barChart(metric, title, unit, bars) {
  const width = 640, left = 230, right = 70, top = 30, row = 26, bottom = 40;
  const height = top + bars.length * row + bottom;
  const max = niceMax(Math.max(...bars.map((b) => Math.max(b.value, b.whisker ?? 0))));
  const x = (v) => left + (v / max) * (width - left - right);
  const chart = svg("svg", {class: "chart", "data-metric": metric, width, height,
                            viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title});
  chart.append(svg("text", {x: 0, y: 16, class: "title"}, title));
  for (let i = 0; i <= 4; i++) {
    const at = x((max * i) / 4);
    chart.append(svg("line", {class: "tick", x1: at, x2: at, y1: top, y2: height - bottom}));
    const label = {x: at, y: height - bottom + 14, "text-anchor": "middle", class: "axis"};
    chart.append(svg("text", label, fmt((max * i) / 4)));
  }
  const axis = {x: (left + width - right) / 2, y: height - 8, "text-anchor": "middle"};
  chart.append(svg("text", {...axis, class: "axis"}, unit));
  bars.forEach((bar, i) => {
    const middle = top + i * row + row / 2;
    chart.append(svg("text", {x: left - 6, y: middle + 4, "text-anchor": "end"}, bar.label));
    const rect = svg("rect", {class: "bar", x: left, y: middle - row / 2 + 4,
                              width: Math.max(1, x(bar.value) - left), height: row - 8});
    rect.append(svg("title", {}, bar.tip));
    chart.append(rect);
    let end = x(bar.value);
    if (bar.whisker != null) {
      end = Math.max(end, x(bar.whisker));
      chart.append(svg("line", {class: "whisker", x1: x(bar.value), x2: x(bar.whisker),
                                y1: middle, y2: middle}));
      chart.append(svg("line", {class: "whisker", x1: x(bar.whisker), x2: x(bar.whisker),
                                y1: middle - 5, y2: middle + 5}));
    }
    chart.append(svg("text", {x: end + 4, y: middle + 4, class: "axis"}, fmt(bar.value)));
  });
  return chart;
}

function latencyBars(groups) {
  return groups.map(([label, timings]) => ({
    label,
    value: median(timings.map((t) => t.p50_s * 1000)),
    whisker: median(timings.map((t) => t.p90_s * 1000)),
    tip: timings.map((t) => `${t.model}: p50 ${fmt(t.p50_s * 1000)} ms, ` +
                             `p90 ${fmt(t.p90_s * 1000)} ms`).join("\n"),
  })).filter((bar) => bar.value !== null);
}

// {unit: bars}: forward and generate count different things
function throughputBars(groups) {
  const byUnit = {};
  for (const [label, timings] of groups) {
    const unit = timings[0].throughput_unit || "per second";
    const value = median(timings.map((t) => t.throughput));
    if (value === null) continue;
    const tip = timings.map((t) => `${t.model}: ${fmt(t.throughput)} ${unit}`).join("\n");
    (byUnit[unit] ||= []).push({label, value, tip});
  }
  return byUnit;
}

// A latency and a throughput chart per target: forward and generate times are not comparable
function charts() {
  const box = el("div", {id: "charts"});
  const byTarget = performanceGroups();
  for (const target of TARGETS.filter((t) => byTarget[t])) {
    const latency = latencyBars(byTarget[target]);
    if (latency.length) {
      const title = `Latency of ${target}: p50 bar, p90 whisker`;
      box.append(barChart("latency", title, "ms (median over the cell's models)", latency));
    }
    for (const [unit, bars] of Object.entries(throughputBars(byTarget[target]))) {
      box.append(barChart("throughput", `Throughput of ${target}`, unit, bars));
    }
  }
  if (!box.children.length) box.append(el("p", {}, "No performance data in these results."));
  return box;
}

// ---------------------------------------------------------------- since the baseline

const BAD = ["new failure", "drift", "slower", "still failing"];
const GOOD = ["fixed", "faster"];

function eventClass(event) {
  return BAD.includes(event) ? "t-bad" : GOOD.includes(event) ? "t-good" : "t-note";
}

function performanceWords(row) {
  return Object.entries(row.performance || {})
    .filter(([, t]) => ["slower", "slower once", "faster"].includes(t.status))
    .map(([name, t]) => `${name} ${t.status} x${fmt(t.ratio)} (p ${fmt(t.status === "faster" ?
      t.p_faster : t.p_slower)})`).join("; ");
}

function driftWords(d) {
  if (!d) return "";
  return d.status === "drift" ? `drift: max |diff| ${fmt(d.max_abs_diff)} > ${fmt(d.atol)}` +
    ` at ${d.where}` : d.status + (d.why ? ` (${d.why})` : "");
}

// Every (model, column) with something to say since the baseline, new failures first
function sinceSection(c) {
  const base = c.baselines[c.baselines.length - 1];
  const line = el("p", {id: "since-totals"});
  const order = c.events;
  for (const event of order) {
    if (c.totals[event]) line.append(el("span", {class: "badge " + eventClass(event)},
                                        `${event} ${c.totals[event]}`));
  }
  if (!line.childNodes.length) line.append("Nothing changed.");
  const rows = c.rows.filter((r) => r.events.length)
    .sort((a, b) => order.indexOf(a.events[0]) - order.indexOf(b.events[0]));
  const cells = rows.map((r) => [
    {text: r.events.join(", "), cls: eventClass(r.events[0])}, r.family, r.model_class || "",
    r.model_id, {text: r.column, title: r.label}, r.baseline_status || "-",
    r.status ? {text: r.status, status: r.status} : "-",
    r.checkpoint_changed == null ? "?" : yesNo(r.checkpoint_changed),
    driftWords(r.drift), performanceWords(r),
    (r.reason || "") + (r.declared ? " (declared finding)" : "")]);
  const headers = ["since the baseline", "family", "class", "model", "column", "was", "now",
                   "checkpoint changed", "outputs", "performance", "reason"];
  const node = table({id: "since"}, headers, cells);
  rows.forEach((r, i) => Object.assign(node.tBodies[0].rows[i].dataset,
    {events: r.events.join(","), model: r.model_id, column: r.column}));
  const meta = el("p", {class: "meta"}, `Compared with ${base.path} (${base.entries} results ` +
    `from its ${base.source}${base.generated_at ? ", generated " + base.generated_at : ""}).`);
  const hint = `Slower: median latency x${c.rule.slower_ratio} the baseline's or more and ` +
    `a one-sided Mann-Whitney U p < ${c.rule.alpha}, in seconds and in calibration units` +
    (c.rule.consecutive_runs > 1 ? ", in two consecutive runs." : ".");
  section("Since the baseline", meta, line, ...(rows.length ? [node] : []),
          el("p", {class: "hint"}, hint));
}

// ---------------------------------------------------------------- drift

function yesNo(value) {
  return value == null ? "" : value ? "yes" : "NO";
}

// One row per compared record: its model, the baseline and how far it is from it
function driftTable(groups) {
  const rows = [], tags = [];
  for (const g of groups) {
    for (const r of g.rows) {
      const declared = Object.entries(r.expectations || {}).map(([k, v]) => `${k}: ${v}`);
      rows.push([g.family, {text: g.model_id, title: g.checkpoint || ""},
                 {text: g.baseline.label, title: `stack ${g.baseline.stack}`},
                 {text: r.label, title: `stack ${r.stack}`},
                 {text: r.status, cls: "d-" + r.status, title: declared.join("\n")},
                 r.max_abs_diff, r.atol, yesNo(r.greedy_ids_equal), yesNo(r.pipeline_equal),
                 r.where || ""]);
      tags.push({driftModel: g.model_id, driftColumn: r.column, driftStatus: r.status});
    }
  }
  const headers = ["family", "model", "baseline", "compared", "status", "max |diff|", "atol",
                   "greedy ids equal", "pipeline equal", "first difference"];
  const node = table({id: "drift"}, headers, rows);
  tags.forEach((tag, i) => Object.assign(node.tBodies[0].rows[i].dataset, tag));
  return node;
}

function driftSection() {
  const totals = S.drift_totals || {};
  const line = el("p", {id: "drift-totals"});
  for (const status of ["agree", "declared", "drift"]) {
    line.append(el("span", {class: "badge d-" + status}, `${status} ${totals[status] || 0}`));
  }
  const hint = "Each record's outputs against its checkpoint's baseline (the default stack's " +
    "cpu record): declared differences are those a family states for a stack; drift is " +
    "undeclared.";
  section("Drift between stacks and hardware", line, driftTable(S.drift),
          el("p", {class: "hint"}, hint));
}

// ---------------------------------------------------------------- class oracles

function verdictClass(verdict) {
  return "o-" + verdict.replace(" ", "-").replace("/", "");
}

// One row per oracle or published check of a hub or local model: value, bound, margin
function oracleSection() {
  const rows = [], tags = [];
  for (const m of MODELS) {
    for (const o of m.oracle || []) {
      const side = o.bound == null ? "" : o.below === false ? ">= " : "< ";
      rows.push([m.family, m.model_id, m.label, o.check, o.value,
                 o.bound == null ? "" : side + o.bound,
                 o.margin == null ? "" : `${Math.round(100 * o.margin)}%`,
                 {text: o.verdict, cls: verdictClass(o.verdict)},
                 o.verdict === "n/a" || o.verdict === "failed" ? o.detail : o.source || ""]);
      tags.push({oracleModel: m.model_id, oracleVerdict: o.verdict});
    }
  }
  if (!rows.length) return;
  const totals = el("p", {id: "oracle-totals"});
  for (const [verdict, n] of Object.entries(S.oracle_totals || {})) {
    totals.append(el("span", {class: "badge " + verdictClass(verdict)}, `${verdict} ${n}`));
  }
  const headers = ["family", "model", "column", "check", "value", "bound", "margin", "verdict",
                   "reason or source"];
  const node = table({id: "oracle"}, headers, rows);
  tags.forEach((tag, i) => Object.assign(node.tBodies[0].rows[i].dataset, tag));
  const hint = "What a trained model of the class does on real inputs, and the values " +
    "published for well-known checkpoints. Margin: the share of the bound between the value " +
    "and the bound; near bound: passed within 20%.";
  section("Class oracles and published values", totals, node, el("p", {class: "hint"}, hint));
}

// ---------------------------------------------------------------- findings

const FINDING_CLASS = {"declared": "f-declared", "new": "f-new",
                       "declared, did not occur": "f-stale"};

// What failed, per class and column: declared findings, new failures, stale declarations
function findingsSection() {
  const rows = (S.findings || []).map((f) => [
    f.family, f.model_class, f.model_id, f.hardware, {text: f.status, status: f.status},
    {text: f.finding, cls: FINDING_CLASS[f.finding], title: f.declared_in || ""},
    f.declared || "", {text: f.reason.length > 300 ? f.reason.slice(0, 299) + "…" : f.reason,
                       title: f.reason}]);
  if (!rows.length) return;
  const headers = ["family", "class", "model", "hardware", "status", "finding", "declared as",
                   "reason"];
  const node = table({id: "findings"}, headers, rows);
  (S.findings || []).forEach((f, i) => {
    Object.assign(node.tBodies[0].rows[i].dataset, {finding: f.finding, model: f.model_id});
  });
  const hint = "Declared findings (env_specs/classes/findings.toml) are known failures of a " +
    "class on a backend, with their reason: they do not fail their session. New failures " +
    "do; a declared finding that did not occur should be removed.";
  section("Findings", node, el("p", {class: "hint"}, hint));
}

// ---------------------------------------------------------------- coverage and the rest

function coverage(c) {
  const rows = Object.entries(c.families || {}).map(([family, r]) => [
    family, (r.classes || []).join(", "), r.models, r.hub_models, r.tested_models,
    r.passed_models]);
  const nodes = [table({id: "coverage"}, ["family", "classes tested", "models.json models",
                                          "hub", "tested", "passed"], rows)];
  if ((c.tiny_only || []).length) {
    const text = `Families with only their tiny checkpoint: ${c.tiny_only.join(", ")}.`;
    nodes.push(el("p", {}, text));
  }
  const share = (c.downloads || {}).share;
  if (share !== null && share !== undefined) {
    nodes.push(el("p", {}, `The tested classes hold ${(100 * share).toFixed(1)}% of ` +
                            "models.json's downloads."));
  }
  const untested = c.untested_classes || [];
  if (untested.length) {
    const keys = ["class", "task", "models", "downloads", "most_downloaded", "why", "reason"];
    nodes.push(el("p", {}, `Classes in models.json that no family tests (${untested.length}):`));
    nodes.push(table({id: "untested"}, keys.map((k) => k.replace("_", " ")),
                     untested.map((r) => keys.map((k) => r[k]))));
  }
  return nodes;
}

function environments(envs) {
  const rows = Object.entries(envs).map(([fingerprint, e]) => [
    fingerprint, e.python, e.torch, e.transformers, e.platform, (e.hosts || []).join(", "),
    e.records]);
  return table({id: "environments"}, ["fingerprint", "python", "torch", "transformers",
                                      "platform", "hosts", "records"], rows);
}

function main() {
  header();
  if (S.comparison) sinceSection(S.comparison);
  if (!MODELS.length) {
    section("Class x hardware", el("p", {}, "No result records found."));
  } else {
    const hint = "Each family (bold) sums its classes below it; click its name to fold them. " +
      "Click a cell to list its models; hover over it for the reasons of those that did not " +
      "pass. Purple: every failure in the cell is a declared finding.";
    section("Class x hardware", grid(), el("p", {class: "hint"}, hint));
    findingsSection();
    section("Performance", charts());
    const all = el("button", {id: "show-all", type: "button", hidden: ""}, "show all");
    all.addEventListener("click", () => showModels(null));
    const line = el("p");
    line.append(el("span", {id: "shown"}, `All ${MODELS.length} results.`), " ", all);
    section("Models", line, modelsTable());
  }
  if ((S.drift || []).length) driftSection();
  oracleSection();
  if (S.coverage) section("Coverage", ...coverage(S.coverage));
  if (S.environments && Object.keys(S.environments).length) {
    section("Environments", environments(S.environments));
  }
  if ((S.unreadable || []).length) {
    const rows = S.unreadable.map((u) => [u.path, u.error]);
    section("Unreadable records", table({id: "unreadable"}, ["file", "error"], rows));
  }
}

main();
"""


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as text ("inf"), which JSON cannot hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _embedded(summary: dict[str, Any]) -> str:
    """The summary as JSON that no string in it can end the <script> it sits in."""
    text = json.dumps(_finite(summary), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_dashboard(summary: dict[str, Any]) -> str:
    """index.html: one self-contained page (inline CSS and JS, no network) drawing summary."""
    data = f'<script type="application/json" id="summary">{_embedded(summary)}</script>\n'
    return f"{_HEAD}{data}<script>{_JS}</script>\n</body>\n</html>\n"
