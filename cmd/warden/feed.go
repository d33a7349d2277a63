package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/web"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// feed is the running permission-change feed of one replica: the NATS
// connection (and the embedded server, by default), the consumer that folds
// the stream into the ledger, the publisher, the heartbeat and the fleet
// watcher.
type feed struct {
	embedded  *events.Embedded // nil with events.nats_url
	nc        *nats.Conn
	ledger    *events.Ledger
	consumer  *events.Consumer
	publisher *events.Publisher
	fleet     *events.Fleet
	heartbeat *events.Heartbeat
	replicaID string
}

// startFeed connects to NATS (starting the embedded server when no URL is
// configured), makes sure the stream exists and starts following it. It
// returns before the replay is done: the consumer's Ready says when.
// With tp (nil: no tracing), publishes and applies are traced.
func startFeed(ctx context.Context, cfg Config, tp trace.TracerProvider, logger *slog.Logger) (*feed, error) {
	f := &feed{}
	log := logger.With("component", "events")
	connOpts := events.ConnectOptions{
		URLs:         cfg.Events.NATSURL,
		Name:         "warden",
		CredsFile:    cfg.Events.CredentialsFile,
		NkeySeedFile: cfg.Events.NkeySeedFile,
		CAFile:       cfg.Events.TLSCAFile,
		CertFile:     cfg.Events.TLSCertFile,
		KeyFile:      cfg.Events.TLSKeyFile,
		Logger:       log,
	}
	var err error
	if cfg.Events.NATSURL == "" {
		syncAlways, syncInterval, _ := cfg.Events.embeddedSync() // validated
		f.embedded, err = events.StartEmbedded(cfg.DataDir, events.EmbeddedOptions{
			Listen:      cfg.Events.EmbeddedListen,
			TLSCertFile: cfg.Events.EmbeddedTLSCertFile, TLSKeyFile: cfg.Events.EmbeddedTLSKeyFile,
			AllowPlaintext: cfg.Events.EmbeddedAllowPlaintext,
			SyncAlways:     syncAlways,
			SyncInterval:   syncInterval,
			Logger:         log,
		})
		if err != nil {
			return nil, err
		}
		if url := f.embedded.ClientURL(); url != "" {
			log.Info("embedded NATS accepts connections", "url", url,
				"replica_seed", f.embedded.SeedFile(events.ReplicaUser), "publisher_seed", f.embedded.SeedFile(events.PublisherUser))
		}
		f.nc, err = f.embedded.Connect(connOpts)
	} else {
		f.nc, err = events.Connect(connOpts)
	}
	if err != nil {
		f.close()
		return nil, err
	}

	streamOpts := events.StreamOptions{
		Name:        cfg.Events.Stream,
		MaxLifetime: cfg.Tokens.MaxLifetime,
		Leeway:      cfg.Tokens.Leeway,
		Replicas:    cfg.Events.StreamReplicas,
	}
	// Set the stream up before the consumer starts, so that a first start
	// does not log that the stream is missing; when NATS is not reachable
	// yet, keep trying in the background instead of failing.
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = events.EnsureStream(sctx, f.nc, streamOpts)
	cancel()
	if err != nil {
		go ensureStream(ctx, f.nc, streamOpts, log)
	}

	f.ledger = events.NewLedger(events.LedgerOptions{MaxLifetime: cfg.Tokens.MaxLifetime, Leeway: cfg.Tokens.Leeway})
	f.consumer, err = events.NewConsumer(f.nc, f.ledger, events.ConsumerOptions{
		Stream:         cfg.Events.Stream,
		ReplicaID:      cfg.Events.ReplicaID,
		Grace:          cfg.Events.Grace,
		OnDisconnect:   events.DisconnectMode(cfg.Events.OnDisconnect),
		FreshWindow:    cfg.Events.FreshWindow,
		Logger:         log,
		TracerProvider: tp,
	})
	if err != nil {
		f.close()
		return nil, err
	}
	f.replicaID = f.consumer.ReplicaID()
	if f.publisher, err = events.NewPublisher(f.nc, events.PublisherOptions{Stream: cfg.Events.Stream, TracerProvider: tp}); err != nil {
		f.close()
		return nil, err
	}
	if f.fleet, err = events.NewFleet(f.nc, events.FleetOptions{Logger: log}); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// ensureStream creates or updates the stream, retrying until NATS answers:
// a replica started while NATS is down waits, not ready, rather than
// crash-looping.
func ensureStream(ctx context.Context, nc *nats.Conn, opts events.StreamOptions, log *slog.Logger) {
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := events.EnsureStream(sctx, nc, opts)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("cannot set up the event stream yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// startHeartbeat announces this replica once the engine and the decision log
// exist, so that the beats carry its policy revision, decision counts and
// recent load.
func (f *feed) startHeartbeat(revision func() string, log *decisionlog.Log, logger *slog.Logger) error {
	hb, err := events.NewHeartbeat(f.nc, f.consumer, events.HeartbeatOptions{
		PolicyRevision: revision, Decisions: log.Counts, Load: log.Load, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("events: heartbeat: %w", err)
	}
	f.heartbeat = hb
	return nil
}

// web is the feed as the HTTP API sees it.
func (f *feed) web(minSeqWait time.Duration) *web.Events {
	return &web.Events{
		Publisher:  f.publisher,
		Stream:     f.consumer,
		Ledger:     f.ledger,
		Fleet:      f.fleet,
		MinSeqWait: minSeqWait,
		ReplicaID:  f.replicaID,
	}
}

// close stops everything in the reverse order of start. The heartbeat's last
// beat tells the fleet this replica is leaving.
func (f *feed) close() {
	if f.heartbeat != nil {
		f.heartbeat.Close()
	}
	if f.consumer != nil {
		f.consumer.Close()
	}
	if f.fleet != nil {
		f.fleet.Close()
	}
	if f.nc != nil {
		f.nc.Drain()
	}
	if f.embedded != nil {
		f.embedded.Shutdown()
	}
}
