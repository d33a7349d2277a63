package events

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// LedgerOptions configures a Ledger. The zero value uses the defaults of
// tokens.max_lifetime and tokens.leeway.
type LedgerOptions struct {
	// MaxLifetime is tokens.max_lifetime: no accepted token lives longer
	// (exp - iat), so an entry older than MaxLifetime + Leeway can no longer
	// match a valid token and is dropped. Default claims.DefaultMaxLifetime.
	MaxLifetime time.Duration
	// Leeway is tokens.leeway. Default claims.DefaultLeeway.
	Leeway time.Duration
	// Now is the clock Entries filters with. Default time.Now.
	Now func() time.Time
}

// Ledger is the revocation state folded from events. Check is safe for
// concurrent use with Apply and Sweep and allocates nothing; it takes no
// lock unless the token has a jti and its subject has revoked tokens.
//
// Readers never write shared memory: a lock, even a sharded read lock,
// makes every core that checks the same hot subject (a service account
// behind most requests) bounce one cache line. So subjects map to immutable
// states in a sync.Map, whose reads are lock-free; a writer builds a new
// state and swaps it in. Only the revoked-jti set of a subject is shared
// between successive states and has its own lock, because copying it on
// every token_revoked would make revoking k tokens of one subject cost k².
type Ledger struct {
	span   int64 // MaxLifetime + Leeway in nanoseconds: how long an entry lives after its at
	leeway int64 // Leeway in nanoseconds
	now    func() time.Time

	// subjects counts the subjects with an entry, so that Check on an empty
	// ledger (the usual case between incidents) does not even hash.
	subjects atomic.Int64
	// applied counts the events folded, for Status.
	applied atomic.Uint64

	mu     sync.Mutex // serialises writers (Apply, Sweep) only
	states sync.Map   // subject string -> *subjectState, replaced, never changed
}

// subjectState is everything known about one subject. Its scopes never
// change once it is stored.
type subjectState struct {
	scopes []scope // one per issuer scope, usually one
	jtis   *jtiSet // revoked tokens; nil when none
}

// jtiSet is the revoked tokens of one subject, by jti.
type jtiSet struct {
	mu sync.RWMutex
	m  map[string][]jtiEntry
}

// scope holds the latest times per event type for one issuer ("" = all).
type scope struct {
	issuer   string
	stale    rule // roles_changed
	revoked  rule // sessions_revoked
	disabled mark
	enabled  mark
}

// rule is a roles_changed or sessions_revoked fold: plain holds the latest
// event without perm_version, versioned the latest with one, and version the
// highest perm_version seen.
type rule struct {
	plain     mark
	versioned mark
	version   int64
}

// mark is the latest at (Unix nanoseconds, 0 = none) of one kind of event,
// with the event that set it, for Entries.
type mark struct {
	at  int64
	src *origin
}

// origin is the audit part of an event, kept for Entries.
type origin struct {
	id, actor, reason string
}

// jtiEntry is one token_revoked fold, per (jti, issuer scope).
type jtiEntry struct {
	issuer string
	at     mark
	until  int64 // Unix nanoseconds after which no token with this jti is valid
}

// NewLedger returns an empty ledger.
func NewLedger(opts LedgerOptions) *Ledger {
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = claims.DefaultMaxLifetime
	}
	if opts.Leeway <= 0 {
		opts.Leeway = claims.DefaultLeeway
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ledger{
		span:   int64(opts.MaxLifetime + opts.Leeway),
		leeway: int64(opts.Leeway),
		now:    opts.Now,
	}
}

var _ decision.Revocations = (*Ledger)(nil)

// Check returns why c may no longer be honoured at now according to the
// events applied so far, or "" when nothing revokes it. It does not know
// about the connection; Consumer.Check adds the outage policy.
func (l *Ledger) Check(c *claims.Claims, now time.Time) decision.Reason {
	if c == nil {
		// The engine never passes nil; if it ever did, deny rather than
		// vouch for a token nobody has seen.
		return decision.ReasonTokenRevoked
	}
	if l.subjects.Load() == 0 {
		return ""
	}
	v, ok := l.states.Load(c.Subject)
	if !ok {
		return ""
	}
	return v.(*subjectState).check(c, now.UnixNano(), l.span)
}

