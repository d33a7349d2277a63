package events

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// The users of the embedded NATS server. Each authenticates with an nkey (a
// signed challenge: the seed never crosses the wire) whose seed is made on
// the server's first start and kept in dataDir/nats-auth/<user>.nk, mode
// 0600. Anyone who can write warden.events.> or the policy bucket has admin
// power over every replica, so nothing connects without one.
const (
	// ReplicaUser is for Warden replicas: they read and write the stream,
	// the policy bucket and the heartbeats. Its seed goes to the other
	// replicas that share this server (events.nkey_seed_file).
	ReplicaUser = "replica"
	// PublisherUser is for event publishers (an identity provider's hook,
	// a script): it may publish to warden.events.> and receive the
	// acknowledgements, nothing else: not read events, not touch the
	// policy bucket, not forge heartbeats.
	PublisherUser = "publisher"
)

// authDir is where the users' seeds live under the data directory.
const authDir = "nats-auth"

// embeddedUsers reads the users' seeds under dataDir, making the missing
// ones, and returns them as the server's nkey users and the seed files.
func embeddedUsers(dataDir string) ([]*server.NkeyUser, map[string]string, error) {
	dir := filepath.Join(dataDir, authDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	perms := map[string]*server.Permissions{
		ReplicaUser: nil, // everything
		PublisherUser: {
			Publish: &server.SubjectPermission{Allow: []string{SubjectAll}},
			// The stream's acknowledgement comes back to the client's inbox.
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		},
	}
	var users []*server.NkeyUser
	files := map[string]string{}
	for _, user := range []string{ReplicaUser, PublisherUser} {
		file := filepath.Join(dir, user+".nk")
		pub, err := userKey(file)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", user, err)
		}
		users = append(users, &server.NkeyUser{Nkey: pub, Permissions: perms[user]})
		files[user] = file
	}
	return users, files, nil
}

// userKey returns the public key of the user seed in file, making the seed
// first if there is none.
func userKey(file string) (string, error) {
	seed, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", err
		}
		if seed, err = kp.Seed(); err != nil {
			return "", err
		}
		// O_EXCL: a second process starting at the same moment loses
		// rather than overwriting a seed the first already handed out.
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", err
		}
		_, werr := f.Write(append(seed, '\n'))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return "", werr
		}
	} else if err != nil {
		return "", err
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("seed file %s is readable by others (mode %v); chmod 600 it", file, fi.Mode().Perm())
	}
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		return "", fmt.Errorf("seed file %s: %w", file, err)
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

// isLoopback says whether host (of a listen address) reaches only this
// machine. An empty host or 0.0.0.0 listens on every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
