package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wardenauthz/warden/claims"
)

// A stream ticket lets a browser open GET /v1/decisions/stream: EventSource
// cannot send an Authorization header, and an admin token in the URL would
// end up in proxy logs and browser history. An admin trades the bearer token
// for a ticket (POST /v1/decisions/stream/tickets) and puts the ticket in
// the stream's URL; a ticket is good once, for ticketTTL, on this replica.
const (
	ticketTTL = 30 * time.Second
	// maxTickets bounds the tickets outstanding at once; they live 30
	// seconds, so this is far more than a few admin UIs need.
	maxTickets = 256
	// maxTicketsPerAdmin bounds one admin's outstanding tickets, so that
	// one admin (a viewer, say) cannot take them all.
	maxTicketsPerAdmin = 8
	// ticketBytes is a ticket's randomness: 256 bits.
	ticketBytes = 32
)

// errTooManyTickets is returned by issue when the store is full of live
// tickets.
var errTooManyTickets = errors.New("too many stream tickets outstanding")

// ticketStore holds outstanding tickets. It keeps the SHA-256 of each
// ticket, never the ticket, and compares digests in constant time against
// every slot, so neither memory nor timing tells anything about a live
// ticket.
type ticketStore struct {
	now func() time.Time

	mu      sync.Mutex
	tickets []storedTicket
}

type storedTicket struct {
	digest  [sha256.Size]byte
	admin   *claims.Claims // whose token it was traded for
	expires time.Time
}

func newTicketStore(now func() time.Time) *ticketStore {
	return &ticketStore{now: now}
}

// issue returns a new ticket for the admin whose verified token is admin:
// 256 random bits, base64url without padding.
func (ts *ticketStore) issue(admin *claims.Claims) (string, error) {
	raw := make([]byte, ticketBytes)
	rand.Read(raw) // never fails since Go 1.24; it crashes the process instead
	ticket := base64.RawURLEncoding.EncodeToString(raw)

	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.prune()
	if len(ts.tickets) >= maxTickets {
		return "", errTooManyTickets
	}
	mine := 0
	for _, t := range ts.tickets {
		if sameAdmin(t.admin, admin) {
			mine++
		}
	}
	if mine >= maxTicketsPerAdmin {
		return "", fmt.Errorf("%w: %d for %s", errTooManyTickets, mine, admin.Subject)
	}
	ts.tickets = append(ts.tickets, storedTicket{
		digest:  sha256.Sum256([]byte(ticket)),
		admin:   admin,
		expires: ts.now().Add(ticketTTL),
	})
	return ticket, nil
}

// redeem uses up ticket and returns the claims of the admin it was issued
// to. It returns false for a ticket that is unknown, expired or already
// used.
func (ts *ticketStore) redeem(ticket string) (admin *claims.Claims, ok bool) {
	if len(ticket) != base64.RawURLEncoding.EncodedLen(ticketBytes) {
		return nil, false
	}
	digest := sha256.Sum256([]byte(ticket))

	ts.mu.Lock()
	defer ts.mu.Unlock()
	found := -1
	for i := range ts.tickets {
		// Every slot is compared, with no early exit.
		if subtle.ConstantTimeCompare(ts.tickets[i].digest[:], digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, false
	}
	t := ts.tickets[found]
	ts.tickets = slices.Delete(ts.tickets, found, found+1)
	if !ts.now().Before(t.expires) {
		return nil, false
	}
	return t.admin, true
}

// sameAdmin says whether a and b are the same admin: subject and issuer.
func sameAdmin(a, b *claims.Claims) bool {
	return a.Subject == b.Subject && a.Issuer == b.Issuer
}

// prune forgets expired tickets. The caller holds ts.mu.
func (ts *ticketStore) prune() {
	now := ts.now()
	kept := ts.tickets[:0]
	for _, t := range ts.tickets {
		if now.Before(t.expires) {
			kept = append(kept, t)
		}
	}
	clear(ts.tickets[len(kept):])
	ts.tickets = kept
}