func (s *subjectState) check(c *claims.Claims, now, span int64) decision.Reason {
	iat := int64(math.MinInt64) // a token without iat is older than any event
	if !c.IssuedAt.IsZero() {
		iat = c.IssuedAt.UnixNano()
	}
	var disabledAt, enabledAt int64
	revoked, stale := false, false
	for i := range s.scopes {
		sc := &s.scopes[i]
		if sc.issuer != "" && sc.issuer != c.Issuer {
			continue
		}
		disabledAt = max(disabledAt, sc.disabled.live(now, span))
		enabledAt = max(enabledAt, sc.enabled.live(now, span))
		revoked = revoked || sc.revoked.matches(c, iat, now, span)
		stale = stale || sc.stale.matches(c, iat, now, span)
	}
	if disabledAt != 0 && disabledAt >= enabledAt {
		return decision.ReasonSubjectDisabled
	}
	if revoked || s.jtiRevoked(c, now) {
		return decision.ReasonTokenRevoked
	}
	if stale {
		return decision.ReasonTokenStale
	}
	return ""
}

// live is m's time while m can still matter at now, else 0.
func (m mark) live(now, span int64) int64 {
	if m.at != 0 && now < m.at+span {
		return m.at
	}
	return 0
}

func (r *rule) matches(c *claims.Claims, iat, now, span int64) bool {
	if at := r.plain.live(now, span); at != 0 && issuedBy(iat, at) {
		return true
	}
	if at := r.versioned.live(now, span); at != 0 {
		// The version, when the token has one, is the better witness: it
		// does not depend on the identity provider's and the publisher's
		// clocks agreeing.
		if c.HasPermVersion {
			return c.PermVersion < r.version
		}
		return issuedBy(iat, at)
	}
	return false
}

// issuedBy says whether a token issued at iat may have been minted before a
// change at at, both in Unix nanoseconds. JWT iat has one-second resolution
// (a token minted at 10:00:00.9 says 10:00:00), so any token of at's second
// or earlier may predate the change: iat <= at, truncated to the second.
// A token minted just after the change in the same second is stale too, and
// its client refreshes once more; that errs on the safe side.
func issuedBy(iat, at int64) bool {
	return floorSecond(iat) <= floorSecond(at)
}

// floorSecond is the whole second n (Unix nanoseconds) falls in.
func floorSecond(n int64) int64 {
	s := n / int64(time.Second)
	if n%int64(time.Second) < 0 {
		s--
	}
	return s
}

func (s *subjectState) jtiRevoked(c *claims.Claims, now int64) bool {
	if s.jtis == nil || c.ID == "" {
		return false
	}
	s.jtis.mu.RLock()
	defer s.jtis.mu.RUnlock()
	for _, j := range s.jtis.m[c.ID] {
		if (j.issuer == "" || j.issuer == c.Issuer) && now < j.until {
			return true
		}
	}
	return false
}

// Apply folds e into the ledger. It returns an error, and changes nothing,
// when e is not a valid event. Applying the same event twice, or a set of
// events in any order, gives the same state.
func (l *Ledger) Apply(e Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	at := e.At.UnixNano()
	m := mark{at: at, src: &origin{id: e.ID, actor: e.Actor, reason: e.Reason}}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied.Add(1)
	var old *subjectState
	if v, ok := l.states.Load(e.Subject); ok {
		old = v.(*subjectState)
	}

	if e.Type == TypeTokenRevoked {
		until := at + l.span
		if !e.ExpiresAt.IsZero() {
			// The token is accepted until exp + leeway; it cannot outlive
			// at + max_lifetime + leeway either, whatever expires_at says.
			until = min(until, e.ExpiresAt.UnixNano()+l.leeway)
		}
		st := old
		if st == nil || st.jtis == nil {
			st = old.clone()
			st.jtis = &jtiSet{m: make(map[string][]jtiEntry, 1)}
			l.store(e.Subject, st, old == nil)
		}
		st.jtis.add(e.JTI, e.Issuer, m, until)
		return nil
	}
	st := old.clone()
	sc := st.scope(e.Issuer)
	switch e.Type {
	case TypeRolesChanged:
		sc.stale.raise(m, e.PermVersion)
	case TypeSessionsRevoked:
		sc.revoked.raise(m, e.PermVersion)
	case TypeSubjectDisabled:
		sc.disabled.raise(m)
	case TypeSubjectEnabled:
		sc.enabled.raise(m)
	}
	l.store(e.Subject, st, old == nil)
	return nil
}

