// live.js: decisions as they are made. EventSource cannot send a bearer
// header, so the view first trades the admin token for a single-use stream
// ticket (POST /v1/decisions/stream/tickets) and opens
// /v1/decisions/stream?ticket=... with it. A ticket opens one stream only:
// when the stream drops, the view gets a new ticket and resumes after the
// last entry it saw (last_event_id), so nothing is shown twice.
//
// Filters apply at once in the browser to the entries kept (the newest
// maxRows), and, once the admin stops typing, at the server too: the view
// reopens the stream with the same filters (subject_contains,
// action_contains, allow), so that a busy fleet sends only what is watched.

import { call, describe } from "./api.js";
import { $, el, row, say } from "./dom.js";

const maxRows = 500;
const drawEvery = 100; // milliseconds between two draws of the table
let source = null;
let lastID = "";
let retry = null;
let backoff = 500;
let paused = false;
let active = false;
let nav;
let wired = false;
let seen = 0;
let denied = 0;
let pending = []; // entries received, not drawn yet
let drawTimer = null; // draws them
let attempt = 0; // the latest connect(); an older one gives way
let filtered = false; // the open stream carries only what the filters match
let refilter = null; // reopens the stream with changed filters
const refilterAfter = 500; // milliseconds after the last change of a filter

export function enter({ go }) {
  nav = go;
  active = true;
  if (!wired) {
    wired = true;
    for (const id of ["f-subject", "f-action", "f-allow"]) {
      $(id).addEventListener("input", () => {
        applyFilters();
        clearTimeout(refilter);
        refilter = setTimeout(() => {
          seen = denied = 0; // counted afresh for the new filters
          connect();
        }, refilterAfter);
      });
    }
    $("live-filters").addEventListener("submit", (ev) => ev.preventDefault());
    $("live-pause").addEventListener("click", togglePause);
    $("live-clear").addEventListener("click", () => {
      document.querySelector("#decisions tbody").replaceChildren();
      pending = [];
      seen = denied = 0;
      counts();
    });
  }
  counts();
  connect();
}

export function leave() {
  active = false;
  disconnect();
  state("Not connected");
}

function disconnect() {
  clearTimeout(retry);
  retry = null;
  clearTimeout(refilter);
  refilter = null;
  if (source) source.close();
  source = null;
}

async function connect() {
  disconnect();
  if (!active || paused) return;
  const mine = ++attempt;
  state("Connecting…");
  let ticket;
  try {
    ticket = (await call("POST", "/v1/decisions/stream/tickets")).ticket;
  } catch (e) {
    if (mine !== attempt) return;
    if (e.status === 401) return; // app.js sends the admin to sign in
    state("Not connected");
    say($("notice"), describe(e));
    if (e.status !== 403) later();
    return;
  }
  if (!active || paused || mine !== attempt) return;
  const q = new URLSearchParams({ ticket });
  if (lastID) q.set("last_event_id", lastID);
  filtered = false;
  for (const [param, id] of [["subject_contains", "f-subject"], ["action_contains", "f-action"], ["allow", "f-allow"]]) {
    const v = $(id).value.trim();
    if (v) q.set(param, v);
    filtered ||= v !== "";
  }
  counts();
  const es = new EventSource("/v1/decisions/stream?" + q);
  source = es;
  es.addEventListener("open", () => {
    backoff = 500;
    state(filtered ? "Live, filtered at the server" : "Live");
    say($("notice"), "");
  });
  es.addEventListener("decision", (ev) => {
    lastID = ev.lastEventId || lastID;
    let entry;
    try {
      entry = JSON.parse(ev.data);
    } catch {
      return;
    }
    add(entry);
  });
  es.addEventListener("missed", (ev) => {
    const n = JSON.parse(ev.data).missed;
    say($("notice"), `This view fell behind and missed ${n} decisions.`);
  });
  es.addEventListener("end", (ev) => {
    const reason = JSON.parse(ev.data).reason;
    es.close();
    if (source === es) source = null;
    if (reason === "token_expired") {
      nav("signin", "Your admin token has expired; the live stream ended. Sign in with a new one.");
    } else if (reason === "access_revoked") {
      state("Stopped");
      say($("notice"), "The admin policy no longer allows you to watch decisions; the stream ended.");
    } else {
      later();
    }
  });
  es.addEventListener("error", () => {
    // The ticket is spent: EventSource's own retry would be refused, so the
    // view reconnects with a fresh ticket.
    if (source !== es) return;
    es.close();
    source = null;
    later();
  });
}

