// overview.js: this replica's status (GET /v1/status) and the fleet as the
// replicas' heartbeats describe it (GET /v1/replicas): position in the event
// stream, policy revision, decision and deny rates, and charts of each
// replica's last 15 minutes. Refreshed every few seconds while the view is
// shown.

import { call, describe } from "./api.js";
import { lineChart, palette } from "./chart.js";
import { $, el, row, say } from "./dom.js";

const refreshEvery = 5000;
let timer = null;
let wired = false;

export function enter() {
  if (!wired) {
    wired = true;
    $("overview-refresh").addEventListener("click", refresh);
  }
  refresh();
  timer = setInterval(refresh, refreshEvery);
}

export function leave() {
  clearInterval(timer);
  timer = null;
}

async function refresh() {
  try {
    const [status, fleet] = await Promise.all([call("GET", "/v1/status"), call("GET", "/v1/replicas")]);
    renderStatus(status);
    renderReplicas(fleet.replicas || []);
    renderCharts(fleet.replicas || []);
    $("overview-updated").textContent = "Updated " + new Date().toLocaleTimeString();
    say($("notice"), "");
  } catch (e) {
    if (e.status === 401) return; // app.js sends the admin to sign in
    say($("notice"), describe(e));
  }
}

function renderStatus(s) {
  const ev = s.events || {};
  const facts = [
    ["Replica", s.replica_id],
    ["Ready", s.ready ? "yes" : "no" + (ev.not_ready ? " — " + ev.not_ready : "")],
    ["Policy revision", s.policy_revision],
    ["NATS connection", ev.connection],
    ["Event stream", ev.stream],
    ["Applied sequence", ev.applied_seq + " of " + ev.stream_last_seq + " (lag " + ev.lag + ")"],
    ["Events applied", ev.events_applied],
    ["On disconnect", ev.on_disconnect + (ev.outage_policy_active ? " (active now)" : "")],
  ];
  if (ev.degraded_since) facts.push(["Degraded since", ev.degraded_since]);
  const dl = $("status");
  dl.replaceChildren();
  for (const [k, v] of facts) dl.append(el("dt", k), el("dd", v ?? "—"));
  dl.dataset.replica = s.replica_id || "";
}

function renderReplicas(replicas) {
  const body = document.querySelector("#replicas tbody");
  body.replaceChildren(
    ...replicas.map((r) => {
      const tr = row([
        [r.id, "mono"],
        r.ready ? ["ready", "allow"] : ["not ready" + (r.not_ready ? ": " + r.not_ready : ""), "deny"],
        [r.policy_revision || "—", "mono"],
        [r.applied_seq, "num"],
        [r.lag, "num"],
        [perSecond(r.decision_rate), "num"],
        [perSecond(r.deny_rate) + (r.decision_rate > 0 ? ` (${percent(r.deny_rate, r.decision_rate)})` : ""), "num"],
        [r.decisions + (r.decisions > 0 ? `, ${percent(r.denied, r.decisions)} denied` : ""), "num"],
        new Date(r.last_seen).toLocaleTimeString(),
      ]);
      tr.dataset.replica = r.id;
      return tr;
    }),
  );
  $("replicas-empty").hidden = replicas.length > 0;
  const rate = replicas.reduce((n, r) => n + r.decision_rate, 0);
  const deny = replicas.reduce((n, r) => n + r.deny_rate, 0);
  $("fleet-rates").textContent = replicas.length
    ? `All replicas: ${perSecond(rate)} decisions/s, ${perSecond(deny)} denied/s` +
      (rate > 0 ? ` (deny rate ${percent(deny, rate)})` : "") +
      ", measured between heartbeats."
    : "";
}

function perSecond(x) {
  return x >= 100 ? Math.round(x).toLocaleString() : x.toFixed(1);
}

function percent(part, whole) {
  return whole > 0 ? Math.round((100 * part) / whole) + "%" : "—";
}

// A chart's window: the last 15 minutes before the newest series taken.
const chartWindow = 15 * 60 * 1000;

// renderCharts draws each replica's load (its heartbeat's 10-second
// intervals) as rates and latencies. The current interval is drawn once it
// is a second old, as a rate over the part of it that has passed.
function renderCharts(replicas) {
  const lines = { decisions: [], denied: [], p50: [], p99: [] };
  let to = 0;
  const legend = [];
  replicas.forEach((r, i) => {
    const load = r.load;
    if (!load) return;
    const color = palette[i % palette.length];
    legend.push([r.id, color]);
    const start = Date.parse(load.start);
    const end = Date.parse(load.end);
    const step = load.step_s * 1000;
    to = Math.max(to, end);
    const series = { decisions: [], denied: [], p50: [], p99: [] };
    load.decisions.forEach((n, k) => {
      const from = start + k * step;
      const seconds = Math.min(step, end - from) / 1000;
      if (seconds < 1) return;
      const t = from + seconds * 1000;
      series.decisions.push([t, n / seconds]);
      series.denied.push([t, load.denied[k] / seconds]);
      series.p50.push([t, n > 0 ? load.p50_us[k] : null]);
      series.p99.push([t, n > 0 ? load.p99_us[k] : null]);
    });
    for (const [name, points] of Object.entries(series)) {
      lines[name].push({ replica: r.id, series: name, color, dashed: name === "p50", points });
    }
  });
  $("chart-legend").replaceChildren(
    ...legend.map(([id, color]) => {
      const li = el("li", id, "mono");
      const swatch = el("span", null, "swatch");
      swatch.style.background = color;
      li.prepend(swatch);
      return li;
    }),
  );
  if (!to) to = Date.now();
  const from = to - chartWindow;
  const charts = [
    ["chart-decisions", lines.decisions, perSecond, "decisions/s"],
    ["chart-denied", lines.denied, perSecond, "denied/s"],
    ["chart-latency", [...lines.p99, ...lines.p50], micros, ""],
  ];
  for (const [id, chartLines, format, unit] of charts) {
    // Axis ticks are round numbers: two significant digits show them.
    const tick = format === micros ? micros : (v) => Number(v.toPrecision(2)).toLocaleString();
    lineChart($(id), { lines: chartLines, from, to, format: tick });
    $(id + "-summary").textContent = chartLines.length
      ? chartLines.map((l) => summary(l, format, unit)).join("; ")
      : "No replica has reported its load yet.";
  }
}

// summary says in words what a line shows: its latest value and its peak.
function summary(line, format, unit) {
  const values = line.points.map((p) => p[1]).filter((v) => v !== null);
  const name = line.replica + (line.series === "p50" || line.series === "p99" ? " " + line.series : "");
  if (!values.length) return name + ": no decisions";
  const u = unit ? " " + unit : "";
  return `${name}: latest ${format(values[values.length - 1])}${u}, peak ${format(Math.max(...values))}${u}`;
}

// micros formats a latency in microseconds.
function micros(us) {
  if (us >= 1000) return (us / 1000).toFixed(us >= 10000 ? 0 : 1) + " ms";
  return Math.round(us) + " µs";
}
