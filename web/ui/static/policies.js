// policies.js: the policies view. The admin edits a draft of the whole
// policy set in this tab (every file, read from GET /v1/policies and
// GET /v1/policies/{id}); nothing reaches Warden until they ask:
//
//   Validate  POST /v1/policies/test {files: draft, coverage: true}: compile
//             problems on their lines, test results, coverage per line;
//   Changes   the draft against the stored set it was read from, line by line;
//   Activate  PUT /v1/policies {files, message} with If-Match: the KV
//             revision read, then GET /v1/policies until this replica
//             reports the new revision active;
//   Playground  POST /v1/explain against the draft (playground.js).
//
// With policies.source dir the set is read-only through the API: the view
// shows it, runs its tests and the playground, and says where to change it.

import { call, describe } from "./api.js";
import { $, el, say } from "./dom.js";
import { Editor } from "./editor.js";
import { diffLines, counts, diffTable } from "./diff.js";
import * as checks from "./checks.js";
import * as playground from "./playground.js";

const activationWait = 20000; // how long to wait for this replica to activate a stored set
const dirReason =
  "These policies come from a directory on the server (policies.source: dir), so this page is view-only: " +
  "change the files in that directory and Warden loads them (every policies.poll_interval, or on SIGHUP). " +
  "Validate and the playground still work on the files shown.";

// The set as stored when read (info, base) and the draft edited here.
const set = {
  loaded: false,
  info: null, // GET /v1/policies: revision, kv_revision, author, message, at, source, status
  base: {}, // file name -> text, as stored at info.kv_revision
  draft: {}, // file name -> text
  current: "", // the file open in the editor
  readOnly: "", // why the draft cannot be activated; "" when it can
};

// check is the last Validate: the files it checked, the problems found (on
// their file and line) and the test report with coverage.
let check = null;
let editor;
const views = new Map(); // file name -> where the caret and scroll were in it
let wired = false;
let shown = false; // the view is on screen; a wait for activation stops when it leaves
let devTokens = false;

export async function enter() {
  shown = true;
  if (!wired) {
    wired = true;
    wire();
    try {
      const cfg = await fetch("config.json", { cache: "no-store" }).then((r) => r.json());
      devTokens = !!cfg.dev_token;
    } catch {
      devTokens = false;
    }
    playground.setup({ draft: () => ({ ...set.draft }), problemList: checks.problemList, location: checks.location }, devTokens);
  }
  if (set.loaded || restoreDraft()) await refresh();
  else await load();
}

export function leave() {
  shown = false;
}

function wire() {
  checks.setup({ has: (file) => file in set.draft, goTo });
  editor = new Editor($("pol-text"), $("pol-gutter"), $("pol-caret"), (text) => {
    set.draft[set.current] = text;
    edited();
  });
  const tabs = [...document.querySelectorAll("#pol-tabs [role=tab]")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (ev) => {
      const i = tabs.indexOf(tab);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
      if (next === undefined) return;
      ev.preventDefault();
      const t = tabs[(next + tabs.length) % tabs.length];
      t.focus();
      selectTab(t);
    });
  }
  $("pol-validate").addEventListener("click", validate);
  $("pol-add-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    addFile();
  });
  $("pol-revert").addEventListener("click", () => revert(set.current));
  $("pol-delete").addEventListener("click", deleteFile);
  $("pol-activate-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    activate();
  });
  $("pol-rebase").addEventListener("click", rebase);
  // A reload or a closed tab does not wait for the pending save.
  addEventListener("pagehide", () => {
    if (saveTimer !== null) saveDraft();
  });
  $("pol-discard").addEventListener("click", () => load("Reloaded the stored set; your changes were discarded."));
}

// readSet reads the stored set: the list, then every file. A set changed
// while it was being read is read again, so the files are all of one
// revision.
async function readSet() {
  for (let attempt = 0; attempt < 3; attempt++) {
    const info = await call("GET", "/v1/policies");
    const texts = await Promise.all(info.files.map((f) => call("GET", "/v1/policies/" + encodePath(f.id))));
    const after = await call("GET", "/v1/policies");
    if (after.kv_revision === info.kv_revision) {
      return { info: after, files: Object.fromEntries(info.files.map((f, i) => [f.id, texts[i] ?? ""])) };
    }
  }
  throw new Error("The policy set kept changing while it was being read; try again.");
}

function encodePath(id) {
  return id.split("/").map(encodeURIComponent).join("/");
}

