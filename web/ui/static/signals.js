// signals.js: the Security Event Tokens identity providers sent
// (GET /v1/signals): who sent what, which Warden event each became, and on
// how many live replicas it is enforced. Read again every few seconds
// while the view is shown.

import { call, describe } from "./api.js";
import { $, row, say } from "./dom.js";

const refreshEvery = 5000;
let timer = null;

export function enter() {
  refresh();
  timer = setInterval(refresh, refreshEvery);
}

export function leave() {
  clearInterval(timer);
  timer = null;
}

async function refresh() {
  let r;
  try {
    r = await call("GET", "/v1/signals");
  } catch (e) {
    if (e.status === 401) return; // app.js sends the admin to sign in
    if (e.status === 404) {
      say($("signals-empty"), "No transmitter is configured (signals.transmitters, docs/signals.md).");
      return;
    }
    say($("notice"), describe(e));
    return;
  }
  const rows = [];
  for (const s of r.signals) {
    const enforced = s.enforced ? `${s.enforced.applied}/${s.enforced.total} replicas` : "—";
    for (const e of s.events || []) {
      const warden = e.event ? `${e.event.type} ${e.event.subject}${e.event.jti ? " jti " + e.event.jti : ""}` : "—";
      rows.push(row([
        new Date(s.received).toLocaleString(), s.transmitter, e.type.replace(/^.*\/event-type\//, ""),
        [e.outcome, "outcome-" + e.outcome], e.detail || warden, e.event ? enforced : "—", s.jti,
      ]));
    }
  }
  document.querySelector("#signals tbody").replaceChildren(...rows);
  say($("signals-empty"), rows.length ? "" : "No signal received yet.");
  $("sig-updated").textContent = `${r.signals.length} received · updated ${new Date().toLocaleTimeString()}`;
  say($("notice"), "");
}
