// The operator console: one JSON document (/console/api/overview), fetched with the operator's
// bearer token, rendered as tables and per-tenant charts whose numbers stay beside them.
// Nothing is loaded from anywhere else; the token lives in this tab's sessionStorage only.
"use strict";

const REFRESH_MS = 5000;
const $ = (selector) => document.querySelector(selector);
let timer = null;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fill(tableId, rows) {
  const body = $(`#${tableId} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

function sum(map) {
  return Object.values(map || {}).reduce((a, b) => a + b, 0);
}

function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

// A bar per second of requests, labelled with its peak.
function chart(series, from, to) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  const width = Math.max(1, to - from);
  svg.setAttribute("viewBox", `0 0 ${width} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  const peak = Math.max(1, ...series.map((p) => p.requests));
  for (const point of series) {
    const rect = document.createElementNS(ns, "rect");
    const height = (point.requests / peak) * 90;
    rect.setAttribute("x", point.second - from);
    rect.setAttribute("y", 100 - height);
    rect.setAttribute("width", 1);
    rect.setAttribute("height", height);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${new Date(point.second * 1000).toLocaleTimeString()}: ${point.requests} requests`;
    rect.append(title);
    svg.append(rect);
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 10);
  label.textContent = `peak ${peak}/s`;
  svg.append(label);
  return svg;
}

function render(overview) {
  const node = overview.node;
  $("#node").textContent = `${node.holder} · roles ${node.roles.join(", ")} · ${node.version}`;
  fill("tenants", overview.tenants.map((t) => [
    cell(t.tenant),
    cell(t.state, `state-${t.state}`),
    cell(t.graphs.join(", ") || "—"),
    cell(t.tokens === null ? "—" : String(t.tokens), "num"),
  ]));
  fill("warm", overview.warm.map((w) => [
    cell(w.tenant),
    cell(w.graph),
    cell(w.writer ? `${w.writer.holder} (epoch ${w.writer.epoch})` : "none"),
    cell(String(w.backlog_versions), "num"),
    cell(ago(w.last_maintenance_ms)),
  ]));
  const members = overview.members || [];
  $("#members").hidden = $("#members-title").hidden = members.length === 0;
  fill("members", members.map((m) => [cell(m.node), cell(m.state), cell(m.roles.join(", ")), cell(m.address || "—")]));
  const usage = overview.usage;
  $("#window").textContent = String(Math.round((usage.to - usage.from) / 60));
  $("#usage").replaceChildren(...usage.tenants.map((t) => {
    const box = document.createElement("div");
    box.className = "tenant-usage";
    box.dataset.tenant = t.tenant;
    const numbers = document.createElement("dl");
    const rows = [
      ["tenant", t.tenant],
      ["requests", sum(t.totals.requests)],
      ["store requests", sum(t.totals.store_requests)],
      ["bytes written", t.totals.store_bytes.put || 0],
      ["warm seconds", t.totals.active_seconds],
    ];
    for (const [name, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      dd.dataset.field = name;
      numbers.append(dt, dd);
    }
    box.append(numbers, chart(t.series, usage.from, usage.to));
    return box;
  }));
  $("#content").hidden = false;
}

let loading = false;

async function refresh() {
  const token = sessionStorage.getItem("omnigraph-operator-token");
  // One load at a time: a slow overview is not asked for again until it has answered.
  if (!token || loading) return;
  loading = true;
  const status = $("#status");
  try {
    const response = await fetch("/console/api/overview", { headers: { Authorization: `Bearer ${token}` } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    render(body);
    status.className = "muted";
    status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
  } catch (err) {
    status.className = "error";
    status.textContent = `Could not load the overview: ${err.message}`;
  } finally {
    loading = false;
  }
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("omnigraph-operator-token", $("#token").value.trim());
  clearInterval(timer);
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
});

if (sessionStorage.getItem("omnigraph-operator-token")) {
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}