// load reads the stored set and makes it the draft, discarding any edit. It
// reports whether it could.
async function load(message) {
  say($("pol-loading"), "Reading the policy set…");
  try {
    const { info, files } = await readSet();
    set.info = info;
    set.base = files;
    set.draft = { ...files };
    set.loaded = true;
    setReadOnly(info.source === "dir" ? dirReason : "");
    if (!(set.current in set.draft)) set.current = firstFile();
    check = null;
    $("pol-sync-box").hidden = true;
    say($("pol-loading"), message || "");
    renderAll();
    return true;
  } catch (e) {
    say($("pol-loading"), "");
    if (e.status !== 401) say($("notice"), "Could not read the policy set: " + describe(e)); // app.js handles 401
    return false;
  }
}

// refresh rereads the set's list and status; when the stored set changed
// since it was read, an unchanged draft follows it, and a changed one is
// kept and the admin asked what to do.
async function refresh() {
  try {
    const info = await call("GET", "/v1/policies");
    // A directory's set has no KV revision: its content revision moves.
    if (info.kv_revision !== set.info.kv_revision || info.revision !== set.info.revision) {
      if (changedFiles().length === 0) return load(`The stored set changed to revision ${info.revision}; reloaded.`);
      stale(info, "The stored policy set changed since you read it");
      return;
    }
    set.info = info;
    renderSummary();
  } catch (e) {
    if (e.status === 401) return;
    say($("notice"), "Could not read the policy set: " + describe(e));
  }
}

// stale says the stored set moved under the draft and offers to reload.
function stale(info, why) {
  const by = info.author ? ` by ${info.author}` : "";
  $("pol-sync").textContent = `${why} (it is now revision ${info.revision}${by}${info.message ? `: “${info.message}”` : ""}). ` +
    "Reload it and keep your changes on top, or discard your changes.";
  $("pol-sync-box").hidden = false;
}

// rebase reads the stored set again and keeps the admin's changes on top:
// files the draft did not change take the stored text, the others keep the
// draft's. Files both sides changed are named, to be checked in Changes.
async function rebase() {
  const mine = {};
  for (const name of changedFiles()) mine[name] = name in set.draft ? set.draft[name] : null;
  const oldBase = set.base;
  if (!(await load())) return;
  const both = [];
  for (const [name, text] of Object.entries(mine)) {
    if ((set.base[name] ?? null) !== (oldBase[name] ?? null)) both.push(name);
    if (text === null) delete set.draft[name];
    else set.draft[name] = text;
  }
  if (!(set.current in set.draft)) set.current = firstFile();
  renderAll();
  say($("pol-loading"), `Reloaded revision ${set.info.revision}; your changes are kept on top.` +
    (both.length ? ` ${both.join(", ")} also changed on the server: your version is kept; check Changes before activating.` : ""));
}

// firstFile is the module of the decision's package (GET /v1/policies
// says which package that is), else the first module, else the first file.
function firstFile() {
  const names = Object.keys(set.draft).sort();
  const pkg = (set.info.entrypoint || "").replace(/^data\./, "");
  const declares = new RegExp("^package\\s+" + pkg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "\\s*$", "m");
  return (
    (pkg && names.find((n) => kind(n) === "module" && declares.test(set.draft[n]))) ||
    names.find((n) => kind(n) === "module") ||
    names[0] ||
    ""
  );
}

// kind is what name is in a set (module, test or data; "" for no policy
// file), by the table the server lists with the set (file_kinds).
function kind(name) {
  const k = fileKinds().find((k) => name.endsWith(k.suffix));
  return k ? k.kind : "";
}

function fileKinds() {
  return (set.info && set.info.file_kinds) || [];
}

function setReadOnly(why) {
  set.readOnly = why;
  say($("pol-readonly"), why);
  $("pol-add-form").hidden = !!why;
  $("pol-activate").disabled = !!why;
  $("pol-message").disabled = !!why;
  say($("pol-activate-why"), why ? "Activation is off: the policies come from a directory on the server." : "");
}

function renderAll() {
  renderSummary();
  renderFiles();
  openFile(set.current);
  showCheck();
  draftChanged();
  if (!$("pol-changes-panel").hidden) renderChanges();
}

function renderSummary() {
  const i = set.info;
  const st = i.status || {};
  const dl = $("pol-summary");
  dl.replaceChildren();
  // A set read from a directory has no KV revision, author or time.
  const when = Date.parse(i.at) > 0 ? new Date(i.at).toLocaleString() : "";
  const stored = i.revision + (i.kv_revision ? ` (KV revision ${i.kv_revision})` : "") + (i.message ? ` “${i.message}”` : "") +
    (i.author ? ` by ${i.author}` : "") + (when ? `, ${when}` : "");
  let active = st.active_revision || "—";
  if (st.active_revision && st.active_revision !== i.revision) active += " — not the stored revision yet";
  if (st.last_error) active += ` — refused ${st.last_error.revision || "a set"}: ${st.last_error.message}`;
  const facts = [
    ["Stored", stored],
    ["Active on this replica", active],
    ["Source", i.source === "dir" ? "a directory on the server (policies.source: dir)" : "the NATS key-value bucket (policies.source: nats)"],
  ];
  for (const [k, v] of facts) dl.append(el("dt", k), el("dd", v));
}

