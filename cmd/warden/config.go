package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"gopkg.in/yaml.v3"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/events/signals"
	"github.com/wardenauthz/warden/policyset"
	"github.com/wardenauthz/warden/web"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// Config is Warden's whole configuration. Each key is set, in rising order
// of precedence, by its default (defaultConfig), the YAML file, a WARDEN_*
// environment variable and a flag. A field is a key of the file by its yaml
// tag; one with a help tag is also a flag and an environment variable
// (settings), which is all it takes to add one.
type Config struct {
	Listen      string            `yaml:"listen" help:"address the HTTP API listens on (host:port)"`
	DataDir     string            `yaml:"data_dir" help:"directory for Warden's state (development key, event store, NATS keys)"`
	Tokens      claims.Config     `yaml:"tokens"`
	Policies    PoliciesConfig    `yaml:"policies"`
	Events      EventsConfig      `yaml:"events"`
	Signals     signals.Config    `yaml:"signals"`
	DecisionLog DecisionLogConfig `yaml:"decision_log"`
	DecisionAPI DecisionAPIConfig `yaml:"decision_api"`
	Revocation  RevocationConfig  `yaml:"revocation"`
	OPA         OPAConfig         `yaml:"opa"`
	Proxy       ProxyConfig       `yaml:"proxy"`
	Log         LogConfig         `yaml:"log"`
	Tracing     TracingConfig     `yaml:"tracing"`
	Dev         DevConfig         `yaml:"dev"`
}

// DevConfig applies to development mode only (no tokens.issuers).
type DevConfig struct {
	AllowRemote bool `yaml:"allow_remote" help:"development mode only: let listen be an address beyond loopback, on purpose (the development issuer's tokens are then accepted from the network, and the UI answers any host name)"`
}

// ProxyConfig is the enforcement surface for proxies: forward auth
// (nginx, Traefik, Caddy), Envoy's HTTP and gRPC ext_authz services
// (docs/proxies.md).
type ProxyConfig struct {
	TrustedProxies      string `yaml:"trusted_proxies" help:"addresses and networks, comma-separated (e.g. 10.0.0.0/8,192.168.1.5), of the proxies allowed to ask /v1/forward-auth, /v1/envoy and the gRPC service; only they are believed about the original request"`
	TokenHeader         string `yaml:"token_header" help:"header of the original request that holds the token, as \"Bearer <token>\""`
	TokenCookie         string `yaml:"token_cookie" help:"cookie of the original request that holds the bare token when token_header holds none (empty: none)"`
	GRPCListen          string `yaml:"grpc_listen" help:"address of Envoy's gRPC ext_authz service, e.g. 127.0.0.1:9191 (empty: off)"`
	RemoveAuthorization bool   `yaml:"remove_authorization" help:"Envoy gRPC only: drop token_header from the request Envoy sends upstream on allow"`
}