// store publishes st for subject. l.mu must be held.
func (l *Ledger) store(subject string, st *subjectState, isNew bool) {
	l.states.Store(subject, st)
	if isNew {
		l.subjects.Add(1)
	}
}

// clone copies st (nil gives an empty state) for a writer to change before
// publishing it; the jti set stays shared.
func (st *subjectState) clone() *subjectState {
	if st == nil {
		return &subjectState{}
	}
	return &subjectState{scopes: slices.Clone(st.scopes), jtis: st.jtis}
}

func (st *subjectState) scope(issuer string) *scope {
	for i := range st.scopes {
		if st.scopes[i].issuer == issuer {
			return &st.scopes[i]
		}
	}
	st.scopes = append(st.scopes, scope{issuer: issuer})
	return &st.scopes[len(st.scopes)-1]
}

func (s *jtiSet) add(jti, issuer string, m mark, until int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.m[jti]
	for i := range list {
		if list[i].issuer == issuer {
			list[i].at.raise(m)
			list[i].until = max(list[i].until, until)
			return
		}
	}
	s.m[jti] = append(list, jtiEntry{issuer: issuer, at: m, until: until})
}

// raise keeps the later of m and n. Equal times keep the smaller event id,
// so that Entries, too, is the same whatever the order of arrival.
func (m *mark) raise(n mark) {
	if n.at > m.at || (n.at == m.at && m.src != nil && n.src.id < m.src.id) {
		*m = n
	}
}

func (r *rule) raise(m mark, version int64) {
	if version == 0 {
		r.plain.raise(m)
		return
	}
	r.versioned.raise(m)
	r.version = max(r.version, version)
}

// Sweep drops every entry that can no longer match a valid token at now and
// returns how many subjects it forgot. The Consumer calls it periodically;
// Check already ignores such entries, so sweeping only frees memory.
func (l *Ledger) Sweep(now time.Time) int {
	t := now.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	dropped := 0
	l.states.Range(func(k, v any) bool {
		st := v.(*subjectState)
		switch n := st.swept(t, l.span); {
		case n == nil:
			l.states.Delete(k)
			dropped++
		case n != st:
			l.states.Store(k, n)
		}
		return true
	})
	l.subjects.Add(-int64(dropped))
	return dropped
}

// swept returns st without its expired entries: st itself when nothing
// expired, nil when nothing is left.
func (st *subjectState) swept(now, span int64) *subjectState {
	changed := false
	expire := func(m *mark) {
		if m.at != 0 && m.live(now, span) == 0 {
			*m = mark{}
			changed = true
		}
	}
	var kept []scope
	for _, sc := range st.scopes { // sc is a copy: st stays as readers see it
		expire(&sc.stale.plain)
		expire(&sc.revoked.plain)
		for _, r := range []*rule{&sc.stale, &sc.revoked} {
			expire(&r.versioned)
			if r.versioned.at == 0 {
				r.version = 0
			}
		}
		expire(&sc.disabled)
		expire(&sc.enabled)
		if sc.stale.plain.at|sc.stale.versioned.at|sc.revoked.plain.at|sc.revoked.versioned.at|sc.disabled.at|sc.enabled.at != 0 {
			kept = append(kept, sc)
		} else {
			changed = true
		}
	}
	jtis := st.jtis
	if jtis != nil {
		jtis.mu.Lock()
		for jti, list := range jtis.m {
			list = slices.DeleteFunc(list, func(j jtiEntry) bool { return now >= j.until })
			if len(list) == 0 {
				delete(jtis.m, jti)
			} else {
				jtis.m[jti] = list
			}
		}
		if len(jtis.m) == 0 {
			jtis, changed = nil, true
		}
		st.jtis.mu.Unlock()
	}
	switch {
	case len(kept) == 0 && jtis == nil:
		return nil
	case !changed:
		return st
	}
	return &subjectState{scopes: kept, jtis: jtis}
}

