// app.js: the UI's entry point. Views are sections of index.html picked by
// the URL's hash (#/overview, #/subjects, #/live, ...); without an admin token
// every view but sign-in sends the admin to sign in first.

import { token, clearToken, onUnauthorized, describe } from "./api.js";
import { $, say } from "./dom.js";
import * as signin from "./signin.js";
import * as overview from "./overview.js";
import * as subjects from "./subjects.js";
import * as revocations from "./revocations.js";
import * as signals from "./signals.js";
import * as policies from "./policies.js";
import * as live from "./live.js";

const views = { signin, overview, subjects, revocations, signals, policies, live };
let current = null;

// go shows a view, leaving the current one first.
export function go(name, message) {
  if (location.hash !== "#/" + name) {
    pendingMessage = message;
    location.hash = "#/" + name; // route() runs on hashchange
    return;
  }
  route(message);
}
let pendingMessage = "";

// route shows the view the hash names. A hash may carry parameters for the
// view, #/subjects?subject=alice; a change of them enters the view afresh.
function route(message) {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?", 2);
  let name = path || "overview";
  if (!views[name]) name = "overview";
  if (name !== "signin" && !token()) name = "signin";
  const entering = !current || current.name !== name || current.query !== query;
  if (current && entering) current.view.leave();
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.dataset.view !== name;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const signedIn = token() !== "";
  $("nav").hidden = !signedIn;
  $("signout").hidden = !signedIn;
  $("who").textContent = signedIn ? "Signed in as " + subjectOf(token()) : "";
  // A message is shown until the next view; a second route to the same
  // view (two requests answered 401 at once) keeps it.
  const msg = message || pendingMessage;
  pendingMessage = "";
  if (msg || entering) say($("notice"), msg);
  current = { name, query, view: views[name] };
  if (entering) {
    views[name].enter({ go, params: new URLSearchParams(query) });
    const h1 = document.querySelector(`#view-${name} h1`);
    if (h1 && document.activeElement === document.body) $("main").focus();
  }
}

// subjectOf reads the sub claim of a JWT for display only; Warden verifies
// the token on every request.
function subjectOf(t) {
  try {
    const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const sub = JSON.parse(atob(part)).sub;
    return typeof sub === "string" && sub ? sub : "an admin";
  } catch {
    return "an admin";
  }
}

onUnauthorized((e) => {
  clearToken();
  go("signin", describe(e));
});

$("signout").addEventListener("click", () => {
  clearToken();
  policies.forgetDraft();
  go("signin", "Signed out.");
});

window.addEventListener("hashchange", () => route());
route();