// trustedProxies parses TrustedProxies: networks, or addresses (one host
// each).
func (c ProxyConfig) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(c.TrustedProxies, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("proxy.trusted_proxies: %q is neither an address nor a network (e.g. 10.0.0.0/8)", item)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(out) == 0 {
		return nil, errors.New("proxy.trusted_proxies: empty; name your proxies' addresses (default " + joinPrefixes(web.DefaultTrustedProxies) + ")")
	}
	return out, nil
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// OPAConfig configures the routes of OPA's REST API that Warden serves
// (docs/compat.md).
type OPAConfig struct {
	DefaultDecision string `yaml:"default_decision" help:"path below data that OPA's POST / evaluates, e.g. warden/authz/allow (empty: policies.entrypoint's allow rule)"`
}

// defaultDecision is DefaultDecision, or else the allow rule of entrypoint.
func (c OPAConfig) defaultDecision(entrypoint string) string {
	if c.DefaultDecision != "" {
		return strings.Trim(c.DefaultDecision, "/")
	}
	return strings.Trim(entrypoint, "/") + "/allow"
}

// DecisionAPIConfig says who may ask decisions, and how often.
type DecisionAPIConfig struct {
	ClientTokensFile string  `yaml:"client_tokens_file" help:"file of the callers allowed to ask decisions, one \"name token\" per line (tokens of 32 characters or more); they send Warden-Client-Token (empty: anyone who reaches the port)"`
	RateLimit        float64 `yaml:"rate_limit" help:"decision requests a second each caller (client, else address) may make; over it 429 (0: no limit)"`
	RateBurst        int     `yaml:"rate_burst" help:"requests a caller may make at once above rate_limit (0: the rate, at least 1)"`
}

// readClientTokens reads decision_api.client_tokens_file: "name token" a
// line, blank lines and "#" comments skipped. Errors name the line.
func readClientTokens(path string) (map[string]string, error) {
	const key = "decision_api.client_tokens_file"
	clients := map[string]string{}
	err := readLines(key, path, func(line string) error {
		name, token, ok := strings.Cut(line, " ")
		token = strings.TrimSpace(token)
		switch {
		case !ok || name == "" || token == "":
			return errors.New(`want "name token"`)
		case len(token) < 32:
			return fmt.Errorf("the token of %s is %d characters; use 32 or more (e.g. openssl rand -hex 32)", name, len(token))
		case clients[token] != "":
			return fmt.Errorf("%s has the token of %s", name, clients[token])
		}
		clients[token] = name
		return nil
	})
	if err == nil && len(clients) == 0 {
		err = fmt.Errorf("%s %s: no client; remove the setting to let anyone ask", key, path)
	}
	return clients, err
}

// RevocationConfig turns on the token revocation endpoint, POST
// /oauth2/revoke (RFC 7009, docs/revocation.md).
type RevocationConfig struct {
	ClientsFile string `yaml:"clients_file" help:"file of the OAuth clients that may revoke tokens at POST /oauth2/revoke, one \"client_id sha256:<hex SHA-256 of the secret> [revoke_any]\" per line (empty: the endpoint is off)"`
}

// revokeAnyOption lets a revocation client revoke any client's tokens.
const revokeAnyOption = "revoke_any"

// maxRevocationClientID bounds a client_id: the event's actor,
// "oauth2-revoke:<client_id>", must fit events.MaxActorLen.
const maxRevocationClientID = 200

// readRevocationClients reads revocation.clients_file: "client_id
// sha256:<64 hex digits> [revoke_any]" a line, blank lines and "#"
// comments skipped. The file holds digests, not secrets. Errors name the
// line.
func readRevocationClients(path string) ([]web.RevocationClient, error) {
	const key = "revocation.clients_file"
	var clients []web.RevocationClient
	seen := map[string]bool{}
	err := readLines(key, path, func(line string) error {
		fields := strings.Fields(line)
		if len(fields) < 2 || len(fields) > 3 {
			return errors.New(`want "client_id sha256:<hex> [revoke_any]"`)
		}
		c := web.RevocationClient{ID: fields[0]}
		switch {
		case len(c.ID) > maxRevocationClientID:
			return fmt.Errorf("client_id is %d bytes; at most %d", len(c.ID), maxRevocationClientID)
		case strings.IndexFunc(c.ID, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0:
			return fmt.Errorf("client_id %q: printable ASCII only (RFC 6749 VSCHAR, without spaces)", c.ID)
		case seen[c.ID]:
			return fmt.Errorf("client %s is listed twice", c.ID)
		}
		digest, ok := strings.CutPrefix(fields[1], "sha256:")
		ok = ok && len(digest) == hex.EncodedLen(sha256.Size)
		if ok {
			_, err := hex.Decode(c.SecretSHA256[:], []byte(digest))
			ok = err == nil
		}
		if !ok {
			return fmt.Errorf("the secret of %s: want sha256: and the 64 hex digits of the secret's SHA-256 (printf %%s \"$SECRET\" | sha256sum)", c.ID)
		}
		if len(fields) == 3 {
			if fields[2] != revokeAnyOption {
				return fmt.Errorf("unknown option %q; the one option is %s", fields[2], revokeAnyOption)
			}
			c.RevokeAny = true
		}
		seen[c.ID] = true
		clients = append(clients, c)
		return nil
	})
	if err == nil && len(clients) == 0 {
		err = fmt.Errorf("%s %s: no client; remove the setting to turn the revocation endpoint off", key, path)
	}
	return clients, err
}

// readLines calls each with every line of the file at path, trimmed,
// skipping blank lines and "#" comments. An error of each is returned
// prefixed with key and the file's path and line number.
func readLines(key, path string, each func(line string) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := each(line); err != nil {
			return fmt.Errorf("%s %s:%d: %w", key, path, i+1, err)
		}
	}
	return nil
}

// TracingConfig says where traces go.
type TracingConfig struct {
	OTLPEndpoint string `yaml:"otlp_endpoint" help:"OTLP/HTTP endpoint that receives traces, e.g. http://otel-collector:4318 (empty: no tracing)"`
}

// LogConfig says what Warden's own log (standard error) shows.
type LogConfig struct {
	Level string `yaml:"level" help:"the least severe entries logged: debug (with the embedded NATS server's notices), info, warn or error"`
}

// level is Level as slog's.
func (c LogConfig) level() (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(c.Level))
	return l, err
}

