package policyset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the name of the policy key-value bucket.
const DefaultBucket = "WARDEN_POLICIES"

// setKey is the one key of the bucket that holds the set. The whole set
// is one value, so a put is atomic: a replica sees the old set or the new
// one, never half of a push. Other keys in the bucket are ignored.
const setKey = "set"

const (
	// DefaultHistory is how many versions of the set the bucket keeps
	// by default (History lists them; a rollback puts an old one again).
	DefaultHistory = 16
	// DefaultMaxBytes is the default limit on one stored set, as
	// encoded JSON. NATS's default max_payload is 1 MiB, and a put carries a
	// few headers besides the value.
	DefaultMaxBytes = 1<<20 - headerRoom
	// headerRoom is what the bucket allows per message beyond the
	// value, for the headers of an optimistic put.
	headerRoom = 4 << 10
)

var (
	// ErrNoSet is returned when the bucket holds no policy set (never
	// seeded, or the key was deleted).
	ErrNoSet = errors.New("no policy set stored")
	// ErrConflict is returned by Put when the stored set is no longer the
	// one the caller expected: someone else put a set in between. Read
	// Current again and retry, or report it (HTTP 409).
	ErrConflict = errors.New("the policy set changed meanwhile")
)

// StoreOptions configures the policy bucket and store. The zero value
// uses the defaults.
type StoreOptions struct {
	// Bucket is the key-value bucket's name. Default DefaultBucket.
	Bucket string
	// History is how many versions of the set are kept, 1 to 64. Default
	// DefaultHistory.
	History int
	// Replicas is the number of copies in a NATS cluster. Default 1.
	Replicas int
	// MaxBytes is the limit on one set, as stored (JSON). Default
	// DefaultMaxBytes. A connection's server may allow less
	// (max_payload); Put checks both.
	MaxBytes int
	// MaxFiles is the limit on files in one set. Default
	// DefaultMaxFiles.
	MaxFiles int
	// Logger receives skipped values and watch restarts. Default: discarded.
	Logger *slog.Logger
}

