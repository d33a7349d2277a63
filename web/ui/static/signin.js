// signin.js: the sign-in view. A pasted token is tried against
// GET /v1/status before it is kept, so a wrong or expired token is reported
// here rather than on the next page.

import { call, setToken, describe } from "./api.js";
import { $, say } from "./dom.js";

let nav;
let wired = false;

export async function enter({ go }) {
  nav = go;
  say($("signin-error"), "");
  if (!wired) {
    wired = true;
    $("signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      signIn($("token").value.trim());
    });
    $("dev-token").addEventListener("click", devToken);
  }
  $("token").focus();
  try {
    const cfg = await fetch("config.json", { cache: "no-store" }).then((r) => r.json());
    $("dev-token").hidden = !cfg.dev_admin_token;
  } catch {
    $("dev-token").hidden = true;
  }
}

export function leave() {}

async function signIn(t) {
  if (!t) {
    say($("signin-error"), "Paste an admin token first.");
    $("token").focus();
    return;
  }
  $("signin-submit").disabled = true;
  try {
    await call("GET", "/v1/status", undefined, t);
    setToken(t);
    $("token").value = "";
    nav("overview");
  } catch (e) {
    say($("signin-error"), describe(e));
    $("token").focus();
  } finally {
    $("signin-submit").disabled = false;
  }
}

// devToken asks a server in development mode for a short-lived admin
// token; the server hands one out only to clients on its own machine.
async function devToken() {
  try {
    const r = await call("POST", "/v1/dev/admin-token", {}, "");
    await signIn(r.token);
  } catch (e) {
    say($("signin-error"), "No development admin token: " + describe(e));
  }
}
