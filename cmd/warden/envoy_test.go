package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

var grpcAddrLine = regexp.MustCompile(`msg="envoy ext_authz gRPC service listening" addr=(\S+)`)

// TestEnvoyGRPCService: with proxy.grpc_listen, warden serve answers
// Envoy's Authorization/Check on that address, over the network: a manager
// may approve, staff may not.
func TestEnvoyGRPCService(t *testing.T) {
	dataDir := t.TempDir()
	base, stderr, _ := startWarden(t, dataDir, "--proxy-grpc-listen", "127.0.0.1:0")
	waitReady(t, base)
	m := grpcAddrLine.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no gRPC address in the log:\n%s", stderr)
	}
	conn, err := grpc.NewClient(m[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	fixture, err := os.ReadFile("../../testdata/envoy/check-approve-header-map.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		roles string
		want  codes.Code
	}{{"manager", codes.OK}, {"staff", codes.PermissionDenied}} {
		token := mint(t, dataDir, "--sub", "alice", "--roles", tt.roles)
		var req authv3.CheckRequest
		if err := protojson.Unmarshal([]byte(strings.ReplaceAll(string(fixture), "{{TOKEN}}", token)), &req); err != nil {
			t.Fatal(err)
		}
		resp, err := client.Check(context.Background(), &req)
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != tt.want {
			t.Errorf("%s approves: %v %v, want %s", tt.roles, resp, err, tt.want)
		}
	}
}
