package signals

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/events"
)

// Config is the signals section of Warden's configuration.
type Config struct {
	// Bucket is the NATS key-value bucket of received SETs: the durable
	// jti deduplication and the audit trail every replica lists.
	Bucket       string              `yaml:"bucket" help:"NATS key-value bucket of received Security Event Tokens (deduplication by jti, audit)"`
	Transmitters []TransmitterConfig `yaml:"transmitters"`
}

// DefaultBucket is Config.Bucket's default.
const DefaultBucket = "WARDEN_SIGNALS"

// MaxSETBytes is the largest SET body accepted (RFC 8935 leaves the limit
// to the receiver); a larger push is refused with 413, having read no more
// than one byte past it.
const MaxSETBytes = 64 << 10

// TransmitterConfig is one identity provider that sends Warden SETs.
type TransmitterConfig struct {
	// Name is the transmitter's path segment: it pushes to
	// /v1/signals/{name}.
	Name string `yaml:"name"`
	// Issuer is the iss of its SETs.
	Issuer string `yaml:"issuer"`
	// Audiences are the aud values of the stream Warden registered with it.
	Audiences []string `yaml:"audiences"`
	// ConfigURL is the transmitter's /.well-known/ssf-configuration; its
	// jwks_uri is read at start (and its issuer must be Issuer).
	ConfigURL string `yaml:"config_url"`
	// JWKSURL and PublicKeys: the keys, instead of ConfigURL or beside it.
	JWKSURL    string   `yaml:"jwks_url"`
	PublicKeys []string `yaml:"public_keys"`
	Algorithms []string `yaml:"algorithms"`
	// AuthorizationFile holds the exact Authorization header value the
	// transmitter sends with every push (given to it when the stream is
	// created, e.g. "Bearer <random>"). Required.
	AuthorizationFile string `yaml:"authorization_file"`
	// TokenIssuers are the token issuers (tokens.issuers) whose iss_sub
	// subjects name a token's sub. Default: Issuer.
	TokenIssuers []string `yaml:"token_issuers"`
	// Subjects are the rules for email and opaque subjects.
	Subjects SubjectRules `yaml:"subjects"`
	// Mapping overrides DefaultMapping: event type URI -> Warden type or ignore.
	Mapping map[string]string `yaml:"mapping"`
	// Poll, with a URL, makes Warden poll the transmitter (RFC 8936).
	Poll PollConfig `yaml:"poll"`
}

