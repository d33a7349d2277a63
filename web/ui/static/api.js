// api.js: the one way the UI talks to Warden's admin API. The admin token
// lives in sessionStorage (this tab only) and travels as a bearer header;
// the UI never sets a cookie.

const tokenKey = "warden.adminToken";

export function token() {
  return sessionStorage.getItem(tokenKey) || "";
}

export function setToken(t) {
  sessionStorage.setItem(tokenKey, t);
}

export function clearToken() {
  sessionStorage.removeItem(tokenKey);
}

// APIError is an error answer of the API: its HTTP status, the code and the
// message of Warden's error shape {"error":{"code","message"}}. A refused
// policy set (422 policy_invalid) also carries its problems and test report.
export class APIError extends Error {
  constructor(status, code, message, detail = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.problems = detail.problems || [];
    this.tests = detail.tests || null;
  }
}

// Listeners told when the API says the admin token is no good (401).
const unauthorized = new Set();
export function onUnauthorized(fn) {
  unauthorized.add(fn);
}

// call sends a request with the admin token and returns the decoded JSON
// body (or the text of a text/plain one), or throws an APIError. A 401 also
// tells the onUnauthorized listeners, so any page sends the admin back to
// sign in with the reason. extraHeaders are added as given (e.g. If-Match).
export async function call(method, path, body, tokenOverride, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  const t = tokenOverride ?? token();
  if (t) headers.Authorization = "Bearer " + t;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, "network", "Warden did not answer (" + e.message + "). Is the server running?");
  }
  let data = null;
  const type = resp.headers.get("Content-Type") || "";
  if (type.startsWith("application/json")) {
    data = await resp.json().catch(() => null);
  } else if (resp.ok && type.startsWith("text/plain")) {
    data = await resp.text();
  }
  if (resp.ok) return data;
  const err = data && data.error ? data.error : {};
  const e = new APIError(resp.status, err.code || "http_" + resp.status, err.message || resp.statusText || "request failed", err);
  if (resp.status === 401 && tokenOverride === undefined) {
    for (const fn of unauthorized) fn(e);
  }
  throw e;
}

// describe turns an APIError into a sentence for the admin.
export function describe(e) {
  if (!(e instanceof APIError)) return String(e && e.message ? e.message : e);
  switch (e.status) {
    case 401:
      if (/token_expired/.test(e.message)) return "Your admin token has expired. Sign in with a new one. (" + e.message + ")";
      return "Warden did not accept the admin token: " + e.message;
    case 403:
      return "Not allowed: " + e.message + ". Ask for a token the admin policy allows.";
    case 0:
      return e.message;
    default:
      return e.message + " (HTTP " + e.status + ", " + e.code + ")";
  }
}
