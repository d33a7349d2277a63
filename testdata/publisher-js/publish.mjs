// Publishes one Warden permission-change event straight to NATS JetStream,
// as an identity provider hook written in JavaScript would: the documented
// JSON (docs/events.md) on warden.events.<type>, with Nats-Msg-Id set to the
// event id so that a retried publish is stored once.
//
//   NKEY_SEED_FILE=warden-data/nats-auth/publisher.nk \
//     node publish.mjs nats://127.0.0.1:4222 roles_changed alice@example.com demoted
//
// Warden's embedded NATS server requires authentication: the publisher
// user's nkey (it may publish to warden.events.> and nothing else).
import { connect, nkeyAuthenticator } from "nats";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

const [url, type, subject, reason] = process.argv.slice(2);
if (!url || !type || !subject) {
  console.error("usage: node publish.mjs <nats-url> <type> <subject> [reason]");
  process.exit(2);
}
const seedFile = process.env.NKEY_SEED_FILE;
const nc = await connect({
  servers: url,
  authenticator: seedFile ? nkeyAuthenticator(new TextEncoder().encode(readFileSync(seedFile, "utf8").trim())) : undefined,
});
const js = nc.jetstream();
const event = {
  v: 1,
  id: randomUUID(),
  type,
  subject,
  at: new Date().toISOString(),
  actor: "idp-hook-js",
  reason: reason ?? "",
};
const ack = await js.publish(`warden.events.${type}`, JSON.stringify(event), { msgID: event.id });
console.log(JSON.stringify({ seq: ack.seq, duplicate: ack.duplicate, id: event.id }));
await nc.drain();