// DecisionLogConfig says where the decision log is written. The log's
// recent history and live stream (for admins) exist whatever the output.
type DecisionLogConfig struct {
	Output string `yaml:"output" help:"where decision-log entries are written as JSON lines: empty (nowhere), stdout, or a file path (appended; created 0600)"`
	Buffer int    `yaml:"buffer" help:"decision-log entries that may wait for the writer; beyond it they are dropped and counted"`
	// A file output is rotated: it grows to MaxSizeMB, then is renamed
	// aside (with a time stamp) and a new one started; MaxFiles of those
	// are kept. What the log can take on disk is bounded by their product.
	MaxSizeMB int `yaml:"max_size_mb" help:"a file output is rotated when it reaches this size, in MiB"`
	MaxFiles  int `yaml:"max_files" help:"rotated files of a file output kept besides the current one (the oldest is deleted)"`
}

// EventsConfig says where the permission-change stream is and what a
// replica does when it loses it.
type EventsConfig struct {
	NATSURL                string        `yaml:"nats_url" help:"NATS server URLs, comma-separated (empty: an embedded server under data_dir)"`
	CredentialsFile        string        `yaml:"credentials_file" help:"NATS credentials file (JWT and nkey seed) for nats_url, for a server in operator mode"`
	NkeySeedFile           string        `yaml:"nkey_seed_file" help:"NATS nkey seed file for nats_url, e.g. another replica's data_dir/nats-auth/replica.nk when it runs the embedded server"`
	TLSCAFile              string        `yaml:"tls_ca_file" help:"CA that signs the NATS servers' certificates (turns TLS on)"`
	TLSCertFile            string        `yaml:"tls_cert_file" help:"client certificate for NATS mutual TLS"`
	TLSKeyFile             string        `yaml:"tls_key_file" help:"client key for NATS mutual TLS"`
	EmbeddedListen         string        `yaml:"embedded_listen" help:"address where the embedded NATS server accepts other replicas and publishers, e.g. 127.0.0.1:4222 (empty: in-process only); they authenticate with the nkeys in data_dir/nats-auth"`
	EmbeddedTLSCertFile    string        `yaml:"embedded_tls_cert_file" help:"certificate for the embedded server's listener (TLS only); required beyond loopback"`
	EmbeddedTLSKeyFile     string        `yaml:"embedded_tls_key_file" help:"key of embedded_tls_cert_file"`
	EmbeddedAllowPlaintext bool          `yaml:"embedded_allow_plaintext" help:"let embedded_listen go beyond loopback without TLS (a network encrypted below: VPN, mesh)"`
	EmbeddedSync           string        `yaml:"embedded_sync" help:"when the embedded server fsyncs stored events: always (before acknowledging each: survives a power loss) or an interval such as 2m (faster; a power loss loses what came since the last sync)"`
	Stream                 string        `yaml:"stream" help:"JetStream stream of permission-change events"`
	StreamReplicas         int           `yaml:"stream_replicas" help:"copies of the stream in a NATS cluster (3 in production; 1 for a single server)"`
	Grace                  time.Duration `yaml:"grace" help:"how long a replica that lost NATS answers from its state before on_disconnect applies"`
	OnDisconnect           string        `yaml:"on_disconnect" help:"after the grace: fresh_only (tokens issued within fresh_window), deny, or allow"`
	FreshWindow            time.Duration `yaml:"fresh_window" help:"how recently a token must be issued to pass under fresh_only"`
	ReplicaID              string        `yaml:"replica_id" help:"this replica's name in heartbeats and /v1/status (empty: host name and a random suffix)"`
	MinSeqWait             time.Duration `yaml:"min_seq_wait" help:"longest a decision with Warden-Min-Seq waits for this replica to catch up"`
}

