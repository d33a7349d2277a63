// Command proxy loads one Warden with the same question asked three ways —
// the decision API, forward auth (as nginx, Traefik or Caddy ask) and
// Envoy's gRPC ext_authz service — one after the other in one run, with
// the same number of concurrent callers, and prints each one's rate and
// latency and the proxies' overhead over the decision API. Every answer
// is checked: anything but an allow is counted, so a fast error is never
// mistaken for speed. testdata/load/proxy.sh runs it against a Warden
// pinned to one core.
//
//	go run ./testdata/load/proxy -http http://127.0.0.1:18480 -grpc 127.0.0.1:19191 -token "$TOKEN"
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

func main() {
	base := flag.String("http", "http://127.0.0.1:18480", "Warden's HTTP base URL")
	grpcAddr := flag.String("grpc", "127.0.0.1:19191", "Warden's proxy.grpc_listen")
	token := flag.String("token", os.Getenv("TOKEN"), "a token allowed to approve order 42")
	conc := flag.Int("c", 16, "concurrent callers")
	dur := flag.Duration("d", 10*time.Second, "duration of each phase")
	grpcConns := flag.Int("grpc-conns", 1, "gRPC connections the callers share")
	frameFile := flag.String("grpc-frame", "", "write the CheckRequest as one gRPC message (length-prefixed) to this file and exit, for h2load -d")
	only := flag.String("phases", "decision,forward,grpc", "phases to run, in this order: decision, forward, grpc")
	flag.Parse()
	if *token == "" {
		fmt.Fprintln(os.Stderr, "proxy: -token (or TOKEN) is required")
		os.Exit(2)
	}

	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	// Envoy opens a connection to the service per worker thread; one
	// connection measured best here (-grpc-conns 4 was slower).
	var envoys []authv3.AuthorizationClient
	for range *grpcConns {
		conn, err := grpc.NewClient(*grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		envoys = append(envoys, authv3.NewAuthorizationClient(conn))
	}
	var next atomic.Uint64
	body := `{"token":"` + *token + `","action":"orders:approve","resource":{"type":"order","id":"42"}}`
	check := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/orders/42/approve", Host: "api.example.com",
			Headers: map[string]string{"authorization": "Bearer " + *token, ":path": "/orders/42/approve", "user-agent": "loadgen"},
		},
	}}}

	phases := []struct {
		key, name string
		ask       func(context.Context) bool
	}{
		{"decision", "decision API", func(context.Context) bool {
			resp, err := client.Post(*base+"/v1/decision", "application/json", strings.NewReader(body))
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == 200 && strings.Contains(string(b), `"allow":true`)
		}},
		{"forward", "forward auth", func(context.Context) bool {
			req, _ := http.NewRequest("GET", *base+"/v1/forward-auth", nil)
			req.Header.Set("X-Forwarded-Method", "POST")
			req.Header.Set("X-Forwarded-Uri", "/orders/42/approve")
			req.Header.Set("X-Forwarded-Host", "api.example.com")
			req.Header.Set("Authorization", "Bearer "+*token)
			resp, err := client.Do(req)
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == 200
		}},
		{"grpc", "envoy gRPC", func(ctx context.Context) bool {
			resp, err := envoys[next.Add(1)%uint64(len(envoys))].Check(ctx, check)
			return err == nil && codes.Code(resp.GetStatus().GetCode()) == codes.OK
		}},
	}
	if *frameFile != "" {
		b, err := proto.Marshal(check)
		if err == nil {
			frame := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(b)))
			err = os.WriteFile(*frameFile, append(frame, b...), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var baseline float64
	for _, p := range phases {
		if !slices.Contains(strings.Split(*only, ","), p.key) {
			continue
		}
		rate, p50, p99, bad := run(p.ask, *conc, *dur)
		over := ""
		if baseline == 0 {
			baseline = rate
		} else {
			over = fmt.Sprintf(", %+.1f%% time per decision vs the decision API", (baseline/rate-1)*100)
		}
		fmt.Printf("%-13s %8.0f/s  p50 %5d µs  p99 %6d µs  not allowed: %d%s\n", p.name, rate, p50.Microseconds(), p99.Microseconds(), bad, over)
	}
}

// run asks with conc callers for d and returns the rate of answers, the
// latency quantiles and how many answers were not allows.
func run(ask func(context.Context) bool, conc int, d time.Duration) (rate float64, p50, p99 time.Duration, bad int) {
	ctx := context.Background()
	// Warm up connections and caches.
	for range conc {
		ask(ctx)
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			misses := 0
			for time.Now().Before(deadline) {
				t := time.Now()
				if !ask(ctx) {
					misses++
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			bad += misses
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return float64(len(lat)) / elapsed.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100], bad
}
