package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/events/signals"
	"github.com/wardenauthz/warden/policies"
	"github.com/wardenauthz/warden/policyset"
	"github.com/wardenauthz/warden/web"
	"github.com/wardenauthz/warden/web/decisionlog"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"gopkg.in/natefinch/lumberjack.v2"
)

// shutdownTimeout bounds how long in-flight requests may take to finish
// after SIGINT/SIGTERM.
const shutdownTimeout = 15 * time.Second

// serve implements "warden serve": it runs the decision server until ctx is
// cancelled, reloading the policies on SIGHUP.
func serve(ctx context.Context, prog string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("serve", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	level, _ := cfg.Log.level() // validated
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var clients map[string]string
	if f := cfg.DecisionAPI.ClientTokensFile; f != "" {
		if clients, err = readClientTokens(f); err != nil {
			return err
		}
	}
	var revokers []web.RevocationClient
	if f := cfg.Revocation.ClientsFile; f != "" {
		if revokers, err = readRevocationClients(f); err != nil {
			return err
		}
	}
	devMode := len(cfg.Tokens.Issuers) == 0
	if devMode && !loopbackAddr(cfg.Listen) {
		if !cfg.Dev.AllowRemote {
			return fmt.Errorf("listen: development mode (no tokens.issuers) answers on loopback only, and %s reaches beyond this machine; configure tokens.issuers, or set dev.allow_remote (--dev-allow-remote) to expose a development Warden on purpose", cfg.Listen)
		}
		logger.Warn("development mode on an address beyond loopback (dev.allow_remote): anyone who reaches it is judged against the development issuer", "listen", cfg.Listen)
	}

	// The listener comes first, before anything slow starts (NATS, the
	// stream's replay, compiling the policies): an address in use fails in
	// milliseconds. Connections wait in the backlog until Serve.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen: %s is in use by another process; choose another address with listen (--listen, WARDEN_LISTEN): %w", cfg.Listen, err)
		}
		return fmt.Errorf("listen on %s (listen, --listen, WARDEN_LISTEN): %w", cfg.Listen, err)
	}
	defer ln.Close() // Serve closes it too; this is for the failures before
	var grpcLn net.Listener
	if cfg.Proxy.GRPCListen != "" {
		if grpcLn, err = net.Listen("tcp", cfg.Proxy.GRPCListen); err != nil {
			return fmt.Errorf("proxy.grpc_listen on %s (--proxy-grpc-listen): %w", cfg.Proxy.GRPCListen, err)
		}
		defer grpcLn.Close()
	}

	var dev *devIssuer
	if devMode {
		if dev, _, err = loadDevIssuer(cfg.DataDir); err != nil {
			return err
		}
		cfg.Tokens.Issuers = []claims.IssuerConfig{dev.issuerConfig()}
	}
	verifier, err := claims.NewVerifier(ctx, cfg.Tokens, claims.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	if cfg.Events.ReplicaID == "" {
		// Chosen here, not by the consumer, so that traces name it too.
		cfg.Events.ReplicaID = events.DefaultReplicaID()
	}
	var tp trace.TracerProvider // nil: no tracing
	if cfg.Tracing.OTLPEndpoint != "" {
		sdk, err := startTracing(ctx, cfg.Tracing.OTLPEndpoint, cfg.Events.ReplicaID)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := sdk.Shutdown(sctx); err != nil {
				logger.Warn("tracing: the last spans were not exported", "err", err)
			}
		}()
		tp = sdk
	}
	feed, err := startFeed(ctx, cfg, tp, logger)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer feed.close()

	// The engine starts on the local set (policies.dir or the shipped
	// one); the policy manager then converges it on the source: the bucket
	// every replica watches, or the directory.
	engine, err := decision.NewEngine(ctx, localPolicies(cfg.Policies), decision.Options{
		Revocations:          feed.consumer,
		Entrypoint:           cfg.Policies.Entrypoint,
		EvalTimeout:          cfg.Policies.EvalTimeout,
		DecisionCacheSize:    cfg.Policies.DecisionCache,
		AllowNetworkBuiltins: cfg.Policies.AllowNetworkBuiltins,
		Logger:               logger,
	})
	if err != nil {
		return fmt.Errorf("policies: %w", err)
	}
	pm, err := startPolicies(ctx, cfg, feed, engine, logger)
	if err != nil {
		return fmt.Errorf("policies: %w", err)
	}
	defer pm.Close()
	logOut, closeLogOut, err := openDecisionLogOutput(cfg.DecisionLog, stdout)
	if err != nil {
		return err
	}
	defer closeLogOut(logger)
	decisionLog := decisionlog.New(logOut, decisionlog.Options{
		Buffer:  cfg.DecisionLog.Buffer,
		Replica: feed.replicaID,
		Logger:  logger.With("component", "decision_log"),
	})
	// Deferred after closeLogOut, so it runs before it: every queued entry
	// is written and flushed before the file is closed.
	defer func() {
		if err := decisionLog.Close(); err != nil {
			logger.Error("decision log: the last entries could not be written", "err", err)
		}
	}()

	if err := feed.startHeartbeat(engine.Revision, decisionLog, logger); err != nil {
		return err
	}

	var receiver *signals.Receiver
	if len(cfg.Signals.Transmitters) > 0 {
		receiver, err = signals.NewReceiver(ctx, feed.nc, feed.publisher, cfg.Signals, signals.Options{
			Tokens: cfg.Tokens, Logger: logger, Replicas: cfg.Events.StreamReplicas,
		})
		if err != nil {
			return err
		}
		receiver.Poll(ctx)
	}

	trusted, _ := cfg.Proxy.trustedProxies() // validated
	var grpcServer *grpc.Server
	if grpcLn != nil {
		grpcServer = grpc.NewServer()
	}
	webOpts := web.Options{
		Proxy: web.ProxyOptions{
			TrustedProxies: trusted, TokenHeader: cfg.Proxy.TokenHeader, TokenCookie: cfg.Proxy.TokenCookie,
			RemoveAuthorization: cfg.Proxy.RemoveAuthorization,
		},
		DecisionClients: clients,
		DefaultDecision: cfg.OPA.defaultDecision(cfg.Policies.Entrypoint),
		DecisionRate:    cfg.DecisionAPI.RateLimit,
		DecisionBurst:   cfg.DecisionAPI.RateBurst,
		Events:          feed.web(cfg.Events.MinSeqWait),
		Policies:        pm,
		Drafts:          engine,
		Readiness:       []web.Readiness{pm},
		DecisionLog:     decisionLog,
	}
	if grpcServer != nil {
		webOpts.GRPCServer = grpcServer
	}
	if receiver != nil {
		webOpts.Signals = receiver
	}
	if dev != nil {
		// Only this machine's names: a page rebound to 127.0.0.1 by DNS
		// carries its own name in Host. An exposed development Warden
		// (dev.allow_remote) answers the names it is reached by.
		if !cfg.Dev.AllowRemote {
			listenHost, _, _ := net.SplitHostPort(cfg.Listen)
			webOpts.Hosts = []string{"localhost", "127.0.0.1", "::1"}
			if !slices.Contains(webOpts.Hosts, listenHost) {
				webOpts.Hosts = append(webOpts.Hosts, listenHost)
			}
		}
		// The UI's one-click sign-in and its policy playground's tokens,
		// for development mode only.
		ttl := min(15*time.Minute, cfg.Tokens.MaxLifetime)
		webOpts.DevAdminToken = func() (string, error) {
			return dev.mint("dev-admin", []string{"warden-admin"}, ttl, nil, time.Now())
		}
		webOpts.DevToken = func(sub string, roles []string, extra map[string]any) (string, error) {
			return dev.mint(sub, roles, ttl, extra, time.Now())
		}
	}
	webOpts.TracerProvider = tp
	webOpts.RevocationClients = revokers
	srv := &http.Server{
		Handler:           web.NewServer(logger, verifier, engine, webOpts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Decision streams never go idle; Shutdown waits for idle connections,
	// so the streams are ended as soon as it starts. Decisions still in
	// flight are logged as usual.
	srv.RegisterOnShutdown(decisionLog.CloseStreams)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if grpcServer != nil {
		go func() {
			if err := grpcServer.Serve(grpcLn); err != nil {
				serveErr <- fmt.Errorf("proxy.grpc_listen: %w", err)
			}
		}()
		defer grpcServer.Stop()
		logger.Info("envoy ext_authz gRPC service listening", "addr", grpcLn.Addr().String())
	}

	addr := ln.Addr().String()
	logger.Info("warden serving", "addr", addr, "policy_revision", engine.Revision(), "replica", feed.replicaID, "version", versionString())
	if dev != nil {
		printDevBanner(stderr, prog, addr, cfg)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case err := <-serveErr:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			// The source's set is checked again; a set that fails is
			// refused and the active one keeps answering.
			if err := pm.Reload(ctx); err != nil {
				logger.Error("policy reload refused; the previous policy set stays active", "revision", engine.Revision(), "err", err)
				continue
			}
			logger.Info("policies reloaded", "revision", engine.Revision())
		case <-ctx.Done():
			logger.Info("shutting down; letting in-flight requests finish", "timeout", shutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if grpcServer != nil {
				stopGracefully(sctx, grpcServer)
			}
			if err := srv.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		}
	}
}

// openDecisionLogOutput opens decision_log.output: "" is no output,
// "stdout" is the process's standard output, anything else a file that
// entries are appended to, created with mode 0600 (a file named stdout is
// "./stdout") and rotated by size, keeping max_files rotated files
// (lumberjack): an unauthenticated caller sending many decisions fills at
// most max_size_mb × (max_files + 1) of disk. The returned function closes
// what was opened.
func openDecisionLogOutput(c DecisionLogConfig, stdout io.Writer) (io.Writer, func(*slog.Logger), error) {
	switch c.Output {
	case "":
		return nil, func(*slog.Logger) {}, nil
	case "stdout":
		return stdout, func(*slog.Logger) {}, nil
	}
	// Opened here once, so that a path Warden cannot write fails at start
	// rather than at the first decision; lumberjack appends to it.
	f, err := os.OpenFile(c.Output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("decision_log.output: %w", err)
	}
	f.Close()
	out := &lumberjack.Logger{Filename: c.Output, MaxSize: c.MaxSizeMB, MaxBackups: c.MaxFiles, LocalTime: false}
	return out, func(logger *slog.Logger) {
		if err := out.Close(); err != nil {
			logger.Error("decision log: closing the output failed", "path", c.Output, "err", err)
		}
	}, nil
}

// localPolicies is the policy set on this machine: policies.dir, or the
// shipped set. It is the set a replica starts with and seeds an empty bucket
// from.
func localPolicies(c PoliciesConfig) fs.FS {
	if c.Dir == "" {
		return policies.FS()
	}
	return os.DirFS(c.Dir)
}

// startPolicies starts the policy manager on the source of policies.source.
func startPolicies(ctx context.Context, cfg Config, feed *feed, engine *decision.Engine, logger *slog.Logger) (*policyset.Manager, error) {
	log := logger.With("component", "policies")
	opts := policyset.ManagerOptions{Seed: localPolicies(cfg.Policies), Logger: log}
	if cfg.Policies.Source == policyset.SourceDir {
		dir, err := policyset.NewDir(cfg.Policies.Dir, cfg.Policies.PollInterval)
		if err != nil {
			return nil, err
		}
		return policyset.NewManager(ctx, dir, engine, opts)
	}
	// The bucket lives on the same NATS as the events; a replica cannot
	// know which policies to run without it, so an unreachable NATS is an
	// error here after a while rather than a silent start on a local set.
	// A JetStream request sent while a cluster elects its leaders goes
	// unanswered (or finds no responder) for a moment, so each attempt
	// gets a few seconds and the setup tries again until
	// policySetupTimeout. Every step is safe to repeat.
	ctx, cancel := context.WithTimeout(ctx, policySetupTimeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		store, err := policyset.NewStore(actx, feed.nc, policyset.StoreOptions{Bucket: cfg.Policies.Bucket, Replicas: cfg.Events.StreamReplicas, Logger: log})
		var m *policyset.Manager
		if err == nil {
			m, err = policyset.NewManager(actx, store, engine, opts)
		}
		acancel()
		if err == nil {
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("policy bucket %s: is NATS reachable (events.nats_url %q)? With policies.source dir a replica can start without it: %w", cfg.Policies.Bucket, cfg.Events.NATSURL, err)
		}
		var pe *decision.PolicyError
		if errors.As(err, &pe) {
			return nil, err // the seed does not pass its checks: no retry helps
		}
		log.Warn("cannot set up the policy bucket yet; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// policySetupTimeout bounds how long serve waits for NATS to set up the
// policy bucket at start.
const policySetupTimeout = 30 * time.Second

// loopbackAddr says whether the listen address addr (host:port) reaches
// only this machine: localhost or a loopback IP. An empty host or 0.0.0.0
// listens on every interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// printDevBanner says loudly that Warden trusts a development issuer, and
// how to use it.
//
// It prints no token itself: a log is kept, copied and shipped, and an
// admin token in it would outlive the terminal. It says how to mint one.
func printDevBanner(w io.Writer, prog, addr string, cfg Config) {
	dataFlag := ""
	if cfg.DataDir != defaultConfig().DataDir {
		dataFlag = " --data-dir " + cfg.DataDir
	}
	fmt.Fprintf(w, `
  ==================================================================
   WARDEN IS IN DEVELOPMENT MODE: it trusts the development issuer
   %q (audience %q), whose key is in %s.
   Configure tokens.issuers before exposing it to anything real.
  ==================================================================

  Mint a token:
    TOKEN=$(%s token%s --sub alice --roles manager)

  Ask a decision:
    curl -s http://%s/v1/decision -H 'Content-Type: application/json' \
      -d '{"token":"'"$TOKEN"'","action":"orders:approve","resource":{"type":"order","id":"42"}}'

  Admin UI (one-click development sign-in):
    http://%s/ui/

  An admin token for the API (warden event and warden policy push mint
  their own):
    ADMIN=$(%s token%s --sub admin --roles warden-admin --ttl 15m)

`, devIssuerName, devAudience, cfg.DataDir, prog, dataFlag, addr, addr, prog, dataFlag)
}

// stopGracefully lets the gRPC server's calls in flight finish until ctx
// ends, then stops it.
func stopGracefully(ctx context.Context, g *grpc.Server) {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.Stop()
	}
}
