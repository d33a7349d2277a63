package events

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions configures the in-process NATS server.
type EmbeddedOptions struct {
	// Listen is the TCP address clients may connect to, such as
	// "127.0.0.1:4222", or "127.0.0.1:0" for a random port. Empty, the
	// default, opens no port at all: Warden itself connects in process, and
	// nothing else can reach the server.
	Listen string
	// Logger receives the server's log: its notices at debug, its warnings
	// and errors at their level. Default: discarded, and the server does
	// not log at all (Warden's packages log only through the logger their
	// caller passes).
	Logger *slog.Logger
	// StartTimeout bounds how long the server may take to be ready,
	// including JetStream recovering its store. Default 30s.
	StartTimeout time.Duration
	// TLSCertFile and TLSKeyFile make the listener speak TLS only. A
	// Listen address beyond loopback needs them (the users' nkeys keep the
	// seeds secret, but events and policies would cross the network in
	// clear), unless AllowPlaintext says otherwise.
	TLSCertFile, TLSKeyFile string
	// AllowPlaintext lets a Listen address beyond loopback go without TLS,
	// for a network that is encrypted below (a VPN, a service mesh).
	AllowPlaintext bool
	// SyncAlways makes JetStream fsync every stored event before
	// acknowledging it, so that an acknowledged event survives a power loss
	// or kernel crash, not only a crash of the process. Otherwise
	// SyncInterval is how often it fsyncs (default 2m, nats-server's):
	// events acknowledged since the last sync are lost with the machine,
	// not with the process. Events are made by people and rare, so
	// always costs little (BenchmarkPublishSync); bulk loads (the replay
	// benchmark) go without.
	SyncAlways   bool
	SyncInterval time.Duration
}

// Embedded is a NATS server with JetStream running inside this process.
type Embedded struct {
	srv   *server.Server
	seeds map[string]string // user -> seed file
}

