// subjects.js: look a subject up — the ledger entries this replica enforces
// against it (GET /v1/revocations?subject=) and its recent decisions here
// (GET /v1/decisions/recent?subject=) — and push a permission change for it
// (POST /v1/events?wait=), reporting on how many replicas it is enforced
// from their heartbeats.

import { call, describe } from "./api.js";
import { $, row, say } from "./dom.js";
import { entryRow, head, serverClock, tick } from "./ledger.js";

// enforceWait is how long a push waits for every replica to apply it.
const enforceWait = "5s";

const help = {
  roles_changed: "Tokens issued before now get token_stale with refresh: the client fetches a new token with the new roles.",
  sessions_revoked: "Tokens issued before now get token_stale with refresh: the subject must sign in again.",
  subject_disabled: "Every token of the subject gets subject_disabled, whenever issued, until a subject_enabled.",
  subject_enabled: "Lifts an earlier subject_disabled; tokens issued since are honoured again.",
  token_revoked: "The one token with this jti gets token_revoked; the subject's other tokens are unaffected.",
};

let wired = false;
let shown = ""; // the subject looked up
let timer = null;
let now = Date.now;

// enter looks up the subject of #/subjects?subject=..., the link the live
// decisions put on each subject.
export function enter({ params }) {
  if (!wired) {
    wired = true;
    head($("subject-ledger"), false);
    $("lookup-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const s = $("lookup-subject").value.trim();
      if (s) {
        $("push-subject").value = s;
        lookup(s);
      }
    });
    $("push-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      push();
    });
    $("push-type").addEventListener("change", typeChanged);
  }
  typeChanged();
  timer = setInterval(() => tick(ledgerBody(), now), 1000);
  const asked = params.get("subject");
  if (asked) {
    $("lookup-subject").value = asked;
    $("push-subject").value = asked;
  }
  if (asked || shown) lookup(asked || shown);
}

export function leave() {
  clearInterval(timer);
  timer = null;
}

function ledgerBody() {
  return document.querySelector("#subject-ledger tbody");
}

function typeChanged() {
  const type = $("push-type").value;
  $("push-type-help").textContent = help[type] || "";
  $("push-jti-field").hidden = type !== "token_revoked";
}

async function lookup(subject) {
  shown = subject;
  const q = new URLSearchParams({ subject });
  let ledger, recent;
  try {
    [ledger, recent] = await Promise.all([
      call("GET", "/v1/revocations?" + q),
      call("GET", "/v1/decisions/recent?" + q + "&limit=50"),
    ]);
  } catch (e) {
    if (e.status !== 401) say($("notice"), describe(e));
    return;
  }
  if (subject !== shown) return; // a newer lookup started meanwhile
  say($("notice"), "");
  $("subject-hint").textContent = `What this replica knows of “${subject}”.`;
  now = serverClock(ledger.now);
  ledgerBody().replaceChildren(...ledger.entries.map((e) => entryRow(e, false)));
  tick(ledgerBody(), now);
  $("subject-ledger-empty").hidden = ledger.entries.length > 0;

  const body = document.querySelector("#subject-decisions tbody");
  body.replaceChildren(
    ...recent.entries.map((e) => {
      const tr = row([
        [new Date(e.time).toLocaleTimeString(), "mono"],
        e.action,
        [e.resource_type, e.resource_id].filter(Boolean).join(" ") || "—",
        e.allow ? ["allow", "allow"] : ["deny", "deny"],
        e.reason,
        e.replica,
      ]);
      tr.dataset.decisionId = e.decision_id;
      tr.dataset.reason = e.reason;
      return tr;
    }),
  );
  $("subject-decisions-empty").hidden = recent.entries.length > 0;
}

async function push() {
  const ev = {
    type: $("push-type").value,
    subject: $("push-subject").value.trim(),
    reason: $("push-reason").value.trim(),
  };
  const issuer = $("push-issuer").value.trim();
  if (issuer) ev.issuer = issuer;
  if (ev.type === "token_revoked") ev.jti = $("push-jti").value.trim();
  const missing = [
    [!ev.subject, "push-subject", "Enter the subject (the token's sub claim, exactly)."],
    [ev.type === "token_revoked" && !ev.jti, "push-jti", "Enter the jti of the token to revoke."],
    [!ev.reason, "push-reason", "Say why: the reason is kept with the change for the audit trail."],
  ].find(([bad]) => bad);
  if (missing) {
    say($("push-error"), missing[2]);
    $(missing[1]).setAttribute("aria-invalid", "true");
    $(missing[1]).focus();
    return;
  }
  for (const id of ["push-subject", "push-jti", "push-reason"]) $(id).removeAttribute("aria-invalid");
  say($("push-error"), "");
  say($("push-result"), `Pushing ${ev.type} for ${ev.subject}…`);
  $("push-submit").disabled = true;
  try {
    const r = await call("POST", "/v1/events?wait=" + enforceWait, ev);
    say($("push-result"), await enforcedText(r));
    $("push-result").dataset.seq = String(r.seq);
    $("push-reason").value = "";
    $("lookup-subject").value = ev.subject;
    await lookup(ev.subject);
  } catch (e) {
    say($("push-result"), "");
    if (e.status !== 401) say($("push-error"), "Not pushed: " + describe(e));
  } finally {
    $("push-submit").disabled = false;
  }
}

// enforcedText says where the event is enforced: "enforced on N/M replicas
// in X ms", naming the replicas still behind when not all have applied it.
async function enforcedText(r) {
  const head = `${r.event.type} for ${r.event.subject} pushed as event ${r.seq}${r.duplicate ? " (already in the stream)" : ""}.`;
  const enf = r.enforced;
  if (!enf || enf.total === 0) return head + " No replica has reported a heartbeat yet.";
  let text = `${head} Enforced on ${enf.applied}/${enf.total} replicas in ${enf.elapsed_ms} ms.`;
  if (enf.applied < enf.total) {
    try {
      const behind = (await call("GET", "/v1/replicas")).replicas.filter((x) => x.applied_seq < r.seq).map((x) => x.id);
      if (behind.length) text += ` Not yet applied on ${behind.join(", ")} (they apply it when they catch up).`;
    } catch {
      // the count above stands on its own
    }
  }
  return text;
}
