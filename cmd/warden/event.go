package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wardenauthz/warden/web"
)

// eventFlags are the flags of "warden event" besides the settings.
type eventFlags struct {
	subject     string
	issuer      string
	jti         string
	expiresAt   string
	permVersion int64
	reason      string
	server      string
	token       string
	wait        time.Duration
}

const eventUsage = `usage: warden event <type> --subject S [flags]
types: roles_changed, sessions_revoked, token_revoked (needs --jti), subject_disabled, subject_enabled`

// publishEvent implements "warden event": it publishes a permission-change
// event through a running Warden's admin API (POST /v1/events).
func publishEvent(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, eventUsage)
			return flag.ErrHelp
		}
		return errors.New(eventUsage)
	}
	typ, args := args[0], args[1:]
	var ef eventFlags
	cfg, err := loadConfig("event", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&ef.subject, "subject", "", "the user whose permissions changed (the tokens' sub)")
		fs.StringVar(&ef.issuer, "issuer", "", "only tokens of this issuer (default: every issuer)")
		fs.StringVar(&ef.jti, "jti", "", "the token to revoke (token_revoked)")
		fs.StringVar(&ef.expiresAt, "expires-at", "", "the revoked token's exp, RFC 3339 (token_revoked, optional)")
		fs.Int64Var(&ef.permVersion, "perm-version", 0, "the subject's permission version after the change (optional)")
		fs.StringVar(&ef.reason, "reason", "", "why, for the audit trail")
		fs.StringVar(&ef.server, "server", "", "Warden's base URL (default: http://<listen>)")
		fs.StringVar(&ef.token, "token", "", "admin token (default: $WARDEN_ADMIN_TOKEN, or one minted from the development key)")
		fs.DurationVar(&ef.wait, "wait", time.Second, "how long to wait for every replica to enforce the event (0: do not wait)")
	})
	if err != nil {
		return err
	}
	body := map[string]any{"type": typ, "subject": ef.subject}
	for k, v := range map[string]string{"issuer": ef.issuer, "jti": ef.jti, "expires_at": ef.expiresAt, "reason": ef.reason} {
		if v != "" {
			body[k] = v
		}
	}
	if ef.permVersion != 0 {
		body["perm_version"] = ef.permVersion
	}

	server := ef.server
	if server == "" {
		server = "http://" + cfg.Listen
	}
	client, err := newAdminClient(server, ef.token, cfg.DataDir, getenv, ef.wait+10*time.Second)
	if err != nil {
		return err
	}
	path := "/v1/events"
	if ef.wait > 0 {
		path += "?wait=" + url.QueryEscape(ef.wait.String())
	}
	var out web.PublishResponse
	if err := client.call(ctx, http.MethodPost, path, body, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published %s for %q as sequence %d (id %s)", typ, ef.subject, out.Seq, out.ID)
	if out.Duplicate {
		fmt.Fprint(stdout, ", a duplicate of an earlier publish")
	}
	if e := out.Enforced; e != nil {
		fmt.Fprintf(stdout, "; enforced on %d/%d replicas after %d ms", e.Applied, e.Total, e.ElapsedMS)
	}
	fmt.Fprintln(stdout)
	return nil
}