// StartEmbedded starts a NATS server in process with JetStream file storage
// under dataDir/nats, and waits until it accepts connections. Stop it with
// Shutdown after closing its connections.
//
// The server always requires authentication, in process too: its users
// (ReplicaUser, PublisherUser) are nkeys whose seeds are made on first
// start under dataDir/nats-auth (see SeedFile).
func StartEmbedded(dataDir string, opts EmbeddedOptions) (*Embedded, error) {
	if dataDir == "" {
		return nil, errors.New("events: embedded NATS: data directory is empty")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	dir := filepath.Join(dataDir, "nats")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("events: embedded NATS: %w", err)
	}
	users, seeds, err := embeddedUsers(dataDir)
	if err != nil {
		return nil, fmt.Errorf("events: embedded NATS: credentials: %w", err)
	}
	so := &server.Options{
		ServerName:   "warden-embedded",
		Nkeys:        users,
		JetStream:    true,
		StoreDir:     dir,
		NoSigs:       true, // signals belong to run, not to a library
		NoLog:        opts.Logger == nil,
		DontListen:   opts.Listen == "",
		SyncAlways:   opts.SyncAlways,
		SyncInterval: opts.SyncInterval,
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("events: embedded NATS: listen address %q: %w", opts.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("events: embedded NATS: listen address %q: bad port", opts.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		so.Host, so.Port = host, p
		if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
			return nil, errors.New("events: embedded NATS: TLS needs both a certificate and a key file")
		}
		if opts.TLSCertFile != "" {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: opts.TLSCertFile, KeyFile: opts.TLSKeyFile})
			if err != nil {
				return nil, fmt.Errorf("events: embedded NATS: TLS: %w", err)
			}
			so.TLS, so.TLSConfig = true, tc
		} else if !isLoopback(host) && !opts.AllowPlaintext {
			return nil, fmt.Errorf("events: embedded NATS: listen address %q reaches beyond this machine: give the listener a TLS certificate and key, or allow plaintext explicitly for a network encrypted below", opts.Listen)
		}
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("events: embedded NATS: %w", err)
	}
	if opts.Logger != nil {
		srv.SetLoggerV2(serverLogger{opts.Logger.With("component", "nats-server")}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(opts.StartTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("events: embedded NATS: not ready after %s (store %s)", opts.StartTimeout, dir)
	}
	return &Embedded{srv: srv, seeds: seeds}, nil
}

// Connect opens an in-process connection to the server as ReplicaUser.
// URLs and the credentials in opts are ignored; the reconnect settings
// apply.
func (e *Embedded) Connect(opts ConnectOptions) (*nats.Conn, error) {
	auth, err := nats.NkeyOptionFromSeed(e.seeds[ReplicaUser])
	if err != nil {
		return nil, fmt.Errorf("events: embedded NATS: %w", err)
	}
	return connect("", opts, nats.InProcessServer(e.srv), auth)
}

// SeedFile is the file holding user's nkey seed (ReplicaUser or
// PublisherUser), to hand to what connects over Listen: another replica
// (events.nkey_seed_file), a publisher (nats --nkey FILE, nats.js
// nkeyAuthenticator).
func (e *Embedded) SeedFile(user string) string { return e.seeds[user] }

// ClientURL is the nats:// URL other processes connect to, or "" when the
// server listens on no port.
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Shutdown stops the server and waits until it has flushed its store.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// ConnectOptions configures a client connection. The defaults are chosen
// for a security feed: a dead connection is noticed within seconds (ping
// every 2s, two pings unanswered), reconnection never gives up and starts
// after a short, jittered wait (so a fleet does not stampede a restarting
// server), and what is buffered while disconnected is bounded.
type ConnectOptions struct {
	// URLs is one or more server URLs separated by commas, such as
	// "nats://n1:4222,nats://n2:4222" (events.nats_url).
	URLs string
	// Name is the connection name shown by the server. Default "warden".
	Name string
	// CredsFile is a NATS credentials file (JWT and nkey seed), for a
	// server in operator mode.
	CredsFile string
	// NkeySeedFile is a file holding a user's nkey seed, for a server that
	// lists nkey users (as the embedded one does).
	NkeySeedFile string
	// CAFile verifies the server's certificate; CertFile and KeyFile are
	// the client certificate for mutual TLS. Any of them turns TLS on.
	CAFile, CertFile, KeyFile string
	// Logger receives connection events. Default: discarded (Warden's
	// packages log only through the logger their caller passes).
	Logger *slog.Logger

	PingInterval     time.Duration // default 2s
	MaxPingsOut      int           // default 2
	ReconnectWait    time.Duration // default 250ms
	ReconnectJitter  time.Duration // default 250ms (1s with TLS)
	ReconnectBufSize int           // bytes published while disconnected; default 1 MiB, -1 none
	Timeout          time.Duration // dial timeout; default 2s
}

// Connect dials an external NATS server or cluster. It does not fail when
// the servers are unreachable at start: the connection keeps trying in the
// background, and a Consumer on it reports not ready meanwhile. A replica
// that crash-loops while NATS restarts would be worse than one that waits.
func Connect(opts ConnectOptions) (*nats.Conn, error) {
	if strings.TrimSpace(opts.URLs) == "" {
		return nil, errors.New("events: connect: no NATS URL (events.nats_url)")
	}
	var extra []nats.Option
	if opts.CredsFile != "" {
		if _, err := os.Stat(opts.CredsFile); err != nil {
			return nil, fmt.Errorf("events: connect: credentials file: %w", err)
		}
		extra = append(extra, nats.UserCredentials(opts.CredsFile))
	}
	if opts.NkeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(opts.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("events: connect: nkey seed file: %w", err)
		}
		extra = append(extra, o)
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("events: connect: a client certificate needs both a cert file and a key file")
	}
	if opts.CAFile != "" {
		extra = append(extra, nats.RootCAs(opts.CAFile))
	}
	if opts.CertFile != "" {
		extra = append(extra, nats.ClientCert(opts.CertFile, opts.KeyFile))
	}
	extra = append(extra, nats.RetryOnFailedConnect(true))
	return connect(opts.URLs, opts, extra...)
}

func connect(urls string, opts ConnectOptions, extra ...nats.Option) (*nats.Conn, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.PingInterval, 2*time.Second)
	def(&opts.ReconnectWait, 250*time.Millisecond)
	def(&opts.ReconnectJitter, 250*time.Millisecond)
	def(&opts.Timeout, 2*time.Second)
	if opts.MaxPingsOut <= 0 {
		opts.MaxPingsOut = 2
	}
	if opts.ReconnectBufSize == 0 {
		opts.ReconnectBufSize = 1 << 20
	}
	if opts.Name == "" {
		opts.Name = "warden"
	}
	o := []nats.Option{
		nats.Name(opts.Name),
		nats.PingInterval(opts.PingInterval),
		nats.MaxPingsOutstanding(opts.MaxPingsOut),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(opts.ReconnectWait),
		nats.ReconnectJitter(opts.ReconnectJitter, max(opts.ReconnectJitter, time.Second)),
		nats.ReconnectBufSize(opts.ReconnectBufSize),
		nats.Timeout(opts.Timeout),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn("NATS disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			log.Info("NATS connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS error", "subject", subject, "error", err)
		}),
	}
	nc, err := nats.Connect(urls, append(o, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("events: connect: %w", err)
	}
	return nc, nil
}

// serverLogger sends nats-server's log to slog. The server's notices (a
// banner of some 25 lines at start, each client that connects) are debug
// information for Warden, whose own log says what matters at info; the
// server's warnings and errors keep their level.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