// changedFiles lists the files the draft adds, removes or changes.
function changedFiles() {
  const names = new Set([...Object.keys(set.base), ...Object.keys(set.draft)]);
  return [...names].filter((n) => set.base[n] !== set.draft[n]).sort();
}

// draftChanged counts the changes and keeps the draft in this tab's session
// storage (soon after the last keystroke), so that reloading the page or
// signing in again after the admin token expired does not lose an edit.
function draftChanged() {
  const n = changedFiles().length;
  $("pol-change-count").textContent = n ? `(${n})` : "";
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveDraft, 300);
}

const draftKey = "warden.policyDraft";
let saveTimer = null;

function saveDraft() {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (!set.loaded) return;
  try {
    if (changedFiles().length === 0) sessionStorage.removeItem(draftKey);
    else sessionStorage.setItem(draftKey, JSON.stringify({ info: set.info, base: set.base, draft: set.draft, current: set.current }));
  } catch {
    // Over the storage quota: the draft lives in this page only.
    sessionStorage.removeItem(draftKey);
  }
}

// restoreDraft takes up the draft this tab kept, if any, as it was read;
// refresh() then compares it with what is stored now.
function restoreDraft() {
  let saved;
  try {
    saved = JSON.parse(sessionStorage.getItem(draftKey) || "null");
  } catch {
    saved = null;
  }
  if (!saved || !saved.info || !saved.base || !saved.draft) return false;
  Object.assign(set, { info: saved.info, base: saved.base, draft: saved.draft, current: saved.current, loaded: true });
  setReadOnly(saved.info.source === "dir" ? dirReason : "");
  if (!(set.current in set.draft)) set.current = firstFile();
  say($("pol-loading"), `Restored your unsaved changes to ${changedFiles().join(", ")}.`);
  renderAll();
  return true;
}

// forgetDraft drops the kept draft: signing out leaves nothing behind.
export function forgetDraft() {
  clearTimeout(saveTimer);
  saveTimer = null;
  sessionStorage.removeItem(draftKey);
}

// renderFiles lists the draft's files with what is known of each: changed,
// problems, coverage.
function renderFiles() {
  const list = $("pol-files");
  list.replaceChildren(
    ...Object.keys(set.draft)
      .sort()
      .map((name) => {
        const b = el("button", null, "pol-file");
        b.type = "button";
        b.dataset.file = name;
        if (name === set.current) b.setAttribute("aria-current", "true");
        b.append(el("span", name, "name"), el("span", fileMeta(name), "meta"));
        b.addEventListener("click", () => openFile(name, true));
        const li = el("li");
        li.append(b);
        return li;
      }),
  );
}

function fileMeta(name) {
  const parts = [kind(name)];
  if (!(name in set.base)) parts.push("new");
  else if (set.base[name] !== set.draft[name]) parts.push("changed");
  const n = check ? check.problems.filter((p) => p.file === name).length : 0;
  if (n) parts.push(n === 1 ? "1 problem" : `${n} problems`);
  const cov = coverageOf(name);
  if (cov) parts.push(`${Math.floor(cov.percent)}% covered`);
  return parts.join(" · ");
}

function coverageOf(name) {
  return check?.report?.coverage?.files.find((f) => f.file === name) || null;
}

