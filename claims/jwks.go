package claims

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/time/rate"
)

// Defaults of the JWKS refresh (see WithJWKSRefresh).
const (
	// DefaultJWKSRefreshInterval is how often a JWKS is fetched again; it is
	// also the longest a key removed from a reachable JWKS keeps verifying
	// (while the JWKS cannot be fetched, the keys last fetched stay).
	DefaultJWKSRefreshInterval = 15 * time.Minute
	// DefaultUnknownKIDInterval is the least time between two fetches
	// triggered by tokens naming a kid we do not know, per JWKS.
	DefaultUnknownKIDInterval = time.Minute
)

const (
	// jwksFetchTimeout bounds one JWKS fetch, including a fetch made on the
	// request path for an unknown kid.
	jwksFetchTimeout = 10 * time.Second
	// maxJWKSBytes bounds a JWKS response: jwkset decodes the body without a
	// limit, and a JWKS is a few kilobytes.
	maxJWKSBytes = 1 << 20
)

// jwksSource is one issuer's JWKS URL.
//
// Fetching and refreshing is jwkset's (the library keyfunc/v3 is built on;
// keyfunc.NewDefaultOverrideCtx assembles exactly jwkset.NewStorageFromHTTP
// and jwkset.NewHTTPClient). We assemble them ourselves for two reasons:
// the refresh writes into our keyStore, which re-indexes and re-pins the keys
// on every refresh and lets the cache see a key disappear; and the refresh on
// an unknown kid is gated by our own limiter, which refuses instead of
// waiting (jwkset's RefreshUnknownKID waits on its limiter, which would park
// request goroutines behind a flood of made-up kids).
type jwksSource struct {
	url  string
	pins algSet
	log  *slog.Logger

	keys      atomic.Pointer[keySet]
	installMu sync.Mutex      // one install at a time, so none is lost
	reported  map[string]bool // key problems logged at the last install

	// refresher fetches the JWKS again when asked for a kid it does not
	// hold; its own limiter is unlimited because unknownKID gates it.
	refresher  jwkset.Storage
	unknownKID *rate.Limiter
}

// newJWKSSource fetches the JWKS once (bounded by jwksFetchTimeout and ctx)
// and starts the periodic refresh, which lives until ctx is done. A JWKS that
// cannot be fetched does not fail start: its issuer's tokens fail closed with
// token_unknown_key until a refresh succeeds.
func newJWKSSource(ctx context.Context, url string, pins algSet, o *options) (*jwksSource, error) {
	src := &jwksSource{
		url:        url,
		pins:       pins,
		log:        o.log.With("jwks_url", url),
		unknownKID: rate.NewLimiter(rate.Every(o.unknownKIDInterval), 1),
	}
	src.keys.Store(emptyKeySet)
	store, err := jwkset.NewStorageFromHTTP(url, jwkset.HTTPClientStorageOptions{
		Client:                    o.client,
		Ctx:                       ctx,
		HTTPTimeout:               jwksFetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       src.refreshFailed,
		RefreshInterval:           o.refreshInterval,
		Storage:                   keyStore{MemoryJWKSet: jwkset.NewMemoryStorage(), src: src},
	})
	if err != nil {
		return nil, err
	}
	src.refresher, err = jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{url: store},
		RateLimitWaitMax:  jwksFetchTimeout, // also bounds the fetch itself
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return nil, err
	}
	if len(src.keys.Load().all) == 0 {
		src.log.Warn("no usable keys from the JWKS yet; this issuer's tokens fail with token_unknown_key until a refresh succeeds")
	}
	return src, nil
}

func (j *jwksSource) refreshFailed(ctx context.Context, err error) {
	if errors.Is(err, context.Canceled) {
		return // shutting down
	}
	j.log.Warn("JWKS fetch failed; keeping the keys we have", "error", err)
}

// current is the key set of the last successful fetch.
func (j *jwksSource) current() *keySet { return j.keys.Load() }

