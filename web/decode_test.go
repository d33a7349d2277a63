package web

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestStrictJSON sends the bodies a parser differential is made of: a name
// in another case, a name twice (the last one used to win), at the top and
// nested, and invalid UTF-8. Each is a 400 that names the member; none is
// decided.
func TestStrictJSON(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.token(t, "alice", "manager"), f.token(t, "bob", "staff")
	tests := []struct {
		name, path, body, want string
	}{
		{"token in another case", "/v1/decision", `{"token":"` + bob + `","Token":"` + alice + `","action":"orders:approve"}`, `unknown field "Token"`},
		{"action in another case", "/v1/decision", `{"ACTION":"orders:approve"}`, `unknown field "ACTION"`},
		{"token twice", "/v1/decision", `{"token":"` + bob + `","token":"` + alice + `","action":"orders:approve"}`, `"token" appears twice`},
		{"action twice", "/v1/decision", `{"action":"orders:read","action":"orders:approve"}`, `"action" appears twice`},
		{"owner twice in the resource", "/v1/decision", `{"action":"orders:read","resource":{"owner":"bob","owner":"alice"}}`, `"resource.owner" appears twice`},
		{"a check's action twice", "/v1/decisions", `{"checks":[{"action":"a"},{"action":"a","action":"b"}]}`, `"checks[1].action" appears twice`},
		{"invalid UTF-8", "/v1/decision", "{\"action\":\"orders:read\",\"context\":{\"x\":\"\xff\"}}", "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := f.do(t, "POST", tt.path, "application/json", tt.body)
			e, _ := got["error"].(map[string]any)
			if msg, _ := e["message"].(string); status != 400 || e["code"] != "invalid_request" || !strings.Contains(msg, tt.want) {
				t.Errorf("= %d %v, want 400 invalid_request mentioning %q", status, got, tt.want)
			}
		})
	}
	// Numbers keep their JSON text on the way to Rego.
	status, got := f.do(t, "POST", "/v1/decision", "application/json",
		`{"token":"`+bob+`","action":"orders:read","resource":{"owner":"bob","n":1e400,"m":10}}`)
	if status != 200 || got["allow"] != true {
		t.Errorf("a valid body = %d %v", status, got)
	}
}

// TestBodyTooLargeWithExpectContinue sends what curl sends for a large
// body: the headers with Expect: 100-continue, then waits. Warden answers
// 413 at once, without asking for the body; it used to send 100 Continue,
// read 4 KiB and reset the connection.
func TestBodyTooLargeWithExpectContinue(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.handler)
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST /v1/decision HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		srv.Listener.Addr(), 3<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %s, want 413 before the body is sent", resp.Status)
	}
}
