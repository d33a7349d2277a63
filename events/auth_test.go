package events

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEmbeddedAuth attacks the embedded server's listener as a local user
// would: a raw client without credentials is refused, a publisher's key
// may publish events and nothing else (not read them, not write the policy
// bucket, not forge heartbeats), and only the replica key has the rest.
func TestEmbeddedAuth(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	nc := dial(t, srv)
	ensureStream(t, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "WARDEN_POLICIES"})
	if err != nil {
		t.Fatal(err)
	}

	// No credentials, a wrong key, a token or a user/password: refused.
	other := filepath.Join(t.TempDir(), "other.nk")
	if _, err := userKey(other); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]nats.Option{
		"anonymous":     nil,
		"user/password": {nats.UserInfo("replica", "replica")},
		"token":         {nats.Token("warden")},
		"foreign nkey":  {mustNkey(t, other)},
	} {
		if c, err := nats.Connect(srv.ClientURL(), append(opts, nats.Timeout(2*time.Second))...); err == nil || !errors.Is(err, nats.ErrAuthorization) {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s: connect = %v, want an authorization violation", name, err)
		}
	}

	// The seeds are the owner's only, and kept across restarts.
	for _, user := range []string{ReplicaUser, PublisherUser} {
		fi, err := os.Stat(srv.SeedFile(user))
		if err != nil || fi.Mode().Perm() != 0o600 || filepath.Dir(srv.SeedFile(user)) != filepath.Join(dir, authDir) {
			t.Errorf("%s seed %s: %v, mode %v", user, srv.SeedFile(user), err, fi.Mode())
		}
	}

	// The publisher publishes events, with the stream's acknowledgement.
	pub := dialAt(t, srv.ClientURL(), srv.SeedFile(PublisherUser))
	pjs, err := jetstream.New(pub)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := pjs.Publish(t.Context(), TypeRolesChanged.Subject(), []byte(`{"v":1,"id":"p1","type":"roles_changed","subject":"alice","at":"2026-11-23T10:00:00Z"}`))
	if err != nil || ack.Stream != DefaultStream {
		t.Fatalf("publisher's publish = %+v, %v", ack, err)
	}
	// ...and nothing else: each is a permissions violation, and nothing
	// reaches the bucket or the heartbeat subject.
	errs := make(chan error, 8)
	pub.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	heartbeats, err := nc.SubscribeSync(ReplicasSubjectPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	for _, subject := range []string{"$KV.WARDEN_POLICIES.set", ReplicasSubjectPrefix + "forged", "$JS.API.STREAM.PURGE." + DefaultStream} {
		if err := pub.Publish(subject, []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("publish to %s: %v, want a permissions violation", subject, err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("publish to %s: no permissions violation", subject)
		}
	}
	if _, err := pub.SubscribeSync(SubjectAll); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("subscribe to events: %v, want a permissions violation", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("subscribe to events: no permissions violation")
	}
	if _, err := kv.Get(t.Context(), "set"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the policy bucket: %v, want it untouched", err)
	}
	if m, err := heartbeats.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("a forged heartbeat got through: %s", m.Subject)
	}

	// A restart keeps the keys: the clients reconnect with the same seeds.
	addr := strings.TrimPrefix(srv.ClientURL(), "nats://")
	srv.Shutdown()
	again := startServerAt(t, dir, addr)
	if again.SeedFile(ReplicaUser) != srv.SeedFile(ReplicaUser) {
		t.Errorf("seed moved to %s", again.SeedFile(ReplicaUser))
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Errorf("the replica did not reconnect with its seed: %v", err)
	}
}

// TestEmbeddedSeedMode: a seed readable by others is refused, not used.
func TestEmbeddedSeedMode(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := embeddedUsers(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, authDir, ReplicaUser+".nk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := StartEmbedded(dir, EmbeddedOptions{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("StartEmbedded with a world-readable seed = %v", err)
	}
}

// TestEmbeddedListenBeyondLoopback: a listener beyond loopback needs TLS
// (or an explicit plaintext override); with TLS, clients must speak it.
func TestEmbeddedListenBeyondLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:4222", ":4222", "[::]:4222", "192.0.2.1:4222"} {
		if _, err := StartEmbedded(t.TempDir(), EmbeddedOptions{Listen: addr}); err == nil || !strings.Contains(err.Error(), "TLS") {
			t.Errorf("Listen %s without TLS = %v, want refused", addr, err)
		}
	}
	for host, want := range map[string]bool{"127.0.0.1": true, "127.9.9.9": true, "::1": true, "localhost": true, "": false, "0.0.0.0": false, "10.0.0.1": false} {
		if isLoopback(host) != want {
			t.Errorf("isLoopback(%q) = %v", host, !want)
		}
	}

	certFile, keyFile := selfSigned(t)
	srv, err := StartEmbedded(t.TempDir(), EmbeddedOptions{Listen: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := Connect(ConnectOptions{URLs: srv.ClientURL(), NkeySeedFile: srv.SeedFile(ReplicaUser), CAFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Errorf("over TLS: %v", err)
	}
	if c, err := nats.Connect(srv.ClientURL(), nats.Timeout(2*time.Second), mustNkey(t, srv.SeedFile(ReplicaUser))); err == nil {
		c.Close()
		t.Error("a client without TLS connected to a TLS listener")
	}
}

func mustNkey(t *testing.T, file string) nats.Option {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(file)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warden-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
