package web

import (
	"bufio"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
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

// TestStrictJSONValues decodes free-form members (resource, context) as the
// policy input takes them: objects, arrays, strings, booleans and null as
// Go values, every number as its JSON text; and refuses in them what
// strictJSON refuses anywhere, each with the message a client sees.
func TestStrictJSONValues(t *testing.T) {
	var req decisionRequest
	body := `{"action":"a","resource":{"n":1e400,"m":10,"f":1.50,"s":"x\u00e9","t":true,"z":null,` +
		`"a":[1,"b",[],{}],"o":{"p":{"q":-0}}},"context":null}`
	if err := json.Unmarshal([]byte(body), &req, strictJSON); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"n": stdjson.Number("1e400"), "m": stdjson.Number("10"), "f": stdjson.Number("1.50"),
		"s": "xé", "t": true, "z": nil,
		"a": []any{stdjson.Number("1"), "b", []any{}, map[string]any{}},
		"o": map[string]any{"p": map[string]any{"q": stdjson.Number("-0")}},
	}
	if !reflect.DeepEqual(req.Resource, want) || req.Context != nil {
		t.Errorf("resource %#v, context %#v; want %#v and nil", req.Resource, req.Context, want)
	}

	for _, tc := range []struct{ body, want string }{
		{`{"resource":{"a":{"b":1,"b":2}}}`, `member "resource.a.b" appears twice`},
		{`{"resource":{"a":[{"b":1,"b":2}]}}`, `member "resource.a[0].b" appears twice`},
		{`{"resource":"order 42"}`, `field "resource" must be an object, not a string`},
		{`{"context":[1]}`, `field "context" must be an object, not an array`},
		{`{"action":{}}`, `field "action" must be a string, not an object`},
		{`{"resource":{"a":[1,2}}`, "malformed JSON"},
		{`{"resource":{"a":`, "truncated JSON"},
		{"{\"resource\":{\"a\":\"\xff\"}}", "malformed JSON"},
	} {
		var req decisionRequest
		err := json.Unmarshal([]byte(tc.body), &req, strictJSON)
		if err == nil {
			t.Errorf("%s: decoded", tc.body)
			continue
		}
		var ae *APIError
		if !errors.As((&server{}).decodeError([]byte(tc.body), err), &ae) || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("%s: %v, want a message with %q", tc.body, ae, tc.want)
		}
	}
}
