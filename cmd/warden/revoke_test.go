package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/web"
)

// TestRevocationAcrossReplicas: an OAuth client revokes one of a user's
// tokens at POST /oauth2/revoke (RFC 7009) on one of three replicas
// sharing a JetStream; every replica then denies that token as
// token_revoked, and the user's other token stays allowed. The refusals
// come first and publish nothing: the revocation is the stream's first
// event.
func TestRevocationAcrossReplicas(t *testing.T) {
	const secret = "orders-web-secret-0123456789abcdef"
	digest := sha256.Sum256([]byte(secret))
	clients := filepath.Join(t.TempDir(), "revocation-clients")
	if err := os.WriteFile(clients, []byte("# client_id  sha256 of the secret\norders-web sha256:"+hex.EncodeToString(digest[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	replicas := startReplicas(t, dataDir, 3, "--revocation-clients-file", clients)

	revoked := mint(t, dataDir, "--sub", "alice", "--roles", "manager", "--claim", "client_id=orders-web", "--claim", "jti=alice-laptop")
	kept := mint(t, dataDir, "--sub", "alice", "--roles", "manager", "--claim", "client_id=orders-web", "--claim", "jti=alice-phone")
	billing := mint(t, dataDir, "--sub", "alice", "--roles", "manager", "--claim", "client_id=billing")
	expired := mint(t, dataDir, "--sub", "alice", "--claim", "client_id=orders-web",
		"--claim", "iat="+strconv.FormatInt(time.Now().Add(-90*time.Minute).Unix(), 10),
		"--claim", "exp="+strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10))
	auth := basicAuth("orders-web", secret)

	for _, tt := range []struct {
		name, auth, contentType, body string
		wantStatus                    int
		wantError                     string
	}{
		{"invalid token", auth, formContent, "token=not-a-jwt", 200, ""},
		{"expired token", auth, formContent, "token=" + expired, 200, ""},
		{"wrong client secret", basicAuth("orders-web", "guess"), formContent, "token=" + revoked, 401, "invalid_client"},
		{"another client's token", auth, formContent, "token=" + billing, 400, "unauthorized_client"},
		{"wrong content type", auth, "application/json", `{"token":"` + revoked + `"}`, 400, "invalid_request"},
		{"missing token", auth, formContent, "token_type_hint=access_token", 400, "invalid_request"},
		{"duplicate parameters", auth, formContent, "token=" + revoked + "&token=" + kept, 400, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, seq, oauthErr := revokeAt(t, replicas[0], tt.auth, tt.contentType, tt.body)
			if status != tt.wantStatus || oauthErr != tt.wantError || seq != "" {
				t.Errorf("= %d %q (Warden-Seq %q), want %d %q and nothing published", status, oauthErr, seq, tt.wantStatus, tt.wantError)
			}
		})
	}

	status, seq, oauthErr := revokeAt(t, replicas[1], auth, formContent, url.Values{"token": {revoked}, "token_type_hint": {"access_token"}}.Encode())
	if status != 200 || seq != "1" {
		t.Fatalf("revocation = %d %q, Warden-Seq %q; want 200 and the stream's first event", status, oauthErr, seq)
	}
	n, _ := strconv.ParseUint(seq, 10, 64)
	for _, r := range replicas {
		if d := decideWithMinSeq(t, r, revoked, n); d.Allow || d.Reason != "token_revoked" || d.Refresh {
			t.Errorf("%s: the revoked token = %+v, want token_revoked without refresh", r, d)
		}
		if d := askDecision(t, r, kept, "orders:approve"); !d.Allow {
			t.Errorf("%s: alice's other token = %+v, want allowed", r, d)
		}
	}
}

const formContent = "application/x-www-form-urlencoded"

// basicAuth is HTTP Basic as RFC 6749 §2.3.1 has it for client credentials.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// revokeAt posts a revocation request to the replica at base and returns
// the status, the Warden-Seq header (the event's stream sequence, when one
// was published) and OAuth's error code, if any.
func revokeAt(t *testing.T, base, authorization, contentType, body string) (status int, seq, oauthErr string) {
	t.Helper()
	// The client's credentials replace adminDo's bearer header.
	status, raw, header := adminDo(t, "POST", base+web.RevokePath, "", contentType, body, "Authorization", authorization)
	if status != 200 {
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatalf("%d %q: not OAuth's error JSON: %v", status, raw, err)
		}
		oauthErr = e.Error
	}
	return status, header.Get("Warden-Seq"), oauthErr
}

// TestRevocationClientsFile: revocation.clients_file holds client ids and
// the SHA-256 of their secrets; a mistake stops warden serve at start,
// naming the line.
func TestRevocationClientsFile(t *testing.T) {
	a, b := sha256.Sum256([]byte("secret-a")), sha256.Sum256([]byte("secret-b"))
	hashA, hashB := "sha256:"+hex.EncodeToString(a[:]), "sha256:"+hex.EncodeToString(b[:])
	got, err := readRevocationClients(writeFile(t, "clients", "# OAuth clients\n\norders-web "+hashA+"\n  idp   sha256:"+strings.ToUpper(hex.EncodeToString(b[:]))+" revoke_any\n"))
	want := []web.RevocationClient{{ID: "orders-web", SecretSHA256: a}, {ID: "idp", SecretSHA256: b, RevokeAny: true}}
	if err != nil || !cmp.Equal(got, want) {
		t.Fatalf("= %+v, %v; want %+v", got, err, want)
	}

	for _, tt := range []struct{ name, content, want string }{
		{"upper-case prefix", "orders-web SHA256:" + hashA[7:] + "\n", "clients:1: the secret of orders-web"},
		{"plain secret", "orders-web secret-a\n", "clients:1: the secret of orders-web: want sha256:"},
		{"short digest", "orders-web sha256:abcd\n", "clients:1: the secret of orders-web"},
		{"long digest", "orders-web " + hashA + "00\n", "clients:1: the secret of orders-web"},
		{"not hex", "orders-web sha256:" + strings.Repeat("zz", 32) + "\n", "clients:1: the secret of orders-web"},
		{"no secret", "# c\norders-web\n", "clients:2: want \"client_id sha256:<hex> [revoke_any]\""},
		{"unknown option", "idp " + hashB + " admin\n", `clients:1: unknown option "admin"`},
		{"twice", "idp " + hashA + "\nidp " + hashB + "\n", "clients:2: client idp is listed twice"},
		{"not ASCII", "clíent " + hashA + "\n", "printable ASCII"},
		{"too long", strings.Repeat("c", 201) + " " + hashA + "\n", "at most 200"},
		{"empty", "# nobody yet\n", "no client; remove the setting"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readRevocationClients(writeFile(t, "clients", tt.content))
			if err == nil || !strings.Contains(err.Error(), "revocation.clients_file") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want revocation.clients_file ... %q", err, tt.want)
			}
		})
	}

	// The example of docs/revocation.md is a file Warden reads.
	doc, err := os.ReadFile("../../docs/revocation.md")
	if err != nil {
		t.Fatal(err)
	}
	_, example, _ := strings.Cut(string(doc), "## Turning it on")
	_, example, _ = strings.Cut(example, "```\n")
	example, _, _ = strings.Cut(example, "```")
	got, err = readRevocationClients(writeFile(t, "clients", example))
	if err != nil || len(got) != 2 || got[0].RevokeAny || !got[1].RevokeAny {
		t.Errorf("the example of docs/revocation.md = %+v, %v; want orders-web and idp with revoke_any", got, err)
	}

	bad := writeFile(t, "clients", "orders-web secret-a\n")
	err = run(context.Background(), []string{"warden", "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--revocation-clients-file", bad},
		env(nil), strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), bad+":1") {
		t.Errorf("warden serve with a plain secret in the file = %v, want refused naming the line", err)
	}
}
