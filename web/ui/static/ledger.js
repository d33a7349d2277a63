// ledger.js: ledger entries (GET /v1/revocations) as table rows, shared by
// the subjects and revocations views. Time left is counted against the
// server's clock: the response says what time it was there, and the rows
// count down from it with the browser's monotonic clock.

import { el } from "./dom.js";

// serverClock pairs the server's time of a response with performance.now().
export function serverClock(now) {
  const at = Date.parse(now);
  const mark = performance.now();
  return () => (Number.isNaN(at) ? Date.now() : at + (performance.now() - mark));
}

const effects = {
  token_stale: "older tokens must be refreshed",
  subject_disabled: "every token denied",
  token_revoked: "that token denied",
};

// head fills a ledger table's head with the columns entryRow fills.
export function head(table, withSubject) {
  const names = ["Change", "Effect", "Scope", "At", "Reason", "By", "Time left"];
  if (withSubject) names.unshift("Subject");
  const tr = document.createElement("tr");
  for (const name of names) {
    const th = el("th", name, name === "Time left" ? "num" : "");
    th.scope = "col";
    tr.append(th);
  }
  table.tHead.replaceChildren(tr);
}

// entryRow returns a row for e; withSubject adds the subject's cell first.
// The time-left cell carries its expiry so that tick() can update it.
export function entryRow(e, withSubject) {
  const tr = document.createElement("tr");
  const cells = [];
  if (withSubject) cells.push(el("td", e.subject));
  const scope = [e.jti ? "jti " + e.jti : "all tokens", e.issuer ? "from " + e.issuer : ""].filter(Boolean).join(" ");
  cells.push(
    el("td", e.type),
    e.effect ? el("td", e.effect + " — " + (effects[e.effect] || ""), "deny") : el("td", "none (lifted)", "allow"),
    el("td", scope),
    el("td", new Date(e.at).toLocaleString()),
    el("td", e.reason || "—"),
    el("td", e.actor || "—"),
  );
  const left = el("td", "", "num");
  left.dataset.expires = String(Date.parse(e.expires_at));
  cells.push(left);
  tr.append(...cells);
  tr.dataset.subject = e.subject;
  tr.dataset.type = e.type;
  return tr;
}

// tick writes the time left into every row's last cell under body.
export function tick(body, now) {
  const t = now();
  for (const td of body.querySelectorAll("td[data-expires]")) {
    td.textContent = timeLeft(Number(td.dataset.expires) - t);
  }
}

// timeLeft says a duration in milliseconds the way a person reads it.
export function timeLeft(ms) {
  if (!(ms > 0)) return "expiring";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}
