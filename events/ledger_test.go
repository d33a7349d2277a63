package events

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

const (
	idp   = "https://idp.example.com/"
	other = "https://other.example.com/"
)

var evSeq int

// ev builds a valid event; mods adjust it.
func ev(ty Type, subject string, at time.Time, mods ...func(*Event)) Event {
	evSeq++
	e := Event{V: 1, ID: fmt.Sprintf("ev-%d", evSeq), Type: ty, Subject: subject, At: at}
	for _, m := range mods {
		m(&e)
	}
	return e
}

func issuer(iss string) func(*Event)   { return func(e *Event) { e.Issuer = iss } }
func jti(j string) func(*Event)        { return func(e *Event) { e.JTI = j } }
func version(v int64) func(*Event)     { return func(e *Event) { e.PermVersion = v } }
func expires(t time.Time) func(*Event) { return func(e *Event) { e.ExpiresAt = t } }

func newLedger() *Ledger {
	return NewLedger(LedgerOptions{MaxLifetime: time.Hour, Leeway: 30 * time.Second})
}

func TestLedgerRules(t *testing.T) {
	now := t0.Add(time.Minute)
	before, after := t0.Add(-10*time.Minute), t0.Add(10*time.Second)
	tests := []struct {
		name   string
		events []Event
		token  *claims.Claims
		now    time.Time
		want   decision.Reason
	}{
		{"no events", nil, tok("alice", idp, before), now, ""},
		{"roles_changed: older token is stale", []Event{ev(TypeRolesChanged, "alice", t0)}, tok("alice", idp, before), now, decision.ReasonTokenStale},
		{"roles_changed: newer token is fine", []Event{ev(TypeRolesChanged, "alice", t0)}, tok("alice", idp, after), now, ""},
		{"roles_changed: iat equal to at is stale", []Event{ev(TypeRolesChanged, "alice", t0)}, tok("alice", idp, t0), now, decision.ReasonTokenStale},
		{"roles_changed: same second, after a whole-second at, is stale", []Event{ev(TypeRolesChanged, "alice", t0)}, tok("alice", idp, t0.Add(900*time.Millisecond)), now, decision.ReasonTokenStale},
		{"roles_changed: the next second is fine", []Event{ev(TypeRolesChanged, "alice", t0.Add(999*time.Millisecond))}, tok("alice", idp, t0.Add(time.Second)), now, ""},
		{"sessions_revoked: iat equal to at is revoked", []Event{ev(TypeSessionsRevoked, "alice", t0)}, tok("alice", idp, t0), now, decision.ReasonTokenRevoked},
		{"perm_version: token without version, same second, is stale", []Event{ev(TypeRolesChanged, "alice", t0, version(7))}, tok("alice", idp, t0), now, decision.ReasonTokenStale},
		{"roles_changed: same second, before at, is stale", []Event{ev(TypeRolesChanged, "alice", t0.Add(700*time.Millisecond))}, tok("alice", idp, t0), now, decision.ReasonTokenStale},
		{"roles_changed: other subject unaffected", []Event{ev(TypeRolesChanged, "alice", t0)}, tok("bob", idp, before), now, ""},
		{"roles_changed: subject compared exactly", []Event{ev(TypeRolesChanged, "alice", t0)}, tok("Alice", idp, before), now, ""},
		{"roles_changed: issuer-scoped matches its issuer", []Event{ev(TypeRolesChanged, "alice", t0, issuer(idp))}, tok("alice", idp, before), now, decision.ReasonTokenStale},
		{"roles_changed: issuer-scoped skips other issuers", []Event{ev(TypeRolesChanged, "alice", t0, issuer(idp))}, tok("alice", other, before), now, ""},
		{"roles_changed: unscoped matches every issuer", []Event{ev(TypeRolesChanged, "alice", t0)}, tok("alice", other, before), now, decision.ReasonTokenStale},
		{"perm_version: lower version is stale even if newer", []Event{ev(TypeRolesChanged, "alice", t0, version(7))}, withVersion(tok("alice", idp, after), 6), now, decision.ReasonTokenStale},
		{"perm_version: current version is fine even if older", []Event{ev(TypeRolesChanged, "alice", t0, version(7))}, withVersion(tok("alice", idp, before), 7), now, ""},
		{"perm_version: token without version falls back to time", []Event{ev(TypeRolesChanged, "alice", t0, version(7))}, tok("alice", idp, before), now, decision.ReasonTokenStale},
		{"perm_version: highest version wins", []Event{ev(TypeRolesChanged, "alice", t0, version(9)), ev(TypeRolesChanged, "alice", t0.Add(time.Second), version(8))}, withVersion(tok("alice", idp, after), 8), now, decision.ReasonTokenStale},
		{"perm_version: a later plain event still applies by time", []Event{ev(TypeRolesChanged, "alice", t0, version(7)), ev(TypeRolesChanged, "alice", t0.Add(time.Minute))}, withVersion(tok("alice", idp, after), 7), now.Add(time.Minute), decision.ReasonTokenStale},
		{"sessions_revoked: older token is revoked", []Event{ev(TypeSessionsRevoked, "alice", t0)}, tok("alice", idp, before), now, decision.ReasonTokenRevoked},
		{"sessions_revoked: newer token is fine", []Event{ev(TypeSessionsRevoked, "alice", t0)}, tok("alice", idp, after), now, ""},
		{"sessions_revoked: version rule", []Event{ev(TypeSessionsRevoked, "alice", t0, version(3))}, withVersion(tok("alice", idp, after), 2), now, decision.ReasonTokenRevoked},
		{"token_revoked: that jti is revoked", []Event{ev(TypeTokenRevoked, "alice", t0, jti("j1"))}, withJTI(tok("alice", idp, after), "j1"), now, decision.ReasonTokenRevoked},
		{"token_revoked: other jti is fine", []Event{ev(TypeTokenRevoked, "alice", t0, jti("j1"))}, withJTI(tok("alice", idp, before), "j2"), now, ""},
		{"token_revoked: no jti is fine", []Event{ev(TypeTokenRevoked, "alice", t0, jti("j1"))}, tok("alice", idp, before), now, ""},
		{"token_revoked: same jti of another subject is fine", []Event{ev(TypeTokenRevoked, "alice", t0, jti("j1"))}, withJTI(tok("bob", idp, before), "j1"), now, ""},
		{"token_revoked: issuer-scoped skips other issuers", []Event{ev(TypeTokenRevoked, "alice", t0, jti("j1"), issuer(idp))}, withJTI(tok("alice", other, before), "j1"), now, ""},
		{"token_revoked: until expires_at + leeway", []Event{ev(TypeTokenRevoked, "alice", t0, jti("j1"), expires(t0.Add(5*time.Minute)))}, withJTI(tok("alice", idp, before), "j1"), t0.Add(5*time.Minute + 29*time.Second), decision.ReasonTokenRevoked},
		{"token_revoked: forgotten after expires_at + leeway", []Event{ev(TypeTokenRevoked, "alice", t0, jti("j1"), expires(t0.Add(5*time.Minute)))}, withJTI(tok("alice", idp, before), "j1"), t0.Add(5*time.Minute + 30*time.Second), ""},
		{"token_revoked: expires_at cannot outlive max_lifetime", []Event{ev(TypeTokenRevoked, "alice", t0, jti("j1"), expires(t0.Add(48*time.Hour)))}, withJTI(tok("alice", idp, before), "j1"), t0.Add(time.Hour + 30*time.Second), ""},
		{"subject_disabled: every token", []Event{ev(TypeSubjectDisabled, "alice", t0)}, tok("alice", other, after), now, decision.ReasonSubjectDisabled},
		{"subject_disabled then enabled", []Event{ev(TypeSubjectDisabled, "alice", t0), ev(TypeSubjectEnabled, "alice", t0.Add(time.Second))}, tok("alice", idp, before), now, ""},
		{"subject_enabled then disabled", []Event{ev(TypeSubjectEnabled, "alice", t0), ev(TypeSubjectDisabled, "alice", t0.Add(time.Second))}, tok("alice", idp, before), now, decision.ReasonSubjectDisabled},
		{"enable arriving before an earlier disable", []Event{ev(TypeSubjectEnabled, "alice", t0.Add(time.Second)), ev(TypeSubjectDisabled, "alice", t0)}, tok("alice", idp, before), now, ""},
		{"disable and enable at the same time: disable wins", []Event{ev(TypeSubjectEnabled, "alice", t0), ev(TypeSubjectDisabled, "alice", t0)}, tok("alice", idp, before), now, decision.ReasonSubjectDisabled},
		{"scoped enable lifts an unscoped disable for its issuer", []Event{ev(TypeSubjectDisabled, "alice", t0), ev(TypeSubjectEnabled, "alice", t0.Add(time.Second), issuer(idp))}, tok("alice", idp, before), now, ""},
		{"scoped enable leaves other issuers disabled", []Event{ev(TypeSubjectDisabled, "alice", t0), ev(TypeSubjectEnabled, "alice", t0.Add(time.Second), issuer(idp))}, tok("alice", other, before), now, decision.ReasonSubjectDisabled},
		{"scoped disable skips other issuers", []Event{ev(TypeSubjectDisabled, "alice", t0, issuer(idp))}, tok("alice", other, before), now, ""},
		{"disabled beats revoked beats stale", []Event{ev(TypeRolesChanged, "alice", t0), ev(TypeSessionsRevoked, "alice", t0), ev(TypeSubjectDisabled, "alice", t0)}, tok("alice", idp, before), now, decision.ReasonSubjectDisabled},
		{"revoked beats stale", []Event{ev(TypeRolesChanged, "alice", t0), ev(TypeTokenRevoked, "alice", t0, jti("j"))}, withJTI(tok("alice", idp, before), "j"), now, decision.ReasonTokenRevoked},
		{"disable forgotten after max_lifetime + leeway", []Event{ev(TypeSubjectDisabled, "alice", t0)}, tok("alice", idp, t0.Add(59*time.Minute)), t0.Add(time.Hour + 30*time.Second), ""},
		{"disable still on just before", []Event{ev(TypeSubjectDisabled, "alice", t0)}, tok("alice", idp, t0.Add(59*time.Minute)), t0.Add(time.Hour + 29*time.Second), decision.ReasonSubjectDisabled},
		{"version rule forgotten after max_lifetime + leeway", []Event{ev(TypeRolesChanged, "alice", t0, version(7))}, withVersion(tok("alice", idp, t0.Add(59*time.Minute)), 6), t0.Add(time.Hour + 30*time.Second), ""},
		{"token without iat is older than anything", []Event{ev(TypeRolesChanged, "alice", t0)}, &claims.Claims{Subject: "alice"}, now, decision.ReasonTokenStale},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger()
			for _, e := range tc.events {
				if err := l.Apply(e); err != nil {
					t.Fatal(err)
				}
			}
			if got := l.Check(tc.token, tc.now); got != tc.want {
				t.Errorf("Check = %q, want %q", got, tc.want)
			}
			// Sweeping at now changes memory, never answers.
			l.Sweep(tc.now)
			if got := l.Check(tc.token, tc.now); got != tc.want {
				t.Errorf("after Sweep: Check = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLedgerApplyRejectsInvalid(t *testing.T) {
	l := newLedger()
	if err := l.Apply(Event{Type: TypeRolesChanged, Subject: "a"}); err == nil {
		t.Fatal("Apply accepted an invalid event")
	}
	if l.Len() != 0 {
		t.Errorf("Len = %d after a rejected event", l.Len())
	}
}

// TestLedgerSubjects checks that subjects are opaque strings: nothing in
// them is parsed, matched as a pattern or normalised.
func TestLedgerSubjects(t *testing.T) {
	subjects := []string{
		"alice@example.com", "alice.smith@example.com", "urn:example:user:42", "urn:x:a.b.c",
		"with space", " leading", "trailing ", "Zoë", "ZOË", "用户", "🙂", "*", ">", "warden.events.>",
		"a\tb", `quote"and\backslash`,
	}
	l := newLedger()
	for _, s := range subjects {
		if err := l.Apply(ev(TypeRolesChanged, s, t0)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range subjects {
		if got := l.Check(tok(s, idp, t0.Add(-time.Minute)), t0); got != decision.ReasonTokenStale {
			t.Errorf("%q: Check = %q, want token_stale", s, got)
		}
	}
	for _, s := range []string{"alice", "Alice@example.com", "urn:example:user", "withspace", "Zoe", "**", "warden.events.roles_changed"} {
		if got := l.Check(tok(s, idp, t0.Add(-time.Minute)), t0); got != "" {
			t.Errorf("%q matched an event for another subject: %q", s, got)
		}
	}
}

func TestLedgerSweep(t *testing.T) {
	l := newLedger()
	for i := range 100 {
		at := t0.Add(time.Duration(i) * time.Minute)
		must(t, l.Apply(ev(TypeRolesChanged, fmt.Sprint("user-", i), at)))
		must(t, l.Apply(ev(TypeTokenRevoked, fmt.Sprint("user-", i), at, jti("j"))))
	}
	if l.Len() != 100 {
		t.Fatalf("Len = %d, want 100", l.Len())
	}
	// At t0 + 1h30s + 49m59s, events up to minute 49 are past
	// at + max_lifetime + leeway.
	dropped := l.Sweep(t0.Add(time.Hour + 30*time.Second + 49*time.Minute + time.Second))
	if dropped != 50 || l.Len() != 50 {
		t.Errorf("Sweep dropped %d, Len %d; want 50 and 50", dropped, l.Len())
	}
	if n := l.Sweep(t0.Add(1000 * time.Hour)); n != 50 || l.Len() != 0 {
		t.Errorf("final Sweep dropped %d, Len %d", n, l.Len())
	}
}

func TestLedgerEntries(t *testing.T) {
	l := NewLedger(LedgerOptions{MaxLifetime: time.Hour, Leeway: 30 * time.Second, Now: func() time.Time { return t0.Add(time.Minute) }})
	must(t, l.Apply(Event{V: 1, ID: "a", Type: TypeRolesChanged, Subject: "alice", Issuer: idp, At: t0, PermVersion: 4, Actor: "admin@example.com", Reason: "demoted"}))
	must(t, l.Apply(Event{V: 1, ID: "b", Type: TypeTokenRevoked, Subject: "bob", At: t0.Add(time.Second), JTI: "j1", ExpiresAt: t0.Add(10 * time.Minute)}))
	must(t, l.Apply(Event{V: 1, ID: "c", Type: TypeSubjectDisabled, Subject: "carol", At: t0.Add(2 * time.Second)}))
	must(t, l.Apply(Event{V: 1, ID: "d", Type: TypeSubjectEnabled, Subject: "carol", At: t0.Add(3 * time.Second)}))
	must(t, l.Apply(Event{V: 1, ID: "old", Type: TypeSubjectDisabled, Subject: "dave", At: t0.Add(-2 * time.Hour)}))
	want := []Entry{
		{Type: TypeSubjectEnabled, Subject: "carol", At: t0.Add(3 * time.Second), ExpiresAt: t0.Add(time.Hour + 33*time.Second), EventID: "d"},
		{Type: TypeSubjectDisabled, Subject: "carol", At: t0.Add(2 * time.Second), ExpiresAt: t0.Add(time.Hour + 32*time.Second), EventID: "c"},
		{Type: TypeTokenRevoked, Subject: "bob", JTI: "j1", At: t0.Add(time.Second), ExpiresAt: t0.Add(10*time.Minute + 30*time.Second), Effect: decision.ReasonTokenRevoked, EventID: "b"},
		{Type: TypeRolesChanged, Subject: "alice", Issuer: idp, At: t0, PermVersion: 4, ExpiresAt: t0.Add(time.Hour + 30*time.Second), Effect: decision.ReasonTokenStale, EventID: "a", Actor: "admin@example.com", Reason: "demoted"},
	}
	if diff := cmp.Diff(want, l.Entries()); diff != "" {
		t.Errorf("Entries (-want +got):\n%s", diff)
	}
}

// TestLedgerFoldOrderIndependent is the fold's property test: for random
// sets of events, every order of applying them, with or without duplicates,
// gives the same answer for every probe token, and the same Entries.
func TestLedgerFoldOrderIndependent(t *testing.T) {
	subjects := []string{"alice", "bob@example.com"}
	issuers := []string{"", idp, other}
	types := Types
	rng := rand.New(rand.NewPCG(1, 2))
	randomEvent := func(i int) Event {
		e := Event{
			V: 1, ID: fmt.Sprintf("e%02d", i), Type: types[rng.IntN(len(types))],
			Subject: subjects[rng.IntN(len(subjects))], Issuer: issuers[rng.IntN(len(issuers))],
			// Few distinct times, so that ties happen.
			At: t0.Add(time.Duration(rng.IntN(6)) * 10 * time.Second),
		}
		switch e.Type {
		case TypeTokenRevoked:
			e.JTI = fmt.Sprint("j", rng.IntN(3))
			if rng.IntN(2) == 0 {
				e.ExpiresAt = e.At.Add(time.Duration(rng.IntN(4)) * 20 * time.Minute)
			}
		case TypeRolesChanged, TypeSessionsRevoked:
			if rng.IntN(2) == 0 {
				e.PermVersion = int64(1 + rng.IntN(4))
			}
		}
		return e
	}
	var probes []*claims.Claims
	for _, s := range subjects {
		for _, iss := range issuers[1:] {
			for k := range 7 {
				iat := t0.Add(time.Duration(k-1) * 10 * time.Second)
				probes = append(probes, tok(s, iss, iat))
				probes = append(probes, withJTI(tok(s, iss, iat), fmt.Sprint("j", k%3)))
				probes = append(probes, withVersion(tok(s, iss, iat), int64(k%5)))
			}
		}
	}
	times := []time.Time{t0.Add(time.Minute), t0.Add(30 * time.Minute), t0.Add(time.Hour + 30*time.Second + 20*time.Second)}
	answers := func(evs []Event) ([]decision.Reason, []Entry) {
		l := NewLedger(LedgerOptions{MaxLifetime: time.Hour, Leeway: 30 * time.Second, Now: func() time.Time { return t0.Add(time.Minute) }})
		for _, e := range evs {
			must(t, l.Apply(e))
		}
		var out []decision.Reason
		for _, now := range times {
			for _, p := range probes {
				out = append(out, l.Check(p, now))
			}
		}
		return out, l.Entries()
	}

	for round := range 200 {
		n := 2 + rng.IntN(5)
		if round < 20 {
			n = 5 // small enough for every permutation
		}
		evs := make([]Event, n)
		for i := range evs {
			evs[i] = randomEvent(i)
		}
		want, wantEntries := answers(evs)
		var orders [][]Event
		if round < 20 {
			orders = permutations(evs)
		} else {
			for range 20 {
				o := slices.Clone(evs)
				rng.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
				orders = append(orders, o)
			}
		}
		// Duplicates: every event twice, shuffled.
		dup := append(slices.Clone(evs), evs...)
		rng.Shuffle(len(dup), func(i, j int) { dup[i], dup[j] = dup[j], dup[i] })
		orders = append(orders, dup)
		for _, o := range orders {
			got, gotEntries := answers(o)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("round %d: order %v changes answers (-first +this):\n%s", round, ids(o), diff)
			}
			if diff := cmp.Diff(wantEntries, gotEntries); diff != "" {
				t.Fatalf("round %d: order %v changes Entries (-first +this):\n%s", round, ids(o), diff)
			}
		}
	}
}

func permutations(evs []Event) [][]Event {
	if len(evs) <= 1 {
		return [][]Event{slices.Clone(evs)}
	}
	var out [][]Event
	for i := range evs {
		rest := slices.Concat(evs[:i:i], evs[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]Event{evs[i]}, p...))
		}
	}
	return out
}

func ids(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestLedgerCheckAllocs(t *testing.T) {
	l := newLedger()
	for i := range 1000 {
		must(t, l.Apply(ev(TypeRolesChanged, fmt.Sprint("user-", i), t0)))
	}
	miss := withJTI(tok("nobody", idp, t0), "j")
	hit := withJTI(tok("user-7", idp, t0.Add(-time.Minute)), "j")
	for name, c := range map[string]*claims.Claims{"miss": miss, "hit": hit} {
		if n := testing.AllocsPerRun(1000, func() { l.Check(c, t0) }); n != 0 {
			t.Errorf("%s: %v allocations per Check", name, n)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLedgerConcurrent runs readers against a writer applying and sweeping,
// for the race detector, and checks that a reader never sees a revocation
// go away while its event is live.
func TestLedgerConcurrent(t *testing.T) {
	l := newLedger()
	now := t0.Add(time.Minute)
	done := make(chan struct{})
	errs := make(chan error, 4)
	for r := range 4 {
		go func() {
			old := withJTI(tok("hot", idp, t0.Add(-time.Hour)), "j-hot")
			seen := false
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				got := l.Check(old, now)
				if seen && got == "" {
					errs <- fmt.Errorf("reader %d: revocation disappeared", r)
					return
				}
				seen = seen || got != ""
				l.Check(tok(fmt.Sprint("user-", r), idp, t0), now)
			}
		}()
	}
	for i := range 2000 {
		subject := fmt.Sprint("user-", i%50)
		if i == 100 {
			subject = "hot"
		}
		must(t, l.Apply(ev(TypeRolesChanged, subject, t0, issuer(idp))))
		must(t, l.Apply(ev(TypeTokenRevoked, subject, t0, jti(fmt.Sprint("j-", i)))))
		if i%100 == 0 {
			l.Sweep(now)
			_ = l.Entries()
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