func (o *StoreOptions) setDefaults() error {
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.History == 0 {
		o.History = DefaultHistory
	}
	if o.History < 1 || o.History > jetstream.KeyValueMaxHistory {
		return fmt.Errorf("policyset: policy bucket %s: history %d; want 1 to %d", o.Bucket, o.History, jetstream.KeyValueMaxHistory)
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// keyValueConfig is the JetStream configuration ensureBucket applies.
func (o StoreOptions) keyValueConfig() (jetstream.KeyValueConfig, error) {
	if err := o.setDefaults(); err != nil {
		return jetstream.KeyValueConfig{}, err
	}
	return jetstream.KeyValueConfig{
		Bucket:       o.Bucket,
		Description:  "Warden policy sets (Rego modules and data, one JSON value per version); every replica watches it",
		History:      uint8(o.History),
		MaxValueSize: int32(min(o.MaxBytes+headerRoom, 1<<31-1)),
		Storage:      jetstream.FileStorage,
		Replicas:     o.Replicas,
	}, nil
}

// ensureBucket creates the policy bucket, or updates it to opts when it
// exists (for example after the history grew). Running it on every start
// of every replica is safe: a replica never lowers the bucket's history or
// its value size, which the rest of the fleet may rely on (a rollback to an
// older version, a set larger than this replica's default).
func ensureBucket(ctx context.Context, nc *nats.Conn, opts StoreOptions) (jetstream.KeyValue, error) {
	cfg, err := opts.keyValueConfig()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("policyset: policy bucket: %w", err)
	}
	if old, err := js.KeyValue(ctx, cfg.Bucket); err == nil {
		st, err := old.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("policyset: policy bucket %s: %w", cfg.Bucket, err)
		}
		if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
			cur := bs.StreamInfo().Config
			cfg.History = max(cfg.History, uint8(min(cur.MaxMsgsPerSubject, jetstream.KeyValueMaxHistory)))
			cfg.MaxValueSize = max(cfg.MaxValueSize, cur.MaxMsgSize)
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("policyset: policy bucket %s: %w", cfg.Bucket, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, fmt.Errorf("policyset: policy bucket %s: the NATS server has no JetStream (start it with -js): %w", cfg.Bucket, err)
		}
		return nil, fmt.Errorf("policyset: policy bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Store keeps the policy set in a JetStream key-value bucket, versioned,
// and distributes it to every replica (Watch). It does not compile or test
// sets: the caller checks a candidate with the decision package before Seed
// or Put, and each replica checks what Watch delivers before activating it,
// so a broken set that reached the bucket anyway (by hand, or from an older
// Warden) is refused by every replica rather than activated.
//
// A Store is safe for concurrent use.
type Store struct {
	nc   *nats.Conn
	kv   jetstream.KeyValue
	opts StoreOptions
	log  *slog.Logger
}

// NewStore ensures the bucket (ensureBucket) and returns a store
// on it. It needs NATS reachable within ctx.
func NewStore(ctx context.Context, nc *nats.Conn, opts StoreOptions) (*Store, error) {
	if nc == nil {
		return nil, errors.New("policyset: policy store: needs a NATS connection")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	kv, err := ensureBucket(ctx, nc, opts)
	if err != nil {
		return nil, err
	}
	return &Store{
		nc: nc, kv: kv, opts: opts,
		log: opts.Logger.With("bucket", opts.Bucket),
	}, nil
}

// Kind is SourceNATS.
func (s *Store) Kind() string { return SourceNATS }

func (s *Store) String() string { return "bucket " + s.opts.Bucket }

// CanPut reports what Put would refuse set for without storing it: one
// wrapping ErrInvalid (names, count, size).
func (s *Store) CanPut(set Set) error {
	_, _, err := s.encode(set)
	return err
}

// Follow is Watch as a Source follows: the stop function ends the watch.
func (s *Store) Follow(ctx context.Context, fn func(Set, error)) (func(), error) {
	w, err := s.Watch(ctx, fn)
	if err != nil {
		return nil, err
	}
	return w.Stop, nil
}

// Current returns the stored set. Errors: ErrNoSet when there is none;
// one wrapping ErrInvalid when the stored value is not a valid set,
// in which case the returned set carries only the value's KVRevision, so that
// an admin can replace it with Put; otherwise NATS errors.
func (s *Store) Current(ctx context.Context) (Set, error) {
	e, err := s.kv.Get(ctx, setKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Set{}, ErrNoSet
	}
	if err != nil {
		return Set{}, fmt.Errorf("policyset: policy store: get: %w", err)
	}
	return s.decode(e)
}

// Put stores set as the new version if the stored set is still the one at
// KV revision expected (its Set.KVRevision), or, with expected 0, if
// the bucket holds no set. This is optimistic concurrency: two admins
// editing the same set cannot silently overwrite each other; the second gets
// ErrConflict. A caller that means "replace whatever is there" (a CI push of
// a whole directory) reads Current and passes its KVRevision.
//
// It returns the stored set with its Revision, At and KVRevision. Errors:
// ErrConflict; one wrapping ErrInvalid for a set that cannot be
// stored (names, count, size); otherwise NATS errors.
func (s *Store) Put(ctx context.Context, set Set, expected uint64) (Set, error) {
	data, set, err := s.encode(set)
	if err != nil {
		return Set{}, err
	}
	var rev uint64
	if expected == 0 {
		rev, err = s.kv.Create(ctx, setKey, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Set{}, fmt.Errorf("policyset: policy store: put: %w (a set is stored; expected none)", ErrConflict)
		}
	} else {
		rev, err = s.kv.Update(ctx, setKey, data, expected)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return Set{}, fmt.Errorf("policyset: policy store: put: %w (expected revision %d)", ErrConflict, expected)
		}
	}
	if err != nil {
		return Set{}, fmt.Errorf("policyset: policy store: put: %w", err)
	}
	set.KVRevision = rev
	return set, nil
}

// History returns the versions of the set the bucket still keeps, newest
// first (at most StoreOptions.History). Values that are not valid sets
// are left out and logged. Errors: ErrNoSet when there is none.
func (s *Store) History(ctx context.Context) ([]Set, error) {
	entries, err := s.kv.History(ctx, setKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoSet
	}
	if err != nil {
		return nil, fmt.Errorf("policyset: policy store: history: %w", err)
	}
	sets := make([]Set, 0, len(entries))
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		set, err := s.decode(e)
		if err != nil {
			s.log.Warn("policyset: policy history: skipping a value that is not a policy set", "kv_revision", e.Revision(), "error", err)
			continue
		}
		sets = append(sets, set)
	}
	if len(sets) == 0 {
		return nil, ErrNoSet
	}
	return sets, nil
}

// encode validates set, fills Revision and At, and checks the size against
// MaxBytes and the server's max_payload.
func (s *Store) encode(set Set) ([]byte, Set, error) {
	set.At = time.Now()
	data, set, err := encodeSet(set, s.opts.MaxFiles)
	if err != nil {
		return nil, Set{}, fmt.Errorf("policyset: policy store: %w", err)
	}
	if len(data) > s.opts.MaxBytes {
		return nil, Set{}, fmt.Errorf("policyset: policy store: %w: %d bytes stored, over the limit of %d",
			ErrInvalid, len(data), s.opts.MaxBytes)
	}
	// MaxPayload is 0 until the connection has reached a server once.
	if mp := s.nc.MaxPayload(); mp > 0 && int64(len(data))+headerRoom > mp {
		return nil, Set{}, fmt.Errorf("policyset: policy store: %w: %d bytes stored, over what the NATS server accepts in one message (max_payload %d, less %d for headers)",
			ErrInvalid, len(data), mp, headerRoom)
	}
	return data, set, nil
}

// decode reads a stored value as a set. A value that is not one gives the
// same error whoever reads it (Current, the watch, the history), naming its
// KV revision, with a set that carries only that revision: the manager
// records one refusal per stored value, not one per reader.
func (s *Store) decode(e jetstream.KeyValueEntry) (Set, error) {
	// No file-count limit on reading: a replica configured with a lower
	// MaxFiles than the one that stored the set must not split the fleet.
	// MaxValueSize already bounds what a value can cost.
	set, err := decodeSet(e.Value(), math.MaxInt)
	if err != nil {
		return Set{KVRevision: e.Revision()}, fmt.Errorf("policyset: policy store: revision %d: %w", e.Revision(), err)
	}
	set.KVRevision = e.Revision()
	return set, nil
}