function later() {
  if (!active || paused) return;
  state(`Reconnecting in ${Math.round(backoff / 1000) || 1}s…`);
  retry = setTimeout(connect, backoff);
  backoff = Math.min(backoff * 2, 15000);
}

function togglePause() {
  paused = !paused;
  $("live-pause").setAttribute("aria-pressed", String(paused));
  $("live-pause").textContent = paused ? "Resume" : "Pause";
  if (paused) {
    disconnect();
    state("Paused");
  } else {
    connect();
  }
}

// add counts an entry and queues it. On a busy fleet entries arrive faster
// than anyone can read them, so the queue is drawn at most every drawEvery
// milliseconds, and only its newest maxRows entries.
function add(e) {
  seen++;
  if (!e.allow) denied++;
  pending.push(e);
  if (pending.length > 2 * maxRows) pending.splice(0, pending.length - maxRows);
  if (!drawTimer) drawTimer = setTimeout(draw, drawEvery);
}

function draw() {
  drawTimer = null;
  const batch = pending.slice(-maxRows);
  pending = [];
  const rows = document.createDocumentFragment();
  for (let i = batch.length - 1; i >= 0; i--) rows.append(entryRow(batch[i])); // newest first
  const body = document.querySelector("#decisions tbody");
  body.prepend(rows);
  while (body.rows.length > maxRows) body.lastElementChild.remove();
  counts();
}

function entryRow(e) {
  const resource = [e.resource_type, e.resource_id].filter(Boolean).join(" ");
  const tr = row([
    [new Date(e.time).toLocaleTimeString(), "mono"],
    "",
    e.action,
    resource || "—",
    e.allow ? ["allow", "allow"] : ["deny", "deny"],
    e.reason,
    [e.policy_revision, "mono"],
    [(e.latency_us / 1000).toFixed(2) + " ms", "num"],
    e.replica,
  ]);
  if (e.subject) {
    const a = el("a", e.subject);
    a.href = "#/subjects?" + new URLSearchParams({ subject: e.subject });
    a.title = "Look " + e.subject + " up";
    tr.cells[1].append(a);
  } else {
    tr.cells[1].textContent = "—";
  }
  tr.dataset.subject = e.subject || "";
  tr.dataset.action = e.action || "";
  tr.dataset.allow = String(!!e.allow);
  tr.dataset.decisionId = e.decision_id || "";
  tr.hidden = !matches(tr);
  return tr;
}

function matches(tr) {
  const subject = $("f-subject").value.trim().toLowerCase();
  const action = $("f-action").value.trim().toLowerCase();
  const allow = $("f-allow").value;
  return (
    (!subject || tr.dataset.subject.toLowerCase().includes(subject)) &&
    (!action || tr.dataset.action.toLowerCase().includes(action)) &&
    (!allow || tr.dataset.allow === allow)
  );
}

function applyFilters() {
  for (const tr of document.querySelectorAll("#decisions tbody tr")) tr.hidden = !matches(tr);
  counts();
}

function counts() {
  const rows = document.querySelectorAll("#decisions tbody tr");
  const shown = [...rows].filter((tr) => !tr.hidden).length;
  const pct = seen ? Math.round((100 * denied) / seen) : 0;
  $("live-counts").textContent =
    `${seen} ${filtered ? "matching " : ""}${seen === 1 ? "decision" : "decisions"} seen, ` +
    `${denied} denied (${pct}%) · ${shown} shown`;
}

function state(text) {
  $("live-state").textContent = text;
}
