package claims

import (
	"crypto/sha256"
	"sync/atomic"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultCacheSize is the number of verified tokens remembered
// (tokens.cache_size). A token that has left the cache pays a signature check
// again, and every decision cached for it is lost with it (the decision
// cache keys on the verified claims), so a service whose active users
// outnumber this falls from cached decisions to evaluated ones: with the
// cache at 10,000, the mix with 20,000 users ran at a quarter of its speed
// with 10,000 (docs/performance.md). An active user costs about 4 KB of
// heap, with its token's cached decisions (docs/deploy.md).
const DefaultCacheSize = 50000

// cache remembers verified tokens, keyed by the SHA-256 of the whole compact
// token: the same bytes verify the same way until time or keys change, and
// both are checked on every hit. Failures are never cached, so a token
// refused for an unknown key is retried once the key arrives.
//
// Revocation is not this cache's business and must not be keyed on token
// bytes (ECDSA signatures are malleable, so one token has many encodings);
// the decision engine checks revocation on every request, hit or miss.
type cache struct {
	lru          *lru.Cache[[sha256.Size]byte, *cacheEntry]
	hits, misses atomic.Uint64
}

// cacheEntry is a verified token and what its validity depends on.
type cacheEntry struct {
	claims *Claims
	exp    time.Time
	nbf    time.Time // zero when the token has none
	iss    *issuer
	keys   []*verifyKey // the keys it was verified against
}

func newCache(size int) (*cache, error) {
	l, err := lru.New[[sha256.Size]byte, *cacheEntry](size)
	if err != nil {
		return nil, err
	}
	return &cache{lru: l}, nil
}

// cacheKey hashes the token. The unsafe view avoids copying the token: the
// hash only reads it, and strings are immutable.
func cacheKey(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// get returns the claims of a cached token that is still valid at now: not
// expired and not before its nbf (with the same leeway as a full
// verification), and every key it was verified against still held by its
// issuer, so a key removed from the JWKS stops verifying at the refresh that
// removes it. Nothing here allocates.
func (c *cache) get(key [sha256.Size]byte, now time.Time, leeway time.Duration) *Claims {
	e, ok := c.lru.Get(key)
	if !ok {
		c.misses.Add(1)
		return nil
	}
	if !now.Before(e.exp.Add(leeway)) {
		c.lru.Remove(key)
		c.misses.Add(1)
		return nil
	}
	if !e.nbf.IsZero() && now.Before(e.nbf.Add(-leeway)) {
		c.misses.Add(1)
		return nil
	}
	for _, k := range e.keys {
		if !e.iss.holds(k) {
			c.lru.Remove(key)
			c.misses.Add(1)
			return nil
		}
	}
	c.hits.Add(1)
	return e.claims
}

func (c *cache) add(key [sha256.Size]byte, e *cacheEntry) { c.lru.Add(key, e) }