// Len is the number of subjects the ledger holds state for.
func (l *Ledger) Len() int { return int(l.subjects.Load()) }

// Entry is one line of the ledger, for GET /v1/revocations.
type Entry struct {
	Type    Type   `json:"type"`
	Subject string `json:"subject"`
	Issuer  string `json:"issuer,omitempty"`
	JTI     string `json:"jti,omitempty"`
	// At is the latest at of this kind of event for the subject and scope.
	At          time.Time `json:"at"`
	PermVersion int64     `json:"perm_version,omitempty"`
	// ExpiresAt is when the entry is dropped: no token it could match is
	// valid after it.
	ExpiresAt time.Time `json:"expires_at"`
	// Effect is the reason code a matching token gets; empty for
	// subject_enabled, which lifts rather than denies, and for a
	// subject_disabled that a later subject_enabled has lifted.
	Effect  decision.Reason `json:"effect,omitempty"`
	EventID string          `json:"event_id"`
	Actor   string          `json:"actor,omitempty"`
	Reason  string          `json:"reason,omitempty"` // the event's reason text
}

// Entries returns a snapshot of the live entries, newest first.
func (l *Ledger) Entries() []Entry {
	now := l.now().UnixNano()
	var out []Entry
	l.states.Range(func(k, v any) bool {
		out = v.(*subjectState).appendEntries(out, k.(string), now, l.span)
		return true
	})
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(b.At.Compare(a.At), cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Type, b.Type),
			cmp.Compare(a.Issuer, b.Issuer), cmp.Compare(a.JTI, b.JTI), cmp.Compare(a.EventID, b.EventID))
	})
	return out
}

func (st *subjectState) appendEntries(out []Entry, subject string, now, span int64) []Entry {
	add := func(t Type, issuer, jti string, m mark, version int64, until int64, effect decision.Reason) {
		if m.at == 0 || now >= until {
			return
		}
		out = append(out, Entry{
			Type: t, Subject: subject, Issuer: issuer, JTI: jti,
			At: time.Unix(0, m.at).UTC(), PermVersion: version, ExpiresAt: time.Unix(0, until).UTC(),
			Effect: effect, EventID: m.src.id, Actor: m.src.actor, Reason: m.src.reason,
		})
	}
	for _, sc := range st.scopes {
		add(TypeRolesChanged, sc.issuer, "", sc.stale.plain, 0, sc.stale.plain.at+span, decision.ReasonTokenStale)
		add(TypeRolesChanged, sc.issuer, "", sc.stale.versioned, sc.stale.version, sc.stale.versioned.at+span, decision.ReasonTokenStale)
		add(TypeSessionsRevoked, sc.issuer, "", sc.revoked.plain, 0, sc.revoked.plain.at+span, decision.ReasonTokenRevoked)
		add(TypeSessionsRevoked, sc.issuer, "", sc.revoked.versioned, sc.revoked.version, sc.revoked.versioned.at+span, decision.ReasonTokenRevoked)
		effect := decision.ReasonSubjectDisabled
		if sc.enabled.at > sc.disabled.at {
			effect = ""
		}
		add(TypeSubjectDisabled, sc.issuer, "", sc.disabled, 0, sc.disabled.at+span, effect)
		add(TypeSubjectEnabled, sc.issuer, "", sc.enabled, 0, sc.enabled.at+span, "")
	}
	if st.jtis != nil {
		st.jtis.mu.RLock()
		defer st.jtis.mu.RUnlock()
		for jti, list := range st.jtis.m {
			for _, j := range list {
				add(TypeTokenRevoked, j.issuer, jti, j.at, 0, j.until, decision.ReasonTokenRevoked)
			}
		}
	}
	return out
}

// String summarises the ledger for logs.
func (l *Ledger) String() string {
	return fmt.Sprintf("ledger: %d subjects, %d events applied", l.Len(), l.applied.Load())
}