// embeddedSync reads EmbeddedSync: always, or an interval.
func (c EventsConfig) embeddedSync() (always bool, interval time.Duration, err error) {
	if c.EmbeddedSync == "always" {
		return true, 0, nil
	}
	interval, err = time.ParseDuration(c.EmbeddedSync)
	if err == nil && interval <= 0 {
		err = errors.New("not positive")
	}
	return false, interval, err
}

// PoliciesConfig says where the policy set comes from and how it is queried.
type PoliciesConfig struct {
	Source               string        `yaml:"source" help:"where the active policy set lives: nats (a JetStream bucket all replicas watch) or dir (policies.dir, read-only over the API)"`
	Dir                  string        `yaml:"dir" help:"directory of Rego modules and data files: the set with source dir, the seed of an empty bucket with source nats (empty: the shipped policies)"`
	Bucket               string        `yaml:"bucket" help:"JetStream key-value bucket of the policy set (source nats)"`
	PollInterval         time.Duration `yaml:"poll_interval" help:"how often policies.dir is checked for changes (source dir)"`
	AllowNetworkBuiltins bool          `yaml:"allow_network_builtins" help:"let policies call http.send, net.lookup_ip_addr and opa.runtime"`
	Entrypoint           string        `yaml:"entrypoint" help:"package path of the decision document"`
	EvalTimeout          time.Duration `yaml:"eval_timeout" help:"longest a policy evaluation may run before it denies with policy_timeout"`
	DecisionCache        int           `yaml:"decision_cache" help:"policy results reused while the policy set is active (0: off; never for policies calling time.now_ns, http.send or other non-deterministic built-ins)"`
}

// defaultConfig is every key's default. The components own their defaults;
// a literal here is a default only the command has.
func defaultConfig() Config {
	return Config{
		Listen:  "127.0.0.1:8480",
		DataDir: "./warden-data",
		Tokens: claims.Config{
			Leeway:      claims.DefaultLeeway,
			MaxLifetime: claims.DefaultMaxLifetime,
			MaxSize:     claims.DefaultMaxSize,
			CacheSize:   claims.DefaultCacheSize,
		},
		Policies: PoliciesConfig{
			Source:        policyset.SourceNATS,
			Bucket:        policyset.DefaultBucket,
			PollInterval:  policyset.DefaultPollInterval,
			Entrypoint:    decision.DefaultEntrypoint,
			EvalTimeout:   decision.DefaultEvalTimeout,
			DecisionCache: decision.DefaultDecisionCacheSize,
		},
		Events: EventsConfig{
			Stream:         events.DefaultStream,
			StreamReplicas: 1,
			Grace:          events.DefaultGrace,
			OnDisconnect:   string(events.FreshOnly),
			FreshWindow:    events.DefaultFreshWindow,
			MinSeqWait:     web.DefaultMinSeqWait,
			EmbeddedSync:   "2m",
		},
		Signals: signals.Config{Bucket: signals.DefaultBucket},
		DecisionLog: DecisionLogConfig{
			Buffer:    decisionlog.DefaultBuffer,
			MaxSizeMB: 100,
			MaxFiles:  5,
		},
		Proxy: ProxyConfig{
			TrustedProxies: joinPrefixes(web.DefaultTrustedProxies),
			TokenHeader:    web.DefaultTokenHeader,
		},
		Log: LogConfig{Level: "info"},
	}
}