// refreshForUnknownKID fetches the JWKS again because a token names a kid we
// do not hold, unless that happened less than unknownKIDInterval ago. It
// never waits for the limiter: a refused refresh leaves the token to fail
// with token_unknown_key, so a flood of made-up kids costs the JWKS server
// one request per interval and the caller nothing.
func (j *jwksSource) refreshForUnknownKID(ctx context.Context, kid string) {
	if ctx.Err() != nil || !j.unknownKID.Allow() {
		return
	}
	j.log.Debug("fetching the JWKS for an unknown kid", "kid", Clip(kid))
	// KeyRead misses in the store and so fetches; the new keys land in
	// j.keys through keyStore.KeyReplaceAll, whatever KeyRead returns.
	if _, err := j.refresher.KeyRead(ctx, kid); err != nil && !errors.Is(err, jwkset.ErrKeyNotFound) {
		j.log.Debug("JWKS fetch for an unknown kid", "error", err)
	}
}

// install replaces the key set with the keys of a fetched JWKS. A problem
// with a key is logged at info level the first time it is seen and at debug
// level after that, so a JWKS that always carries encryption keys does not
// fill the log at every refresh.
func (j *jwksSource) install(jwks []jwkset.JWK) {
	j.installMu.Lock()
	defer j.installMu.Unlock()
	set, problems := keySetFromJWKS(jwks, j.pins, j.keys.Load(), j.url)
	reported := make(map[string]bool, len(problems))
	for _, p := range problems {
		level := slog.LevelInfo
		if j.reported[p.Error()] {
			level = slog.LevelDebug
		}
		reported[p.Error()] = true
		j.log.Log(context.Background(), level, "ignoring a JWKS key", "reason", p)
	}
	j.reported = reported
	j.keys.Store(set)
	j.log.Debug("JWKS installed", "keys", len(set.all))
}

// keyStore is the jwkset.Storage a JWKS refresh writes into. It keeps
// jwkset's memory storage (which the library reads back) and installs every
// new set into its jwksSource. A refresh ends with KeyReplaceAll, the only
// writing method jwkset calls on an HTTP storage; should that change, the
// key rotation tests fail.
type keyStore struct {
	*jwkset.MemoryJWKSet
	src *jwksSource
}

var _ jwkset.Storage = keyStore{}

// KeyReplaceAll is what every JWKS fetch ends with.
func (s keyStore) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if err := s.MemoryJWKSet.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	s.src.install(given)
	return nil
}

// jwksHTTPClient returns the client JWKS fetches use: base (or a default)
// with a timeout, a cap on the response size, and no redirects. base is
// copied, not modified.
//
// A redirect is refused, whatever base allows: the keys are trusted because
// they come from the configured URL (https, or http on loopback), and a
// redirect could hand that trust to a plain-http URL or another host.
func jwksHTTPClient(base *http.Client) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	if c.Timeout == 0 {
		c.Timeout = jwksFetchTimeout
	}
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = cappedTransport{next: next, max: maxJWKSBytes}
	c.CheckRedirect = refuseRedirect
	return c
}

// errJWKSRedirect fails a fetch that the server answers with a redirect.
var errJWKSRedirect = errors.New("the JWKS URL redirects; Warden does not follow redirects for keys: configure the final URL as jwks_url")

func refuseRedirect(req *http.Request, via []*http.Request) error {
	return fmt.Errorf("%w (%s -> %s)", errJWKSRedirect, via[0].URL.Redacted(), req.URL.Redacted())
}

// errJWKSTooLarge fails a fetch whose body is above maxJWKSBytes.
var errJWKSTooLarge = errors.New("JWKS response is larger than 1 MiB")

type cappedTransport struct {
	next http.RoundTripper
	max  int64
}

func (t cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: t.max}
	return resp, nil
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the cap: fine if the body ends here, an error if it goes on.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, errJWKSTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
