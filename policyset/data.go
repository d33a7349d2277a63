package policyset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/wardenauthz/warden/decision"
	"gopkg.in/yaml.v3"
)

// Data documents live in the set's JSON and YAML files, placed under data by
// their directory as in OPA bundles: warden/roles/data.json holds
// data.warden.roles, a data.json at the root holds data itself. These
// functions read and write the set's base documents by path, for the admin
// API's /v1/data.

// Data returns the base document at path (data.a.b for ["a","b"]) merged
// from every data file of the set, and whether it exists.
func (s Set) Data(dataPath []string) (any, bool, error) {
	root := map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(s.Files)) {
		if decision.KindOf(name) != decision.KindData {
			continue
		}
		v, err := decodeData(name, s.Files[name])
		if err != nil {
			return nil, false, err
		}
		if err := mergeAt(root, dataDir(name), v); err != nil {
			return nil, false, fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
		}
	}
	var cur any = root
	for _, key := range dataPath {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		if cur, ok = obj[key]; !ok {
			return nil, false, nil
		}
	}
	return cur, true, nil
}

// WithData returns the set's files with the base document at path replaced
// by value. The value is written into the JSON data file that already holds
// that path (the deepest one), keeping every other file as it is; when no
// file holds it, into a new data.json in the path's directory. A path held by
// a YAML file is refused: edit that file itself.
func (s Set) WithData(dataPath []string, value any) (map[string][]byte, error) {
	if len(dataPath) == 0 {
		return nil, fmt.Errorf("%w: the data root is not one document; write under a path such as warden/roles", ErrInvalid)
	}
	files := maps.Clone(s.Files)
	owner, rest := "", []string(nil)
	for _, name := range slices.Sorted(maps.Keys(s.Files)) {
		dir := dataDir(name)
		if decision.KindOf(name) != decision.KindData || len(dir) > len(dataPath) || !slices.Equal(dir, dataPath[:len(dir)]) {
			continue
		}
		v, err := decodeData(name, s.Files[name])
		if err != nil {
			return nil, err
		}
		remaining := dataPath[len(dir):]
		if obj, ok := v.(map[string]any); ok && (len(remaining) == 0 || obj[remaining[0]] != nil) {
			if owner == "" || len(dir) >= len(dataDir(owner)) {
				owner, rest = name, remaining
			}
		}
	}
	if owner == "" {
		// No file holds the path: a new file in its directory, holding the
		// value under its last key.
		owner = path.Join(path.Join(dataPath[:len(dataPath)-1]...), "data.json")
		rest = dataPath[len(dataPath)-1:]
		if _, exists := files[owner]; exists {
			return nil, fmt.Errorf("%w: %s exists but does not hold %s", ErrInvalid, owner, strings.Join(dataPath, "/"))
		}
		files[owner] = []byte("{}")
	}
	if !strings.HasSuffix(owner, ".json") {
		return nil, fmt.Errorf("%w: data at %s is in %s; edit that file itself", ErrInvalid, strings.Join(dataPath, "/"), owner)
	}
	doc, err := decodeData(owner, files[owner])
	if err != nil {
		return nil, err
	}
	if len(rest) == 0 {
		if _, ok := value.(map[string]any); !ok {
			return nil, fmt.Errorf("%w: %s holds an object; the value for its whole path must be an object", ErrInvalid, owner)
		}
		doc = value
	} else {
		obj := doc.(map[string]any)
		for _, key := range rest[:len(rest)-1] {
			next, ok := obj[key].(map[string]any)
			if !ok {
				next = map[string]any{}
				obj[key] = next
			}
			obj = next
		}
		obj[rest[len(rest)-1]] = value
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	files[owner] = buf.Bytes()
	return files, nil
}

// dataDir is where a data file's content sits under data.
func dataDir(name string) []string {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	return strings.Split(dir, "/")
}

func decodeData(name string, content []byte) (any, error) {
	var v any
	if strings.HasSuffix(name, ".json") {
		dec := json.NewDecoder(bytes.NewReader(content))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
		}
		return v, nil
	}
	if err := yaml.Unmarshal(content, &v); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	return v, nil
}

// mergeAt merges v into root at dir, objects key by key; anything else
// meeting an existing value is a conflict, as OPA's loader says.
func mergeAt(root map[string]any, dir []string, v any) error {
	obj := root
	for _, key := range dir {
		next, ok := obj[key].(map[string]any)
		if !ok {
			if _, exists := obj[key]; exists {
				return fmt.Errorf("data at %s is not an object", key)
			}
			next = map[string]any{}
			obj[key] = next
		}
		obj = next
	}
	src, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("a data file must hold an object")
	}
	return mergeObjects(obj, src)
}

func mergeObjects(dst, src map[string]any) error {
	for k, sv := range src {
		dv, exists := dst[k]
		if !exists {
			dst[k] = sv
			continue
		}
		dm, ok1 := dv.(map[string]any)
		sm, ok2 := sv.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("two files set data at %q", k)
		}
		if err := mergeObjects(dm, sm); err != nil {
			return err
		}
	}
	return nil
}
