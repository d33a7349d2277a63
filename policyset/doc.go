// Package policyset is the policy lifecycle: which Rego modules, tests and
// data documents a replica decides with, where they come from, and how a
// new version reaches every replica without ever activating a broken one.
//
// # Where it sits
//
// Nothing here is on the request path. decision.Engine decides with the set
// it holds; a Manager is the one thing that swaps a new set into it, after
// the engine has checked the set whole (compiled, its tests run). web's
// admin API reads and proposes sets through the Manager.
//
//   - A Set is one version of the files, by path, with its revision
//     (decision.Revision, the one content hash every part uses), who stored
//     it and why.
//   - A Source is where the sets come from: a *Store (policies.source:
//     nats), the NATS key-value bucket WARDEN_POLICIES shared by the fleet
//     and written through the admin API, or a *Dir (policies.source: dir),
//     a directory deployed by GitOps and read-only over the API
//     (ErrReadOnly).
//   - A Manager follows one Source and keeps one engine in step with it,
//     records refusals (Status) and says whether the replica is ready.
//
// # The store
//
// A Store keeps the whole policy set as ONE value of the bucket (key "set",
// file storage, the last 16 versions kept), so a push is atomic: a replica
// sees the old set or the new one, never half of it. The value is JSON,
// {"v":1,"files":{path: text},"revision","author","message","at"}, readable
// with `nats kv get WARDEN_POLICIES set`.
//
// The store does not compile anything. Put is optimistic: it names the KV
// revision it replaces and gets ErrConflict if someone was faster; the first
// replica fills an empty bucket (Put with expected 0), and concurrent
// seeders cannot both win. Watch survives reconnects and server restarts,
// hands values that are not valid sets to its function as errors, and
// delivers only the newest set when several arrive during one check.
//
// # The manager
//
// NewManager seeds an empty source (after checking the seed), applies the
// source's set and follows it. Every set is checked by the engine before it
// is activated; a set that fails keeps the active one answering and is
// recorded, with each problem's file, row and column and the failing tests,
// in Status.LastError until a later set is activated. Propose checks a set
// before it is stored, so a broken set reaches the bucket only around
// Warden, and then every replica refuses it. A refused set does not make a
// replica unready (every replica refuses it alike, and taking them all out
// of service is the outage refusing it prevents); a replica that has no set
// from its source to fall back on is, because its own initial set need not
// be the fleet's.
package policyset
