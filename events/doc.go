// Package events closes the stale-permissions window of stateless JWTs: it
// carries permission-change events over NATS JetStream and folds them into a
// revocation ledger that the decision engine consults on every request.
//
// # Where it sits
//
// On the request path, decision.Engine.Decide asks its decision.Revocations
// whether a verified token is still honoured before Rego runs. A *Consumer
// implements that interface: it answers from a *Ledger, which is an in-memory
// fold of every event still relevant, and adds the outage policy
// (events.on_disconnect) when the replica has lost the stream. Nothing on the
// request path talks to NATS; Check is a lock-free map lookup that allocates
// nothing (a subject with revoked jtis adds a read lock of its own).
//
// Off the request path:
//
//   - StartEmbedded runs nats-server in process with JetStream file storage
//     under the data directory (the default), Connect dials an external
//     server or cluster. Both return a plain *nats.Conn.
//   - EnsureStream creates or updates the WARDEN_EVENTS stream. Its MaxAge is
//     tokens.max_lifetime + leeway: no accepted token lives longer, so every
//     event that can still matter is in the stream, and replaying the stream
//     rebuilds the whole state.
//   - A Publisher validates an Event, gives it an id and a time, and publishes
//     it with Nats-Msg-Id = id so that retries are deduplicated.
//   - A Consumer replays the stream from the start with an ordered (ephemeral)
//     consumer, applies each message to its Ledger, resumes after the last
//     applied sequence when the connection comes back, and reports Ready and
//     Status.
//   - A Heartbeat announces a replica's applied sequence and policy revision
//     on warden.replicas.<id>; a Fleet listens to them, which is how an admin
//     sees that a change is "enforced on 3/3 replicas".
//
// The same NATS also carries the policy sets (policies.source: nats); that
// lifecycle is package policyset's, which only shares the connection.
//
// # Event schema, version 1
//
// An event is a JSON object published to warden.events.<type>; the user's
// subject is never part of the NATS subject, so e-mail addresses, URNs and
// any other string work. event.schema.json (also exported as Schema) is the
// machine-readable contract; Parse is the reference implementation of it.
//
// Parsing is strict, on purpose: unknown fields, duplicate fields, fields
// spelt in another case, null values, invalid UTF-8, trailing data and
// messages over MaxEventBytes are errors. A misspelt "expires_at" silently
// ignored would be a revocation that does not do what its author meant, and
// for a security feed a loud rejection (logged, counted in
// Status.BadMessages) is the better failure. A future incompatible change
// gets a new "v"; this package reads v = 1 only.
//
// # Fold rules
//
// The ledger keeps, per subject and per issuer scope ("" = every issuer), the
// latest time of each kind of event; folding takes maxima only, so it is
// order-independent and duplicate-safe, and every replica that has applied
// the same set of events gives the same answers.
//
//   - roles_changed: a token of the subject with iat <= at, compared in
//     whole seconds, is token_stale
//     (the engine sets refresh: true). When the event carries perm_version
//     and the token carries the issuer's permission-version claim, the
//     versions are compared instead (token version < perm_version is stale),
//     which is immune to clock skew between the identity provider and the
//     publisher.
//   - sessions_revoked: the same rule, answering token_revoked.
//   - token_revoked: the token with that jti (and subject, and issuer when
//     the event names one) is token_revoked until it expires.
//   - subject_disabled / subject_enabled: for the tokens an event applies to,
//     the later of the latest disable and the latest enable wins; on a tie
//     the disable wins.
//
// When several apply, subject_disabled beats token_revoked beats
// token_stale: telling a client to refresh a token that is revoked anyway
// would only cost a round trip.
//
// JWT iat has one-second resolution while at does not, so a token of the
// same second as the change (even one minted after it) is stale and its client
// refreshes again; this errs on the safe side for at most a second.
//
// Every entry is dropped at at + max_lifetime + leeway, when no token it could
// match can still be valid. That includes subject_disabled: Warden closes the
// window in which already-issued tokens stay valid, it is not the identity
// provider. A subject that must stay locked out has to be disabled at the
// identity provider too (which stops new tokens); the stream's MaxAge forgets
// the event at the same moment, so replicas started later agree.
//
// # Outage
//
// While a replica cannot follow the stream (NATS unreachable, consumer
// stalled, catching up after a reconnect) it keeps its state and reports
// degraded. After Grace it applies OnDisconnect: fresh_only accepts only
// tokens issued within FreshWindow (they were minted with current roles),
// deny refuses all, allow adds nothing. Before the first replay has caught
// up there is no state to trust, so the policy applies at once.
package events
