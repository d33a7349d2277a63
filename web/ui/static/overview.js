// overview.js: this replica's status (GET /v1/status) and the fleet as the
// replicas' heartbeats describe it (GET /v1/replicas): position in the event
// stream, policy revision, decision and deny rates. Refreshed every few
// seconds while the view is shown.

import { call, describe } from "./api.js";
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