function openFile(name, focus) {
  if (set.current in set.draft && $("pol-text").value === set.draft[set.current]) views.set(set.current, editor.view());
  set.current = name;
  const has = name in set.draft;
  $("pol-file-title").textContent = has ? name : "No file";
  $("pol-file-kind").textContent = has ? `${kind(name)}${set.readOnly ? " · view-only" : ""}` : "";
  editor.show(has ? set.draft[name] : "", !has || !!set.readOnly, views.get(name));
  for (const b of document.querySelectorAll("#pol-files .pol-file")) {
    if (b.dataset.file === name) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  $("pol-revert").hidden = !!set.readOnly || !has;
  $("pol-delete").hidden = !!set.readOnly || !has;
  $("pol-revert").disabled = set.base[name] === set.draft[name];
  markEditor();
  if (focus) $("pol-text").focus();
}

// edited follows an edit of the open file.
function edited() {
  const b = document.querySelector(`#pol-files .pol-file[data-file="${CSS.escape(set.current)}"] .meta`);
  if (b) b.textContent = fileMeta(set.current);
  $("pol-revert").disabled = set.base[set.current] === set.draft[set.current];
  draftChanged();
  showStale();
}

function addFile() {
  const field = $("pol-new-name");
  const name = field.value.trim();
  const why = badName(name);
  field.setAttribute("aria-invalid", why ? "true" : "false");
  say($("pol-new-error"), why);
  if (why) {
    field.focus();
    return;
  }
  set.draft[name] = name.endsWith(".rego") ? `package ${name.replace(/\.rego$/, "").replace(/\//g, ".").replace(/[^A-Za-z0-9_.]/g, "_")}\n` : "{}\n";
  field.value = "";
  renderFiles();
  openFile(name, true);
  draftChanged();
  showStale();
}

// badName says why name cannot be a file of the set, as the server would.
function badName(name) {
  if (!name) return "Give the new file's path, e.g. lib/helpers.rego.";
  if (name in set.draft) return `${name} is already in the set.`;
  if (name.startsWith("/") || name.includes("\\") || name.split("/").some((s) => s === "" || s === "." || s === ".."))
    return "Give a relative path with / between directories, without . or .. parts.";
  if (name.split("/").some((s) => s.startsWith("."))) return "Hidden files (a name starting with .) are not loaded.";
  if (!kind(name)) return `The name must end in ${fileKinds().map((k) => k.suffix).join(", ")}.`;
  return "";
}

function deleteFile() {
  const name = set.current;
  if (!(name in set.draft)) return;
  delete set.draft[name];
  say($("pol-loading"), `${name} is removed from the draft; Revert in Changes brings it back.`);
  set.current = firstFile();
  renderFiles();
  openFile(set.current, true);
  draftChanged();
  showStale();
}

// revert gives a file back its stored text (or removes a file the draft
// added, or restores one it removed).
function revert(name) {
  if (name in set.base) set.draft[name] = set.base[name];
  else delete set.draft[name];
  if (!(set.current in set.draft)) set.current = firstFile();
  renderFiles();
  openFile(set.current);
  draftChanged();
  showStale();
  if (!$("pol-changes-panel").hidden) renderChanges();
}

function selectTab(tab) {
  for (const t of document.querySelectorAll("#pol-tabs [role=tab]")) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (tab.id === "pol-tab-changes") renderChanges();
}

// ---- Validate: compile problems, tests, coverage ----

async function validate() {
  const files = { ...set.draft };
  const btn = $("pol-validate");
  const state = $("pol-check-state");
  btn.disabled = true;
  say($("pol-loading"), "");
  say(state, "Compiling and running the tests…");
  let failure = "";
  try {
    const report = await call("POST", "/v1/policies/test", { files, coverage: true });
    check = { files, problems: checks.testProblems(report), report };
  } catch (e) {
    if (e.status === 401) return; // app.js sends the admin to sign in
    if (e.code === "policy_invalid") check = { files, problems: e.problems, report: e.tests };
    else {
      check = null;
      failure = describe(e);
    }
  } finally {
    btn.disabled = false;
  }
  showCheck();
  renderFiles();
  markEditor();
  if (failure) {
    say(state, "Not validated: " + failure);
    state.classList.add("error");
  }
}

function showCheck() {
  checks.render(check);
  showStale();
}

// showStale says when the draft changed since the results were computed:
// their line numbers may have moved.
function showStale() {
  const changed = check && Object.keys({ ...check.files, ...set.draft }).some((n) => check.files[n] !== set.draft[n]);
  say($("pol-check-stale"), changed ? "The draft changed since this check; validate again." : "");
}

// goTo opens file in the editor with the caret at row and col.
function goTo(file, row, col) {
  selectTab($("pol-tab-editor"));
  openFile(file);
  editor.goTo(row, col);
}

// markEditor marks the open file's lines with the last check: problems,
// and the lines tests covered and did not.
function markEditor() {
  const marks = new Map();
  const add = (row, cls, note) => {
    if (!row) return;
    const m = marks.get(row) || { cls: [], notes: [] };
    m.cls.push(cls);
    if (note) m.notes.push(note);
    marks.set(row, m);
  };
  if (check) {
    for (const p of check.problems) {
      if (p.file === set.current) add(p.row || 1, "problem", (p.code ? p.code + ": " : "") + p.message);
    }
    const cov = coverageOf(set.current);
    for (const r of cov?.covered || []) for (let i = r.start; i <= r.end; i++) add(i, "covered", "");
    for (const r of cov?.not_covered || []) for (let i = r.start; i <= r.end; i++) add(i, "uncovered", "not covered by the tests");
  }
  editor.mark(marks);
  const cov = coverageOf(set.current);
  $("pol-file-coverage").textContent = cov ? `${cov.percent.toFixed(1)}% of lines covered` : "";
}

// ---- Changes and activation ----

function renderChanges() {
  const names = changedFiles();
  const box = $("pol-diff");
  box.replaceChildren();
  const active = set.info.status?.active_revision === set.info.revision ? ", also active on this replica" : "";
  say($("pol-changes-summary"), names.length
    ? `${checks.plural(names.length, "file")} changed against revision ${set.info.revision} (the stored set the draft was read from${active}).`
    : `No changes: the draft is revision ${set.info.revision}${active}.`);
  for (const name of names) {
    const before = name in set.base ? set.base[name].split("\n") : [];
    const after = name in set.draft ? set.draft[name].split("\n") : [];
    const ops = diffLines(before, after);
    const { added, removed } = counts(ops);
    const what = !(name in set.base) ? "added" : !(name in set.draft) ? "removed" : "changed";
    const head = el("div", null, "diff-head");
    head.append(el("h3", name, "mono"), el("span", `${what}, +${added} −${removed}`, "muted"));
    if (!set.readOnly) {
      const rb = el("button", "Revert", "secondary");
      rb.type = "button";
      rb.setAttribute("aria-label", `Revert ${name}`);
      rb.addEventListener("click", () => revert(name));
      head.append(rb);
    }
    const section = el("section", null, "diff-file");
    section.dataset.file = name;
    section.append(head, diffTable(name, ops));
    box.append(section);
  }
}

async function activate() {
  const state = $("pol-activate-state");
  state.classList.remove("error");
  state.replaceChildren();
  if (set.readOnly) return;
  if (changedFiles().length === 0) {
    say(state, "Nothing to activate: the draft is the stored set.");
    return;
  }
  const files = { ...set.draft };
  const message = $("pol-message").value.trim() || "edited in the admin UI";
  say($("pol-loading"), "");
  $("pol-activate").disabled = true;
  say(state, "Checking, testing and storing the draft…");
  let stored;
  try {
    stored = await call("PUT", "/v1/policies", { files, message }, undefined, { "If-Match": `"${set.info.kv_revision}"` });
  } catch (e) {
    $("pol-activate").disabled = !!set.readOnly;
    if (e.status === 401) return;
    state.classList.add("error");
    switch (e.code) {
      case "policy_invalid":
        say(state, "Warden refused the draft; nothing was stored:");
        state.append(checks.problemList(e.problems));
        check = { files, problems: e.problems, report: e.tests };
        showCheck();
        renderFiles();
        markEditor();
        break;
      case "conflict":
        say(state, "Not stored: someone changed the policy set since you read it.");
        call("GET", "/v1/policies").then((info) => stale(info, "Someone changed the policy set since you read it"), () => stale(set.info, "Someone changed the policy set since you read it"));
        break;
      case "read_only":
        say(state, "Not stored: " + e.message);
        setReadOnly(dirReason);
        openFile(set.current);
        break;
      default:
        say(state, "Not stored: " + describe(e));
    }
    return;
  }
  set.base = files;
  set.info = { ...set.info, revision: stored.revision, kv_revision: stored.kv_revision, message, at: new Date().toISOString() };
  $("pol-message").value = "";
  renderAll();
  say(state, `Stored as revision ${stored.revision}. Waiting for this replica to activate it…`);
  await waitActive(stored.revision, state);
  $("pol-activate").disabled = !!set.readOnly;
}

// waitActive polls the policy status until this replica reports revision
// active, or says why not.
async function waitActive(revision, state) {
  const deadline = Date.now() + activationWait;
  while (shown && Date.now() < deadline) {
    let info;
    try {
      info = await call("GET", "/v1/policies");
    } catch (e) {
      if (e.status === 401) return;
      say(state, `Stored as revision ${revision}; could not read the status: ${describe(e)}`);
      return;
    }
    if (info.revision === revision) {
      set.info = info;
      renderSummary();
    }
    const st = info.status || {};
    if (st.active_revision === revision) {
      say(state, `Revision ${revision} is active on this replica.`);
      state.classList.add("allow");
      return;
    }
    if (st.last_error && st.last_error.revision === revision) {
      say(state, `Stored as revision ${revision}, but this replica refused it: ${st.last_error.message}`);
      state.classList.add("error");
      return;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  if (shown) say(state, `Stored as revision ${revision}; this replica has not activated it after ${activationWait / 1000} s. See Overview for its state.`);
}
