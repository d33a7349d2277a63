// Command mix is the load generator of issue 14's realistic mix: real
// traffic reuses users' tokens for minutes, but resources, owners and
// actions vary, so a decision cache rarely hits. It has three commands,
// which testdata/load/mix.sh runs in turn:
//
//	mix issuer -dir D -listen ADDR   mint the users' RS256 tokens into D/tokens.json,
//	                                 write D/jwks.json, and serve the JWKS over HTTP
//	mix check -dir D -warden URL -opa URL -n 2000
//	                                 ask Warden and OPA the same requests of a sample and
//	                                 fail unless both give the same decision and reasons
//	mix load -dir D -url URL -shape warden|opa -c 16 -d 10s [-rate N] [-repeat]
//	                                 send the mix (or one request repeated) and report
//	                                 decisions/s and latency percentiles
//
// The mix: 1,000 users in four role profiles (manager, staff,
// staff+auditor, none); each request a random user, orders:read two times
// in three else orders:approve, a random order id out of a million, owned
// by the user one time in four and by another user otherwise. The requests
// are drawn once from -seed, so every server gets the same sequence.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	issuer   = "https://idp.mix.test/"
	audience = "orders-api"
	kid      = "mix-1"
)

// profiles are the four role profiles, assigned round robin; nil has no
// roles claim at all.
var profiles = [][]string{{"manager"}, {"staff"}, {"staff", "auditor"}, nil}

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: mix issuer|check|load [flags]")
	}
	var err error
	switch os.Args[1] {
	case "issuer":
		err = runIssuer(os.Args[2:])
	case "check":
		err = runCheck(os.Args[2:])
	case "load":
		err = runLoad(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal("mix: ", err)
	}
}

// user is one user of the mix with its token, minted once.
type user struct {
	Sub   string `json:"sub"`
	Token string `json:"token"`
}

// runIssuer plays the identity provider: it mints the users' tokens,
// writes them and the JWKS to dir, and serves the JWKS until killed.
func runIssuer(args []string) error {
	fs := flag.NewFlagSet("issuer", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for tokens.json and jwks.json")
	listen := fs.String("listen", "127.0.0.1:18470", "where to serve the JWKS (/jwks.json)")
	users := fs.Int("users", 1000, "users to mint tokens for")
	fs.Parse(args)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	now := time.Now()
	all := make([]user, *users)
	for i := range all {
		sub := fmt.Sprintf("user-%04d", i)
		c := jwt.MapClaims{"iss": issuer, "aud": audience, "sub": sub, "iat": now.Unix(), "exp": now.Add(55 * time.Minute).Unix()}
		if p := profiles[i%len(profiles)]; p != nil {
			c["roles"] = p
		}
		t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		t.Header["kid"] = kid
		if all[i].Token, err = t.SignedString(key); err != nil {
			return err
		}
		all[i].Sub = sub
	}
	jwks, err := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(*dir, "tokens.json"), all); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "jwks.json"), jwks, 0o644); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Printf("mix issuer: %d tokens in %s, JWKS at http://%s/jwks.json", *users, *dir, ln.Addr())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// request is one drawn request of the mix.
type request struct {
	User   int
	Action string
	ID     int
	Owner  int
}

// draw draws n requests of the mix from seed.
func draw(seed uint64, users, n int) []request {
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]request, n)
	for i := range out {
		r := request{User: rng.IntN(users), Action: "orders:read", ID: rng.IntN(1_000_000)}
		if rng.IntN(3) == 2 {
			r.Action = "orders:approve"
		}
		if rng.IntN(4) == 0 {
			r.Owner = r.User
		} else {
			r.Owner = rng.IntN(users - 1)
			if r.Owner >= r.User { // anyone but the user
				r.Owner++
			}
		}
		out[i] = r
	}
	return out
}

// body is r as the server of shape reads it: Warden's /v1/decision (also
// the bare handler's) or OPA's {"input": …}.
func body(r request, users []user, shape string) []byte {
	check := fmt.Sprintf(`{"token":%q,"action":%q,"resource":{"type":"order","id":"%d","owner":%q}}`,
		users[r.User].Token, r.Action, r.ID, users[r.Owner].Sub)
	if shape == "opa" {
		return []byte(`{"input":` + check + `}`)
	}
	return []byte(check)
}

func loadUsers(dir string) ([]user, error) {
	b, err := os.ReadFile(filepath.Join(dir, "tokens.json"))
	if err != nil {
		return nil, err
	}
	var users []user
	return users, json.Unmarshal(b, &users)
}

// verdict is a server's decision in a comparable form.
type verdict struct {
	Allow   bool
	Reasons []string
}

// ask sends one request and reads the verdict: Warden answers {"allow",
// "reasons", …}; OPA {"result": {"allow", "reasons"}}.
func ask(client *http.Client, url string, b []byte, shape string) (verdict, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return verdict{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return verdict{}, fmt.Errorf("%s: %d %s", url, resp.StatusCode, raw)
	}
	var v verdict
	if shape == "opa" {
		var out struct{ Result *verdict }
		if err := json.Unmarshal(raw, &out); err != nil || out.Result == nil {
			return v, fmt.Errorf("%s: no result in %s", url, raw)
		}
		v = *out.Result
	} else if err := json.Unmarshal(raw, &v); err != nil {
		return v, err
	}
	sort.Strings(v.Reasons)
	return v, nil
}

