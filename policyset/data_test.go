package policyset

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPolicySetData(t *testing.T) {
	set := Set{Files: map[string][]byte{
		"authz.rego":             []byte("package warden.authz\n"),
		"data.json":              []byte(`{"warden":{"roles":{"staff":["orders:read"]}}}`),
		"limits/data.yaml":       []byte("orders: 10\n"),
		"tenants/acme/data.json": []byte(`{"plan":"gold"}`),
	}}
	for _, tt := range []struct {
		path []string
		want any
		ok   bool
	}{
		{[]string{"warden", "roles", "staff"}, []any{"orders:read"}, true},
		{[]string{"limits", "orders"}, 10, true},
		{[]string{"tenants"}, map[string]any{"acme": map[string]any{"plan": "gold"}}, true},
		{[]string{"warden", "nope"}, nil, false},
	} {
		got, ok, err := set.Data(tt.path)
		if err != nil || ok != tt.ok || !cmp.Equal(normalize(got), normalize(tt.want)) {
			t.Errorf("Data(%v) = %v, %v, %v; want %v, %v", tt.path, got, ok, err, tt.want, tt.ok)
		}
	}

	// Writing into the file that holds the path keeps the others as they are.
	files, err := set.WithData([]string{"warden", "roles", "clerk"}, []any{"orders:read"})
	if err != nil {
		t.Fatal(err)
	}
	changed := Set{Files: files}
	if got, ok, _ := changed.Data([]string{"warden", "roles"}); !ok || len(got.(map[string]any)) != 2 {
		t.Errorf("after WithData: warden.roles = %v", got)
	}
	if string(files["tenants/acme/data.json"]) != `{"plan":"gold"}` {
		t.Error("WithData rewrote an unrelated file")
	}
	// A path no file holds gets a new data.json in its directory.
	files, err = set.WithData([]string{"features", "beta"}, true)
	if err != nil || files["features/data.json"] == nil {
		t.Fatalf("new path: %v, files %v", err, files)
	}
	// A YAML file is edited as a file, not through the data API.
	if _, err := set.WithData([]string{"limits", "orders"}, 20); !errors.Is(err, ErrInvalid) {
		t.Errorf("writing into YAML: %v, want ErrInvalid", err)
	}
	if _, err := set.WithData(nil, map[string]any{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("writing the root: %v, want ErrInvalid", err)
	}
}

// normalize turns json.Number and ints into float64 so that values decoded
// from JSON and YAML compare.
func normalize(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	json.Unmarshal(raw, &out)
	return out
}
