// playground.js: the policies view's playground. It evaluates one decision
// with POST /v1/explain, against the draft being edited or the active set,
// and shows the decision, its reasons, the rules that produced a value, the
// exact policy input and OPA's evaluation trace. The token is pasted, or in
// development mode minted for any subject and roles (POST /v1/dev/token).

import { call, describe } from "./api.js";
import { $, el, say } from "./dom.js";

let ctx; // the policies view: {draft(), problemList(problems), location(file, row, col)}

// setup wires the form; the policies view calls it once. devTokens says the
// server mints development tokens; otherwise only pasting a token is offered.
export function setup(context, devTokens) {
  ctx = context;
  $("pol-mint").hidden = !devTokens;
  $("pol-mint-button").addEventListener("click", mint);
  $("pol-play-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    evaluate();
  });
}

// mint asks the server for a development token for the subject and roles.
async function mint() {
  const sub = $("pol-mint-sub").value.trim();
  const roles = $("pol-mint-roles").value.split(/[\s,]+/).filter(Boolean);
  const state = $("pol-mint-state");
  state.classList.remove("error");
  $("pol-mint-sub").removeAttribute("aria-invalid");
  if (!sub) {
    fail(state, "Give the subject (sub) of the token to mint.", $("pol-mint-sub"));
    return;
  }
  try {
    const r = await call("POST", "/v1/dev/token", { sub, roles });
    $("pol-play-token").value = r.token;
    say(state, `Minted a development token for ${sub}` + (roles.length ? ` with roles ${roles.join(", ")}` : " without roles") +
      `, valid until ${expiry(r.token)}.`);
  } catch (e) {
    if (e.status === 401) return; // app.js sends the admin to sign in
    fail(state, "No token minted: " + describe(e));
  }
}

function expiry(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return new Date(claims.exp * 1000).toLocaleTimeString();
  } catch {
    return "it expires";
  }
}

function fail(node, text, field) {
  say(node, text);
  node.classList.add("error");
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

// FieldError is a mistake in one field of the form.
class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// object parses a JSON-object field.
function object(id, label) {
  const field = $(id);
  field.removeAttribute("aria-invalid");
  const text = field.value.trim();
  if (!text) return {};
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FieldError(field, `${label} is not valid JSON: ${e.message}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new FieldError(field, `${label} must be a JSON object, e.g. {"type": "order"}.`);
  }
  return v;
}

async function evaluate() {
  const state = $("pol-play-state");
  state.classList.remove("error");
  for (const id of ["pol-play-token", "pol-play-action"]) $(id).removeAttribute("aria-invalid");
  const token = $("pol-play-token").value.trim();
  const action = $("pol-play-action").value.trim();
  if (!token) return fail(state, "Paste a token" + ($("pol-mint").hidden ? "." : ", or mint one."), $("pol-play-token"));
  if (!action) return fail(state, "Give the action to decide, e.g. orders:read.", $("pol-play-action"));
  const body = { token, action };
  try {
    body.resource = object("pol-play-resource", "Resource");
    body.context = object("pol-play-context", "Context");
  } catch (e) {
    if (!(e instanceof FieldError)) throw e;
    return fail(state, e.message, e.field);
  }
  const draft = $("pol-play-draft").checked;
  if (draft) body.files = ctx.draft();
  say(state, "Evaluating…");
  $("pol-play-run").disabled = true;
  try {
    const ex = await call("POST", "/v1/explain", body);
    say(state, "");
    render(ex, draft);
  } catch (e) {
    if (e.status === 401) return;
    $("pol-play-result").hidden = true;
    if (e.code === "policy_invalid") {
      fail(state, "The draft does not compile, so it cannot decide. Fix these problems, or evaluate against the active set:");
      state.append(ctx.problemList(e.problems));
    } else {
      fail(state, describe(e));
    }
  } finally {
    $("pol-play-run").disabled = false;
  }
}

function render(ex, draft) {
  const d = ex.decision || {};
  $("pol-play-result").hidden = false;
  const verdict = $("pol-verdict");
  verdict.textContent = d.allow ? "Allowed" : "Denied";
  verdict.className = "verdict " + (d.allow ? "allow" : "deny");

  const facts = [
    ["Reason", d.reason],
    ["Policy revision", (d.policy_revision || "—") + (draft ? " (the draft)" : " (the active set)")],
  ];
  if (d.refresh) facts.push(["Refresh", "yes: the client should refresh its token and retry"]);
  if (ex.revoked) facts.push(["Revoked", `${ex.revoked}: the revocation ledger decided; the policy did not run`]);
  if (!ex.input && !ex.revoked && /^token_/.test(d.reason || "")) {
    facts.push(["Token", `refused (${d.reason}) before any policy ran`]);
  }
  if (d.headers && Object.keys(d.headers).length) facts.push(["Headers", JSON.stringify(d.headers)]);
  const dl = $("pol-decision");
  dl.replaceChildren();
  for (const [k, v] of facts) dl.append(el("dt", k), el("dd", v));

  const reasons = $("pol-reasons");
  reasons.replaceChildren(...(d.reasons || []).map((r) => el("li", r)));
  $("pol-reasons-none").hidden = (d.reasons || []).length > 0;

  const err = $("pol-play-error");
  err.replaceChildren();
  if (ex.error) err.append(el("p", "The policy could not decide:", "error"), ctx.problemList([ex.error]));
  const t = ex.tests;
  if (t && (t.counts.fail || t.counts.error)) {
    err.append(el("p", `The draft's tests do not all pass (${t.counts.fail} failed, ${t.counts.error} erred): ` +
      "Warden would refuse to activate it. The decision above is the draft's all the same.", "notice"));
  }

  const rules = $("pol-rules").tBodies[0];
  rules.replaceChildren(
    ...(ex.rules || []).map((r) => {
      const tr = el("tr");
      const where = el("td");
      where.append(ctx.location(r.file, r.row, r.col));
      tr.append(el("td", r.rule + (r.default ? " (default)" : ""), "mono"), el("td", JSON.stringify(r.value), "mono"), where);
      return tr;
    }),
  );
  $("pol-rules-box").hidden = !(ex.rules || []).length;

  $("pol-input").textContent = ex.input ? JSON.stringify(ex.input, null, 2) : "No policy input: the policy did not run.";
  const trace = ex.trace || [];
  $("pol-trace").textContent = trace.length ? trace.join("\n") : "No trace: the policy did not run.";
  $("pol-trace-count").textContent = trace.length ? ` (${trace.length} lines${ex.trace_truncated ? ", cut short" : ""})` : "";
}
