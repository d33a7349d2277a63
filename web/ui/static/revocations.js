// revocations.js: the live ledger (GET /v1/revocations) with the time left
// on each entry, counting down every second and read again every few
// seconds while the view is shown.

import { call, describe } from "./api.js";
import { $, say } from "./dom.js";
import { entryRow, head, serverClock, tick } from "./ledger.js";

const refreshEvery = 5000;
let timers = [];
let now = Date.now;
let wired = false;

export function enter() {
  if (!wired) {
    wired = true;
    head($("revocations"), true);
    $("rev-refresh").addEventListener("click", refresh);
    $("rev-filter").addEventListener("input", applyFilter);
  }
  refresh();
  timers = [setInterval(refresh, refreshEvery), setInterval(() => tick(body(), now), 1000)];
}

export function leave() {
  for (const t of timers) clearInterval(t);
  timers = [];
}

function body() {
  return document.querySelector("#revocations tbody");
}

async function refresh() {
  let r;
  try {
    r = await call("GET", "/v1/revocations");
  } catch (e) {
    if (e.status === 401) return; // app.js sends the admin to sign in
    say($("notice"), describe(e));
    return;
  }
  now = serverClock(r.now);
  body().replaceChildren(...r.entries.map((e) => entryRow(e, true)));
  tick(body(), now);
  applyFilter();
  $("rev-updated").textContent = `${r.entries.length} ${r.entries.length === 1 ? "entry" : "entries"} · updated ${new Date().toLocaleTimeString()}`;
  say($("notice"), "");
}

function applyFilter() {
  const q = $("rev-filter").value.trim().toLowerCase();
  let shown = 0;
  for (const tr of body().rows) {
    tr.hidden = q !== "" && !tr.dataset.subject.toLowerCase().includes(q);
    if (!tr.hidden) shown++;
  }
  $("revocations-empty").hidden = shown > 0;
  $("revocations-empty").textContent = body().rows.length
    ? "No entry matches the filter."
    : "The ledger is empty: no change is being enforced.";
}