// setting is one configuration key that a flag and an environment variable
// can set, and the field of a Config it sets.
type setting struct {
	key   string // as in the YAML file
	usage string
	field reflect.Value
}

// settingsOf lists the settings of c (a pointer), in field order: every
// field with a help tag, its key the yaml tags of its path.
func settingsOf(c *Config) []setting {
	var out []setting
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			key := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
			if help, ok := f.Tag.Lookup("help"); ok {
				out = append(out, setting{key: key, usage: help, field: v.Field(i)})
			} else if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				walk(v.Field(i), key+".")
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// bind makes s a flag of fs.
func (s setting) bind(fs *flag.FlagSet) {
	name := flagName(s.key)
	switch p := s.field.Addr().Interface().(type) {
	case *string:
		fs.StringVar(p, name, *p, s.usage)
	case *int:
		fs.IntVar(p, name, *p, s.usage)
	case *float64:
		fs.Float64Var(p, name, *p, s.usage)
	case *bool:
		fs.BoolVar(p, name, *p, s.usage)
	case *time.Duration:
		fs.DurationVar(p, name, *p, s.usage)
	default:
		panic(fmt.Sprintf("setting %s: no flag for a %T", s.key, p)) // a programming error, caught by every test
	}
}

// flagName is a key's flag: data_dir -> data-dir, tokens.max_lifetime ->
// tokens-max-lifetime.
func flagName(key string) string { return strings.NewReplacer(".", "-", "_", "-").Replace(key) }

// envName is a key's environment variable: tokens.max_lifetime ->
// WARDEN_TOKENS_MAX_LIFETIME.
func envName(key string) string {
	return "WARDEN_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// configFlags binds every setting of c to a flag, plus --config.
func configFlags(name string, c *Config, configPath *string, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(configPath, "config", "", "")
	for _, s := range settingsOf(c) {
		s.bind(fs)
	}
	return fs
}

// printSettings documents every setting: flag, environment variable, YAML
// key, default and meaning.
func printSettings(w io.Writer) {
	def := defaultConfig()
	fmt.Fprintf(w, "  --config PATH\n        YAML configuration file (env WARDEN_CONFIG)\n")
	var path string
	fs := configFlags("", &def, &path, io.Discard)
	for _, s := range settingsOf(&def) {
		f := fs.Lookup(flagName(s.key))
		fmt.Fprintf(w, "  --%s  (env %s, file key %s, default %q)\n        %s\n", f.Name, envName(s.key), s.key, f.DefValue, s.usage)
	}
	fmt.Fprintf(w, "  tokens.issuers (file only)\n        trusted issuers; empty runs the development issuer (see README)\n")
}

// loadConfig builds the configuration from the defaults, the file named by
// --config or WARDEN_CONFIG, the environment and the flags, then validates it.
// It returns the remaining positional arguments.
func loadConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	// The file is read before the flags are parsed, so that flags win over
	// it; its path is therefore picked out of the arguments first. Parsing
	// the flags only once matters: a repeatable flag would otherwise
	// collect its values twice.
	path := configFlagValue(args)
	if path == "" {
		path = getenv("WARDEN_CONFIG")
	}
	cfg := defaultConfig()
	if path != "" {
		if err := readConfigFile(path, &cfg); err != nil {
			return Config{}, err
		}
	}
	fs := configFlags(name, &cfg, &path, stderr)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage of warden %s:\n", name)
		printSettings(stderr)
		if extra != nil {
			printExtra(stderr, extra)
		}
	}
	for _, s := range settingsOf(&cfg) {
		if v := getenv(envName(s.key)); v != "" {
			if err := fs.Lookup(flagName(s.key)).Value.Set(v); err != nil {
				return Config{}, fmt.Errorf("environment %s=%q: %v", envName(s.key), v, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q; settings are flags like --listen=127.0.0.1:8480", fs.Arg(0))
	}
	return cfg, cfg.validate()
}

// configFlagValue finds --config PATH (or -config, or --config=PATH) in
// args, stopping at "--" as the flag package does.
func configFlagValue(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// printExtra documents a command's own flags (those that are not settings).
func printExtra(w io.Writer, extra func(*flag.FlagSet)) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	extra(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// readConfigFile reads the YAML file at path over cfg. Unknown keys are
// errors: a misspelt key silently ignored is a security setting not applied.
func readConfigFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %s", path, yamlMessage(err))
	}
	return nil
}

var yamlFieldNotFound = regexp.MustCompile(`field (\S+) not found in type \S+`)

// yamlMessage rewords yaml.v3's errors to name the key rather than the Go
// type that holds it.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = yamlFieldNotFound.ReplaceAllString(msg, "unknown key $1 (see \"warden serve --help\" for the keys)")
	return strings.ReplaceAll(msg, "\n ", "")
}

// maxDecisionLogBuffer bounds decision_log.buffer: each waiting entry takes
// a few hundred bytes, allocated up front.
const maxDecisionLogBuffer = 1 << 20

// validate checks every key, naming the key and the fix in its error.
func (c Config) validate() error {
	var errs []string
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Sprintf("listen: %q is not host:port, e.g. 127.0.0.1:8480", c.Listen))
	}
	if c.DataDir == "" {
		errs = append(errs, "data_dir: must not be empty; set a directory Warden may write, e.g. ./warden-data")
	}
	if err := c.Tokens.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if err := c.Signals.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	switch c.Policies.Source {
	case policyset.SourceNATS:
		if c.Policies.Bucket == "" {
			errs = append(errs, "policies.bucket: must not be empty; the default is "+policyset.DefaultBucket)
		}
	case policyset.SourceDir:
		if c.Policies.Dir == "" {
			errs = append(errs, "policies.dir: source dir needs the directory of the policy set")
		}
		if c.Policies.PollInterval <= 0 {
			errs = append(errs, fmt.Sprintf("policies.poll_interval: %v must be above 0, e.g. 2s", c.Policies.PollInterval))
		}
	default:
		errs = append(errs, fmt.Sprintf("policies.source: %q is not nats or dir", c.Policies.Source))
	}
	if _, err := c.Proxy.trustedProxies(); err != nil {
		errs = append(errs, err.Error())
	}
	if !httpguts.ValidHeaderFieldName(c.Proxy.TokenHeader) {
		errs = append(errs, fmt.Sprintf("proxy.token_header: %q is not a header name, e.g. authorization", c.Proxy.TokenHeader))
	}
	if c.Proxy.GRPCListen != "" {
		if _, _, err := net.SplitHostPort(c.Proxy.GRPCListen); err != nil {
			errs = append(errs, fmt.Sprintf("proxy.grpc_listen: %q is not host:port, e.g. 127.0.0.1:9191", c.Proxy.GRPCListen))
		}
	}
	if _, err := c.Log.level(); err != nil {
		errs = append(errs, fmt.Sprintf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	if err := decision.CheckEntrypoint(c.Policies.Entrypoint); err != nil {
		errs = append(errs, "policies.entrypoint: "+err.Error())
	}
	if c.OPA.DefaultDecision != "" {
		if decision.CheckEntrypoint(c.OPA.DefaultDecision) != nil {
			errs = append(errs, fmt.Sprintf("opa.default_decision: %q is not a path below data like warden/authz/allow", c.OPA.DefaultDecision))
		}
	}
	if c.Policies.EvalTimeout <= 0 || c.Policies.EvalTimeout > 10*time.Second {
		errs = append(errs, fmt.Sprintf("policies.eval_timeout: %v must be above 0 and at most 10s, e.g. 50ms", c.Policies.EvalTimeout))
	}
	if _, err := events.ParseDisconnectMode(c.Events.OnDisconnect); err != nil {
		errs = append(errs, err.Error())
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{{"events.grace", c.Events.Grace}, {"events.fresh_window", c.Events.FreshWindow}, {"events.min_seq_wait", c.Events.MinSeqWait}} {
		if d.d <= 0 {
			errs = append(errs, fmt.Sprintf("%s: %v must be above 0", d.key, d.d))
		}
	}
	if c.Events.Stream == "" {
		errs = append(errs, "events.stream: must not be empty; the default is "+events.DefaultStream)
	}
	if c.Events.StreamReplicas < 1 || c.Events.StreamReplicas > 5 {
		errs = append(errs, fmt.Sprintf("events.stream_replicas: %d must be 1 to 5 (JetStream's limit), e.g. 3 on a cluster", c.Events.StreamReplicas))
	}
	if c.Events.NATSURL != "" {
		for key, set := range map[string]bool{
			"events.embedded_listen": c.Events.EmbeddedListen != "", "events.embedded_tls_cert_file": c.Events.EmbeddedTLSCertFile != "",
			"events.embedded_tls_key_file": c.Events.EmbeddedTLSKeyFile != "", "events.embedded_allow_plaintext": c.Events.EmbeddedAllowPlaintext,
		} {
			if set {
				errs = append(errs, key+": only for the embedded server; remove it or events.nats_url")
			}
		}
	} else if c.Events.NkeySeedFile != "" || c.Events.CredentialsFile != "" {
		errs = append(errs, "events.nkey_seed_file and events.credentials_file: only with events.nats_url; the embedded server's own connection needs none")
	}
	if _, _, err := c.Events.embeddedSync(); err != nil {
		errs = append(errs, fmt.Sprintf("events.embedded_sync: %q is not always or a duration such as 2m", c.Events.EmbeddedSync))
	}
	if (c.Events.EmbeddedTLSCertFile == "") != (c.Events.EmbeddedTLSKeyFile == "") {
		errs = append(errs, "events.embedded_tls_cert_file and events.embedded_tls_key_file: set both, or neither")
	}
	if (c.Events.TLSCertFile == "") != (c.Events.TLSKeyFile == "") {
		errs = append(errs, "events.tls_cert_file and events.tls_key_file: set both for mutual TLS, or neither")
	}
	if c.Policies.DecisionCache < 0 {
		errs = append(errs, fmt.Sprintf("policies.decision_cache: %d must be 0 (off) or a number of entries, e.g. 200000", c.Policies.DecisionCache))
	}
	if c.DecisionAPI.RateLimit < 0 || c.DecisionAPI.RateBurst < 0 {
		errs = append(errs, fmt.Sprintf("decision_api.rate_limit and decision_api.rate_burst: %v and %d must not be negative (0 turns the limit off)", c.DecisionAPI.RateLimit, c.DecisionAPI.RateBurst))
	}
	if c.DecisionLog.MaxSizeMB < 1 || c.DecisionLog.MaxFiles < 1 {
		errs = append(errs, fmt.Sprintf("decision_log.max_size_mb and decision_log.max_files: %d MiB, %d files; each must be at least 1, e.g. 100 and 5", c.DecisionLog.MaxSizeMB, c.DecisionLog.MaxFiles))
	}
	if c.DecisionLog.Buffer < 1 || c.DecisionLog.Buffer > maxDecisionLogBuffer {
		errs = append(errs, fmt.Sprintf("decision_log.buffer: %d must be 1 to %d entries, e.g. %d", c.DecisionLog.Buffer, maxDecisionLogBuffer, decisionlog.DefaultBuffer))
	}
	if len(errs) > 0 {
		return errors.New("invalid configuration:\n  " + strings.Join(errs, "\n  "))
	}
	return nil
}