// runCheck asks both servers every request of a sample and fails on the
// first disagreement: timing two servers that decide differently would
// compare nothing.
func runCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	dir := fs.String("dir", "", "the issuer's directory")
	warden := fs.String("warden", "", "Warden's /v1/decision URL")
	opa := fs.String("opa", "", "OPA's decision document URL")
	n := fs.Int("n", 2000, "requests of the sample")
	seed := fs.Uint64("seed", 14, "seed of the draw")
	fs.Parse(args)
	users, err := loadUsers(*dir)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	allowed := 0
	for i, r := range draw(*seed, len(users), *n) {
		w, err := ask(client, *warden, body(r, users, "warden"), "warden")
		if err != nil {
			return err
		}
		o, err := ask(client, *opa, body(r, users, "opa"), "opa")
		if err != nil {
			return err
		}
		if w.Allow != o.Allow || !slices.Equal(w.Reasons, o.Reasons) {
			return fmt.Errorf("request %d %+v: Warden %+v, OPA %+v", i, r, w, o)
		}
		if w.Allow {
			allowed++
		}
	}
	fmt.Printf("agreement: Warden and OPA gave the same decision and reasons for all %d requests (%d allowed)\n", *n, allowed)
	return nil
}

// conn is one keep-alive HTTP/1.1 connection that writes prepared requests
// and reads their answers: much less work for the generator's core than
// net/http's client, so that the server, not the generator, is measured.
type conn struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

func dial(u *neturl.URL) (*conn, error) {
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReader(c)}, nil
}

func (c *conn) close() {
	if c != nil {
		c.c.Close()
	}
}

// post sends body as a JSON POST to u and reads the whole answer.
func (c *conn) post(u *neturl.URL, body []byte) (int, error) {
	c.buf = fmt.Appendf(c.buf[:0], "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, len(body))
	c.buf = append(c.buf, body...)
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write(c.buf); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// runLoad sends the mix with c connections for d and prints one line:
// decisions/s, latency p50/p99/p99.9, the share over 1 ms, and the answers
// that were not 200. With -rate it is open loop: request k is due at
// start + k/rate whatever the answers' latency. A request whose connection
// was still busy when it fell due counts from when it was due, so the
// percentiles are not flattered by a client that waits (coordinated
// omission, as wrk2 measures); one sent on time counts from when it was
// sent, because Go's timers wake up to a millisecond late (the runtime
// polls the network with a millisecond timeout) and that lateness is the
// generator's, not the server's.
func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	dir := fs.String("dir", "", "the issuer's directory")
	url := fs.String("url", "", "the decision URL")
	shape := fs.String("shape", "warden", "request shape: warden (also the bare handler) or opa")
	conns := fs.Int("c", 16, "connections")
	dur := fs.Duration("d", 10*time.Second, "duration")
	rate := fs.Int("rate", 0, "requests a second, open loop (0: each connection sends as fast as answered)")
	repeat := fs.Bool("repeat", false, "one request (a manager approving) repeated instead of the mix")
	seed := fs.Uint64("seed", 14, "seed of the draw")
	n := fs.Int("n", 50000, "requests drawn, cycled")
	label := fs.String("label", "", "name of the line")
	fs.Parse(args)
	users, err := loadUsers(*dir)
	if err != nil {
		return err
	}
	reqs := draw(*seed, len(users), *n)
	if *repeat {
		reqs = []request{{User: 0, Action: "orders:approve", ID: 42, Owner: 1}} // user-0000 is a manager
	}
	bodies := make([][]byte, len(reqs))
	for i, r := range reqs {
		bodies[i] = body(r, users, *shape)
	}
	target, err := neturl.Parse(*url)
	if err != nil {
		return err
	}

	var next, bad atomic.Int64
	lat := make([][]time.Duration, *conns)
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *conns {
		wg.Go(func() {
			var c *conn
			defer func() { c.close() }()
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				b := bodies[int(k)%len(bodies)]
				t0 := time.Now()
				if *rate > 0 {
					due := start.Add(time.Duration(k) * time.Second / time.Duration(*rate))
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							return
						}
						t0 = time.Now()
					} else {
						t0 = due
					}
				}
				if c == nil {
					if c, err = dial(target); err != nil {
						bad.Add(1)
						continue
					}
				}
				status, err := c.post(target, b)
				if err != nil {
					c.close()
					c = nil
					if ctx.Err() == nil {
						bad.Add(1)
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				if status != 200 {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return errors.New("no answers")
	}
	pct := func(p float64) float64 { return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) }
	over := len(all) - sort.Search(len(all), func(i int) bool { return all[i] > time.Millisecond })
	fmt.Printf("%-28s %8.0f/s  p50 %6.0f µs  p99 %6.0f µs  p99.9 %6.0f µs  over 1 ms %5.2f%%  not 200: %d\n", *label,
		float64(len(all))/elapsed.Seconds(), pct(0.50), pct(0.99), pct(0.999), 100*float64(over)/float64(len(all)), bad.Load())
	return nil
}
