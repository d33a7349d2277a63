package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// tokenFlags are the flags of "warden token" besides the settings.
type tokenFlags struct {
	sub    string
	roles  listFlag
	ttl    time.Duration
	claims listFlag
}

// listFlag is a repeatable flag; each value may also be a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// mintToken implements "warden token": it prints a token signed by the
// development issuer of the data directory.
func mintToken(prog string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var tf tokenFlags
	cfg, err := loadConfig("token", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&tf.sub, "sub", "", "subject of the token (required)")
		fs.Var(&tf.roles, "roles", "roles claim: comma-separated, repeatable")
		fs.DurationVar(&tf.ttl, "ttl", 15*time.Minute, "lifetime of the token")
		fs.Var(&tf.claims, "claim", "extra claim key=value, repeatable; a JSON value (7, true, [\"a\"]) keeps its type")
	})
	if err != nil {
		return err
	}
	if len(cfg.Tokens.Issuers) > 0 {
		return errors.New("warden token mints only for the development issuer, and this configuration trusts external issuers (tokens.issuers)")
	}
	if tf.sub == "" {
		return fmt.Errorf("--sub is required, e.g. %s token --sub alice --roles manager", prog)
	}
	if tf.ttl <= 0 || tf.ttl > cfg.Tokens.MaxLifetime {
		return fmt.Errorf("--ttl %v must be above 0 and at most tokens.max_lifetime (%v), or Warden would reject the token", tf.ttl, cfg.Tokens.MaxLifetime)
	}
	roles := []string{}
	for _, r := range tf.roles {
		for _, part := range strings.Split(r, ",") {
			if part = strings.TrimSpace(part); part != "" {
				roles = append(roles, part)
			}
		}
	}
	extra, err := parseClaims(tf.claims)
	if err != nil {
		return err
	}
	dev, _, err := loadDevIssuer(cfg.DataDir)
	if err != nil {
		return err
	}
	token, err := dev.mint(tf.sub, roles, tf.ttl, extra, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// parseClaims reads key=value pairs; a value that is valid JSON keeps its
// JSON type, anything else is a string.
func parseClaims(pairs []string) (map[string]any, error) {
	out := make(map[string]any, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--claim %q: want key=value", p)
		}
		var js any
		if err := json.Unmarshal([]byte(v), &js); err == nil {
			out[k] = js
		} else {
			out[k] = v
		}
	}
	return out, nil
}
