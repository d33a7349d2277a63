package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wardenauthz/warden/web"
)

// adminClient calls a running Warden's admin API for the commands that
// change it from the command line (warden event, warden policy push).
type adminClient struct {
	base  string // e.g. http://127.0.0.1:8480
	token string
	http  *http.Client
}

// newAdminClient returns a client of the Warden at server. Its admin token
// is token, else $WARDEN_ADMIN_TOKEN, else — for a development-mode Warden —
// one minted from the development key in dataDir (never created here: a
// missing key means this is not the data directory of a development-mode
// Warden). timeout bounds each call.
func newAdminClient(server, token, dataDir string, getenv func(string) string, timeout time.Duration) (*adminClient, error) {
	if token == "" {
		token = getenv("WARDEN_ADMIN_TOKEN")
	}
	if token == "" {
		if _, err := os.Stat(filepath.Join(dataDir, devKeyFile)); err != nil {
			return nil, errors.New("no admin token: pass --token or set WARDEN_ADMIN_TOKEN")
		}
		dev, _, err := loadDevIssuer(dataDir)
		if err != nil {
			return nil, err
		}
		if token, err = dev.mint("warden-cli", []string{"warden-admin"}, 5*time.Minute, nil, time.Now()); err != nil {
			return nil, err
		}
	}
	return &adminClient{base: strings.TrimSuffix(server, "/"), token: token, http: &http.Client{Timeout: timeout}}, nil
}

// call sends one request, with body encoded as JSON unless nil, and
// decodes the JSON answer into out. An error answer becomes an error that
// says the code and message, and lists a refused policy set's problems.
func (a *adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	url := a.base + path
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("is Warden running at %s? %w", a.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e web.ErrorBody
		if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
			return fmt.Errorf("%s %s: %s", method, url, resp.Status)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s", e.Error.Code, e.Error.Message)
		for _, p := range e.Error.Problems {
			fmt.Fprintf(&b, "\n  %s:%d:%d: %s", p.File, p.Row, p.Col, p.Message)
		}
		return errors.New(b.String())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s answered %s, not the JSON expected: %w", method, url, resp.Status, err)
	}
	return nil
}
