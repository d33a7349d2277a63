package events

import (
	"cmp"
	"fmt"
	"hash/maphash"
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
// concurrent use with Apply and Sweep and costs one map lookup under a
// sharded read lock; it allocates nothing.
type Ledger struct {
	span   int64 // MaxLifetime + Leeway in nanoseconds: how long an entry lives after its at
	leeway int64 // Leeway in nanoseconds
	now    func() time.Time
	seed   maphash.Seed

	// subjects counts the subjects with an entry, so that Check on an empty
	// ledger (the usual case between incidents) does not even hash.
	subjects atomic.Int64
	// applied counts the events folded, for Status.
	applied atomic.Uint64

	shards [ledgerShards]ledgerShard
}

// ledgerShards spreads subjects over independently locked maps, so that
// readers on many cores do not all bounce one lock word and a writer blocks
// a sixty-fourth of the readers for the time of one map update.
const ledgerShards = 64

type ledgerShard struct {
	mu       sync.RWMutex
	subjects map[string]*subjectState
	_        [32]byte // keeps neighbouring shards' locks off one cache line
}

// subjectState is everything known about one subject.
type subjectState struct {
	scopes []scope               // one per issuer scope, usually one
	jtis   map[string][]jtiEntry // revoked tokens by jti; nil when none
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
	l := &Ledger{
		span:   int64(opts.MaxLifetime + opts.Leeway),
		leeway: int64(opts.Leeway),
		now:    opts.Now,
		seed:   maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].subjects = make(map[string]*subjectState)
	}
	return l
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
	sh := l.shard(c.Subject)
	sh.mu.RLock()
	st := sh.subjects[c.Subject]
	var r decision.Reason
	if st != nil {
		r = st.check(c, now.UnixNano(), l.span)
	}
	sh.mu.RUnlock()
	return r
}

func (l *Ledger) shard(subject string) *ledgerShard {
	return &l.shards[maphash.String(l.seed, subject)%ledgerShards]
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
	if at := r.plain.live(now, span); at != 0 && iat < at {
		return true
	}
	if at := r.versioned.live(now, span); at != 0 {
		// The version, when the token has one, is the better witness: it
		// does not depend on the identity provider's and the publisher's
		// clocks agreeing.
		if c.HasPermVersion {
			return c.PermVersion < r.version
		}
		return iat < at
	}
	return false
}

func (s *subjectState) jtiRevoked(c *claims.Claims, now int64) bool {
	if s.jtis == nil || c.ID == "" {
		return false
	}
	for _, j := range s.jtis[c.ID] {
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
	src := &origin{id: e.ID, actor: e.Actor, reason: e.Reason}

	sh := l.shard(e.Subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.subjects[e.Subject]
	if st == nil {
		st = &subjectState{}
		sh.subjects[e.Subject] = st
		l.subjects.Add(1)
	}
	l.applied.Add(1)

	if e.Type == TypeTokenRevoked {
		until := at + l.span
		if !e.ExpiresAt.IsZero() {
			// The token is accepted until exp + leeway; it cannot outlive
			// at + max_lifetime + leeway either, whatever expires_at says.
			until = min(until, e.ExpiresAt.UnixNano()+l.leeway)
		}
		st.addJTI(e.JTI, e.Issuer, mark{at: at, src: src}, until)
		return nil
	}
	sc := st.scope(e.Issuer)
	m := mark{at: at, src: src}
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
	return nil
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

func (st *subjectState) addJTI(jti, issuer string, m mark, until int64) {
	if st.jtis == nil {
		st.jtis = make(map[string][]jtiEntry, 1)
	}
	list := st.jtis[jti]
	for i := range list {
		if list[i].issuer == issuer {
			list[i].at.raise(m)
			list[i].until = max(list[i].until, until)
			return
		}
	}
	st.jtis[jti] = append(list, jtiEntry{issuer: issuer, at: m, until: until})
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
	dropped := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for subject, st := range sh.subjects {
			if st.sweep(t, l.span) {
				delete(sh.subjects, subject)
				dropped++
			}
		}
		sh.mu.Unlock()
	}
	l.subjects.Add(-int64(dropped))
	return dropped
}

// sweep clears expired marks and reports whether nothing is left.
func (st *subjectState) sweep(now, span int64) (empty bool) {
	expire := func(m *mark) {
		if m.live(now, span) == 0 {
			*m = mark{}
		}
	}
	kept := st.scopes[:0]
	for _, sc := range st.scopes {
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
		}
	}
	clear(st.scopes[len(kept):]) // let dropped issuers' strings be collected
	st.scopes = kept
	for jti, list := range st.jtis {
		list = slices.DeleteFunc(list, func(j jtiEntry) bool { return now >= j.until })
		if len(list) == 0 {
			delete(st.jtis, jti)
		} else {
			st.jtis[jti] = list
		}
	}
	if len(st.jtis) == 0 {
		st.jtis = nil
	}
	return len(st.scopes) == 0 && st.jtis == nil
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
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.RLock()
		for subject, st := range sh.subjects {
			out = st.appendEntries(out, subject, now, l.span)
		}
		sh.mu.RUnlock()
	}
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
	for jti, list := range st.jtis {
		for _, j := range list {
			add(TypeTokenRevoked, j.issuer, jti, j.at, 0, j.until, decision.ReasonTokenRevoked)
		}
	}
	return out
}

// String summarises the ledger for logs.
func (l *Ledger) String() string {
	return fmt.Sprintf("ledger: %d subjects, %d events applied", l.Len(), l.applied.Load())
}
