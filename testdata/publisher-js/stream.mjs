// Publishes Warden permission-change events straight to NATS JetStream
// without pause, as an identity provider's hook written in JavaScript would
// under load, until it is sent SIGTERM or SIGINT (or for DURATION_MS): one
// roles_changed event for a new subject (<prefix>-<n>) every INTERVAL_MS
// (default 20). It prints one JSON line per publish, so that a test or an
// operator can tell which events the stream acknowledged and which got an
// error:
//
//   {"n":0,"id":"js-0","subject":"js-user-0","sent":1733390000123,"done":1733390000125,"seq":17}
//   {"n":1,"id":"js-1","subject":"js-user-1","sent":…,"done":…,"error":"TIMEOUT"}
//
//   NKEY_SEED_FILE=publisher.nk node stream.mjs nats://127.0.0.1:4222,nats://127.0.0.1:4223 js-user
//
// A cluster's URLs are given comma-separated; the client fails over between
// them. Each event's Nats-Msg-Id is its id, so a publish retried after a
// lost acknowledgement is stored once.
import { connect, nkeyAuthenticator } from "nats";
import { readFileSync } from "node:fs";

const [urls, prefix = "js-user"] = process.argv.slice(2);
if (!urls) {
  console.error("usage: node stream.mjs <nats-url[,nats-url...]> [subject-prefix]");
  process.exit(2);
}
const interval = Number(process.env.INTERVAL_MS ?? 20);
const duration = Number(process.env.DURATION_MS ?? 0);
const seedFile = process.env.NKEY_SEED_FILE;

const nc = await connect({
  servers: urls.split(","),
  authenticator: seedFile ? nkeyAuthenticator(new TextEncoder().encode(readFileSync(seedFile, "utf8").trim())) : undefined,
  maxReconnectAttempts: -1,
  reconnectTimeWait: 100,
  name: "warden-publisher-js",
});
const js = nc.jetstream({ timeout: 2000 });

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => (stopping = true));
if (duration > 0) setTimeout(() => (stopping = true), duration);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
for (let n = 0; !stopping; n++) {
  const event = {
    v: 1,
    id: `js-${n}`,
    type: "roles_changed",
    subject: `${prefix}-${n}`,
    at: new Date().toISOString(),
    actor: "idp-hook-js",
    reason: "load test",
  };
  const line = { n, id: event.id, subject: event.subject, sent: Date.now() };
  try {
    const ack = await js.publish(`warden.events.${event.type}`, JSON.stringify(event), {
      msgID: event.id,
      expect: { streamName: "WARDEN_EVENTS" },
    });
    line.seq = ack.seq;
  } catch (e) {
    line.error = String(e.code ?? e.message ?? e);
  }
  line.done = Date.now();
  process.stdout.write(JSON.stringify(line) + "\n");
  await sleep(interval);
}
await nc.drain();