// SubjectRules say how email and opaque subjects name a token's sub.
type SubjectRules struct {
	Email  string `yaml:"email" help:"email subjects: sub (the address is the token's sub) or ignore"`
	Opaque string `yaml:"opaque" help:"opaque subjects: sub (the id is the token's sub) or ignore"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate reports every problem of c, each naming its key.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, t := range c.Transmitters {
		key := fmt.Sprintf("signals.transmitters[%d]", i)
		add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(key+format, args...)) }
		switch {
		case !nameRE.MatchString(t.Name):
			add(".name: %q: use 1 to 63 of a-z, 0-9, _ and -", t.Name)
		case seen[t.Name]:
			add(".name: %q is used twice", t.Name)
		}
		seen[t.Name] = true
		if t.Issuer == "" {
			add(".issuer: is empty; set the iss of the transmitter's SETs")
		}
		if len(t.Audiences) == 0 {
			add(".audiences: is empty; list the aud of the stream Warden registered")
		}
		if t.ConfigURL == "" && t.JWKSURL == "" && len(t.PublicKeys) == 0 {
			add(": has no keys; set config_url, jwks_url or public_keys")
		}
		for _, u := range []struct{ key, url string }{{"config_url", t.ConfigURL}, {"jwks_url", t.JWKSURL}, {"poll.url", t.Poll.URL}} {
			if u.url != "" {
				if err := claims.CheckURL(u.url); err != nil {
					add(".%s: %v", u.key, err)
				}
			}
		}
		if t.AuthorizationFile == "" {
			add(".authorization_file: is empty; every push must be authenticated")
		}
		if t.Poll.URL != "" && t.Poll.AuthorizationFile == "" {
			add(".poll.authorization_file: is empty; set the file holding the credential the transmitter issued for polling")
		}
		if t.Poll.Interval < 0 || t.Poll.MaxEvents < 0 {
			add(".poll: interval and max_events must not be negative")
		}
		if _, err := t.mapper(); err != nil {
			add(".%v", err)
		}
	}
	return errors.Join(errs...)
}

func (t TransmitterConfig) mapper() (*Mapper, error) {
	issuers := t.TokenIssuers
	if len(issuers) == 0 {
		issuers = []string{t.Issuer}
	}
	email, opaque := t.Subjects.Email, t.Subjects.Opaque
	if email == "" {
		email = RuleIgnore
	}
	if opaque == "" {
		opaque = RuleSub
	}
	return NewMapper(t.Mapping, issuers, email, opaque)
}

// Publisher publishes Warden events (events.Publisher).
type Publisher interface {
	PublishAck(ctx context.Context, e events.Event) (events.Ack, error)
}

var _ Publisher = (*events.Publisher)(nil)

// Options are the Receiver's dependencies beside its configuration.
type Options struct {
	Tokens     claims.Config // leeway and max_lifetime apply to SETs too
	HTTPClient *http.Client  // fetches config_url; default a 10 s timeout
	Logger     *slog.Logger
	Now        func() time.Time
	Replicas   int // of the bucket, as events.stream_replicas
}

// Receiver receives SETs for the configured transmitters. It is safe for
// concurrent use.
type Receiver struct {
	transmitters map[string]*transmitter
	pub          Publisher
	kv           jetstream.KeyValue
	now          func() time.Time
	log          *slog.Logger
	client       *http.Client
	countsMu     sync.Mutex
	counts       map[[2]string]uint64 // (transmitter, outcome)
}

type transmitter struct {
	cfg               TransmitterConfig
	authorization     []byte
	pollAuthorization []byte
	verifier          *claims.Verifier
	mapper            *Mapper
}

// NewReceiver validates cfg, reads each transmitter's authorization and
// configuration, loads its keys and opens the bucket on nc. ctx bounds the
// first fetches and the JWKS refreshes.
func NewReceiver(ctx context.Context, nc *nats.Conn, pub Publisher, cfg Config, opts Options) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("signals: %w", err)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	tokens := opts.Tokens
	if tokens.MaxLifetime == 0 {
		tokens.MaxLifetime = claims.DefaultMaxLifetime
	}
	if tokens.Leeway == 0 {
		tokens.Leeway = claims.DefaultLeeway
	}
	r := &Receiver{transmitters: map[string]*transmitter{}, pub: pub, now: opts.Now, log: opts.Logger.With("component", "signals"), client: opts.HTTPClient, counts: map[[2]string]uint64{}}
	for i, tc := range cfg.Transmitters {
		t, err := newTransmitter(ctx, tc, tokens, opts)
		if err != nil {
			return nil, fmt.Errorf("signals: signals.transmitters[%d] (%s): %w", i, tc.Name, err)
		}
		r.transmitters[tc.Name] = t
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("signals: %w", err)
	}
	// A jti is remembered as long as a replay could still change anything:
	// an event older than max_lifetime + leeway is refused by the publisher.
	r.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, Description: "Warden: received Security Event Tokens by transmitter and jti",
		TTL: tokens.MaxLifetime + tokens.Leeway + events.MaxAtSkew, Storage: jetstream.FileStorage,
		Replicas: max(opts.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("signals: bucket %s: %w", cfg.Bucket, err)
	}
	return r, nil
}

func newTransmitter(ctx context.Context, tc TransmitterConfig, tokens claims.Config, opts Options) (*transmitter, error) {
	auth, err := readAuthorization(tc.AuthorizationFile)
	if err != nil {
		return nil, fmt.Errorf("authorization_file: %w", err)
	}
	var pollAuth []byte
	if tc.Poll.URL != "" {
		if pollAuth, err = readAuthorization(tc.Poll.AuthorizationFile); err != nil {
			return nil, fmt.Errorf("poll.authorization_file: %w", err)
		}
	}
	jwksURL := tc.JWKSURL
	if tc.ConfigURL != "" {
		if jwksURL, err = discover(ctx, opts.HTTPClient, tc.ConfigURL, tc.Issuer); err != nil {
			return nil, fmt.Errorf("config_url: %w", err)
		}
	}
	m, err := tc.mapper()
	if err != nil {
		return nil, err
	}
	v, err := claims.NewVerifier(ctx, claims.Config{
		Leeway: tokens.Leeway, MaxLifetime: tokens.MaxLifetime, MaxSize: MaxSETBytes,
		Issuers: []claims.IssuerConfig{{
			Issuer: tc.Issuer, Audiences: tc.Audiences, JWKSURL: jwksURL,
			PublicKeys: tc.PublicKeys, Algorithms: tc.Algorithms,
		}},
	}, claims.WithSETs(), claims.WithHTTPClient(opts.HTTPClient), claims.WithLogger(opts.Logger), claims.WithClock(opts.Now))
	if err != nil {
		return nil, err
	}
	return &transmitter{cfg: tc, authorization: auth, pollAuthorization: pollAuth, verifier: v, mapper: m}, nil
}

// readAuthorization reads an Authorization header value from a file (one
// trailing newline ignored) and refuses one too short to be a secret.
func readAuthorization(path string) ([]byte, error) {
	auth, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	auth = []byte(strings.TrimRight(string(auth), "\r\n"))
	if len(auth) < 16 {
		return nil, fmt.Errorf("%s: under 16 characters; use e.g. Bearer and 32 random characters", path)
	}
	return auth, nil
}

// discover reads the transmitter's configuration metadata (SSF 1.0 §7.1)
// and returns its jwks_uri.
func discover(ctx context.Context, client *http.Client, url, issuer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta); err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	switch {
	case meta.Issuer != issuer:
		return "", fmt.Errorf("its issuer is %q, not the configured %q", claims.Clip(meta.Issuer), issuer)
	case meta.JWKSURI == "":
		return "", fmt.Errorf("it has no jwks_uri")
	}
	return meta.JWKSURI, nil
}

// Error is a refused delivery: an RFC 8935 §2.3 error code, a safe
// description for the transmitter, and the HTTP status.
type Error struct {
	Status      int
	Code        string // invalid_request, invalid_key, invalid_issuer, invalid_audience, authentication_failed, access_denied
	Description string
	Cause       error // for the log
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }
func (e *Error) Unwrap() error { return e.Cause }

func refuse(status int, code, description string, cause error) *Error {
	return &Error{Status: status, Code: code, Description: description, Cause: cause}
}

// Delivery is one received SET and what became of it: the audit record,
// kept in the bucket and listed by GET /v1/signals.
type Delivery struct {
	Transmitter string    `json:"transmitter"`
	JTI         string    `json:"jti"`
	TXN         string    `json:"txn,omitempty"`
	Issuer      string    `json:"issuer"`
	Received    time.Time `json:"received"`
	Events      []Mapped  `json:"events"`
	// Seq is the highest stream sequence of its published events (0: none):
	// once a replica has applied it, the SET is enforced there.
	Seq uint64 `json:"seq,omitempty"`
	// Duplicate says the jti had already been received: nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Push receives one pushed SET (RFC 8935 §2): authorization is the
// request's Authorization header, contentType its Content-Type, body the
// request body (read up to MaxSETBytes). A nil error means 202 Accepted.
// Errors are *Error, except when NATS fails (the SET was not recorded).
func (r *Receiver) Push(ctx context.Context, name, authorization, contentType string, body io.Reader) (Delivery, error) {
	t, ok := r.transmitters[name]
	if !ok {
		// The same answer as a wrong Authorization header, so that a
		// caller without credentials cannot learn which transmitters
		// exist. Not counted: the name comes from anyone.
		return Delivery{}, refuse(http.StatusUnauthorized, "authentication_failed", "the Authorization header is missing or wrong", nil)
	}
	d, err := r.push(ctx, t, authorization, contentType, body)
	r.count(t.cfg.Name, d, err)
	return d, err
}

func (r *Receiver) push(ctx context.Context, t *transmitter, authorization, contentType string, body io.Reader) (Delivery, error) {
	if subtle.ConstantTimeCompare([]byte(authorization), t.authorization) != 1 {
		return Delivery{}, refuse(http.StatusUnauthorized, "authentication_failed", "the Authorization header is missing or wrong", nil)
	}
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/secevent+jwt" {
		return Delivery{}, refuse(http.StatusBadRequest, "invalid_request", "Content-Type must be application/secevent+jwt", err)
	}
	data, err := io.ReadAll(io.LimitReader(body, MaxSETBytes+1))
	switch {
	case err != nil:
		return Delivery{}, refuse(http.StatusBadRequest, "invalid_request", "cannot read the request body", err)
	case len(data) > MaxSETBytes:
		return Delivery{}, refuse(http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("the SET is larger than %d bytes", MaxSETBytes), nil)
	}
	return r.receive(ctx, t, strings.TrimSpace(string(data)))
}

// Count is how many SETs or events of a transmitter had an outcome.
type Count struct {
	Transmitter, Outcome string
	N                    uint64
}

// count records what became of one delivery: per event its Outcome, per
// SET "duplicate", the RFC 8935 error code, or "error" (NATS).
func (r *Receiver) count(name string, d Delivery, err error) {
	var outcomes []string
	var se *Error
	switch {
	case errors.As(err, &se):
		outcomes = []string{se.Code}
	case err != nil:
		outcomes = []string{"error"}
	case d.Duplicate:
		outcomes = []string{"duplicate"}
	}
	for _, m := range d.Events {
		outcomes = append(outcomes, string(m.Outcome))
	}
	r.countsMu.Lock()
	defer r.countsMu.Unlock()
	for _, o := range outcomes {
		r.counts[[2]string{name, o}]++
	}
}

// Counts returns every count so far, for warden_signals_total.
func (r *Receiver) Counts() []Count {
	r.countsMu.Lock()
	defer r.countsMu.Unlock()
	out := make([]Count, 0, len(r.counts))
	for k, n := range r.counts {
		out = append(out, Count{Transmitter: k[0], Outcome: k[1], N: n})
	}
	return out
}

// receive verifies, deduplicates, maps and publishes one SET.
func (r *Receiver) receive(ctx context.Context, t *transmitter, token string) (Delivery, error) {
	c, err := t.verifier.Verify(ctx, token)
	if err != nil {
		return Delivery{}, setError(err)
	}
	s, err := ParseSET(c)
	if err != nil {
		return Delivery{}, refuse(http.StatusBadRequest, "invalid_request", err.Error(), err)
	}
	d := Delivery{Transmitter: t.cfg.Name, JTI: s.JTI, TXN: s.TXN, Issuer: s.Issuer, Received: r.now().UTC()}
	key := r.key(t.cfg.Name, s.JTI)
	if _, err := r.kv.Get(ctx, key); err == nil {
		d.Duplicate = true
		return d, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return Delivery{}, fmt.Errorf("signals: bucket: %w", err)
	}
	d.Events = t.mapper.Map(s, key)
	for i := range d.Events {
		m := &d.Events[i]
		if m.Event == nil {
			continue
		}
		// The id (Nats-Msg-Id) deduplicates two replicas receiving the
		// same jti at once; the bucket deduplicates a replay after the
		// window.
		ack, err := r.pub.PublishAck(ctx, *m.Event)
		if errors.Is(err, events.ErrInvalidEvent) {
			m.Outcome, m.Detail, m.Event = OutcomeRefused, err.Error(), nil
			continue
		}
		if err != nil {
			return Delivery{}, fmt.Errorf("signals: publish: %w", err)
		}
		m.Event = &ack.Event
		d.Seq = max(d.Seq, ack.Seq)
	}
	record, err := json.Marshal(d)
	if err != nil {
		return Delivery{}, fmt.Errorf("signals: %w", err)
	}
	if _, err := r.kv.Put(ctx, key, record); err != nil {
		return Delivery{}, fmt.Errorf("signals: bucket: %w", err)
	}
	for _, m := range d.Events {
		r.log.Info("signal received", "transmitter", d.Transmitter, "jti", d.JTI, "txn", d.TXN, "type", m.Type, "outcome", m.Outcome, "detail", m.Detail)
	}
	return d, nil
}

// key is the bucket key of a transmitter's jti: hashed, because a jti may
// hold any character and a key may not.
func (r *Receiver) key(name, jti string) string {
	h := sha256.Sum256([]byte(name + "\x00" + jti))
	return name + "." + hex.EncodeToString(h[:16])
}

// setError maps a verification failure to RFC 8935's codes.
func setError(err error) *Error {
	var ce *claims.Error
	if !errors.As(err, &ce) {
		return refuse(http.StatusBadRequest, "invalid_request", "the SET could not be verified", err)
	}
	desc := ce.Description
	switch ce.Code {
	case claims.CodeWrongIssuer:
		return refuse(http.StatusBadRequest, "invalid_issuer", desc, err)
	case claims.CodeWrongAudience:
		return refuse(http.StatusBadRequest, "invalid_audience", desc, err)
	case claims.CodeUnknownKey, claims.CodeBadSignature, claims.CodeAlgNotAllowed:
		return refuse(http.StatusBadRequest, "invalid_key", desc, err)
	case claims.CodeTooLarge:
		return refuse(http.StatusRequestEntityTooLarge, "invalid_request", desc, err)
	}
	return refuse(http.StatusBadRequest, "invalid_request", desc, err)
}

// Recent returns the received SETs the bucket still holds, newest first,
// at most limit.
func (r *Receiver) Recent(ctx context.Context, limit int) ([]Delivery, error) {
	keys, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("signals: bucket: %w", err)
	}
	var out []Delivery
	for k := range keys.Keys() {
		e, err := r.kv.Get(ctx, k)
		if err != nil {
			continue // expired between the listing and the read
		}
		var d Delivery
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			return nil, fmt.Errorf("signals: bucket key %s: %w", k, err)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Received.After(out[j].Received) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
