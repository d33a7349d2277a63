package web

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wardenauthz/warden/web/decisionlog"
)

// grpcCheck serves f's Envoy service on a loopback port with opts and
// returns a client of it over the network.
func (f *fixture) grpcCheck(t *testing.T, opts Options) authv3.AuthorizationClient {
	t.Helper()
	g := grpc.NewServer()
	opts.GRPCServer = g
	f.serve(t, nil, decisionlog.Options{}, opts)
	return serveGRPC(t, g)
}

// serveGRPC serves g on a loopback port until the test ends and returns a
// client of its Envoy service over the network.
func serveGRPC(t testing.TB, g *grpc.Server) authv3.AuthorizationClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// checkRequest reads a CheckRequest fixture of testdata/envoy with token.
func checkRequest(t *testing.T, name, token string) *authv3.CheckRequest {
	t.Helper()
	b, err := os.ReadFile("../testdata/envoy/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var req authv3.CheckRequest
	if err := protojson.Unmarshal([]byte(strings.ReplaceAll(string(b), "{{TOKEN}}", token)), &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

// headerValues are a response's headers by name.
func headerValues(hs []*corev3.HeaderValueOption) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			out[h.GetHeader().GetKey()] = "appended, not set: " + h.GetHeader().GetValue()
			continue
		}
		out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return out
}

// TestEnvoyGRPCCheck sends Envoy's CheckRequests over a real gRPC
// connection: allow sets the identity headers upstream (overwriting a
// client's own), a deny is PERMISSION_DENIED with a 403, a token problem
// UNAUTHENTICATED with a 401 and its challenge, and the dynamic metadata
// names the decision.
func TestEnvoyGRPCCheck(t *testing.T) {
	f := newFixture(t)
	client := f.grpcCheck(t, Options{Proxy: ProxyOptions{RemoveAuthorization: true}})
	ctx := context.Background()
	staff := f.token(t, "bob", "staff")
	manager := f.token(t, "alice", "manager")

	t.Run("allow", func(t *testing.T) {
		resp, err := client.Check(ctx, checkRequest(t, "check-get-order.json", staff))
		if err != nil {
			t.Fatal(err)
		}
		ok := resp.GetOkResponse()
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil {
			t.Fatalf("response %v, want OK", resp)
		}
		h := headerValues(ok.GetHeaders())
		md := resp.GetDynamicMetadata().AsMap()
		if h["x-warden-subject"] != "bob" || h["x-warden-decision-id"] != md["decision_id"] || md["decision_id"] == "" {
			t.Errorf("upstream headers %v, metadata %v", h, md)
		}
		if md["reason"] != "allowed" || md["subject"] != "bob" || md["policy_revision"] != f.engine.Revision() || md["allow"] != true {
			t.Errorf("dynamic metadata %v", md)
		}
		if got := ok.GetHeadersToRemove(); len(got) != 1 || got[0] != "authorization" {
			t.Errorf("headers to remove %v, want authorization (remove_authorization)", got)
		}
	})

	tests := []struct {
		name      string
		fixture   string
		token     string
		code      codes.Code
		status    int32
		reason    string
		challenge string
	}{
		{"staff may not approve (header_map form)", "check-approve-header-map.json", staff, codes.PermissionDenied, 403, "policy_denied", ""},
		{"no token", "check-get-order.json", "", codes.Unauthenticated, 401, "token_missing", `Bearer realm="warden"`},
		{"bad token", "check-get-order.json", "x.y.z", codes.Unauthenticated, 401, "token_malformed",
			`Bearer realm="warden", error="invalid_token", error_description="token_malformed"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := checkRequest(t, tt.fixture, tt.token)
			if tt.token == "" {
				delete(req.Attributes.Request.Http.Headers, "authorization")
			}
			resp, err := client.Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if codes.Code(resp.GetStatus().GetCode()) != tt.code || denied == nil || int32(denied.GetStatus().GetCode()) != tt.status {
				t.Fatalf("response %v, want %s with HTTP %d", resp, tt.code, tt.status)
			}
			h := headerValues(denied.GetHeaders())
			var body decisionResponse
			if err := json.Unmarshal([]byte(denied.GetBody()), &body); err != nil || string(body.Reason) != tt.reason {
				t.Errorf("body %q (%v), want reason %s", denied.GetBody(), err, tt.reason)
			}
			if h["www-authenticate"] != tt.challenge || h["x-warden-reason"] != tt.reason || h["content-type"] != "application/json; charset=utf-8" {
				t.Errorf("denied headers %v", h)
			}
			if md := resp.GetDynamicMetadata().AsMap(); md["reason"] != tt.reason || md["decision_id"] != body.DecisionID {
				t.Errorf("dynamic metadata %v", md)
			}
		})
	}

	t.Run("manager approves", func(t *testing.T) {
		resp, err := client.Check(ctx, checkRequest(t, "check-approve-header-map.json", manager))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK || headerValues(resp.GetOkResponse().GetHeaders())["x-warden-subject"] != "alice" {
			t.Errorf("response %v, %v", resp, err)
		}
	})

	t.Run("ambiguous path", func(t *testing.T) {
		req := checkRequest(t, "check-get-order.json", manager)
		req.Attributes.Request.Http.Path = "/orders%2F42"
		resp, err := client.Check(ctx, req)
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || !strings.Contains(resp.GetDeniedResponse().GetBody(), "%2f") {
			t.Errorf("response %v, %v; want PERMISSION_DENIED naming %%2f", resp, err)
		}
	})

	t.Run("expired token", func(t *testing.T) {
		expired := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "bob",
			"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})
		resp, err := client.Check(ctx, checkRequest(t, "check-get-order.json", expired))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || resp.GetStatus().GetMessage() != "token_expired" {
			t.Errorf("response %v, %v", resp, err)
		}
	})
}

// TestEnvoyGRPCUntrusted: a peer outside proxy.trusted_proxies gets a gRPC
// error (Envoy then answers its status_on_error, 403), never a decision.
func TestEnvoyGRPCUntrusted(t *testing.T) {
	f := newFixture(t)
	client := f.grpcCheck(t, Options{Proxy: ProxyOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
	_, err := client.Check(context.Background(), checkRequest(t, "check-get-order.json", f.token(t, "bob", "staff")))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "trusted proxy") {
		t.Errorf("err %v, want PERMISSION_DENIED naming the trusted proxies", err)
	}
}

// TestEnvoyGRPCStaleToken: after a permission change, the subject's older
// token is UNAUTHENTICATED with a 401 whose challenge and JSON body tell the
// client to refresh it.
func TestEnvoyGRPCStaleToken(t *testing.T) {
	g := grpc.NewServer()
	f := newEventsFixtureWith(t, func(o *Options) { o.GRPCServer = g })
	client := serveGRPC(t, g)

	now := time.Now()
	old := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "bob", "roles": []string{"staff"},
		"iat": now.Add(-5 * time.Second).Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	if resp, err := client.Check(context.Background(), checkRequest(t, "check-get-order.json", old)); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("before the change: %v %v", resp, err)
	}
	status, body := f.do(t, "POST", "/v1/events?wait=2s", "application/json", `{"type":"roles_changed","subject":"bob","reason":"demoted"}`,
		"Authorization", "Bearer "+f.token(t, "root", "warden-admin"))
	if status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}
	resp, err := client.Check(context.Background(), checkRequest(t, "check-get-order.json", old))
	if err != nil {
		t.Fatal(err)
	}
	denied := resp.GetDeniedResponse()
	var d decisionResponse
	json.Unmarshal([]byte(denied.GetBody()), &d)
	challenge := headerValues(denied.GetHeaders())["www-authenticate"]
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || denied.GetStatus().GetCode() != 401 || !d.Refresh || d.Reason != "token_stale" ||
		challenge != `Bearer realm="warden", error="invalid_token", error_description="token_stale: permissions changed; refresh the token and retry"` {
		t.Errorf("old token after the change: %v; body %+v, challenge %q", resp, d, challenge)
	}
}
