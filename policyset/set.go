package policyset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"testing/fstest"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wardenauthz/warden/decision"
)

// ErrInvalid is wrapped by the errors for a policy set that cannot be
// stored (bad file names, too many files, too large) and for a stored value
// that is not a policy set. The wrapping error says what is wrong.
var ErrInvalid = errors.New("invalid policy set")

const (
	// DefaultMaxFiles is the default limit on files in one set.
	DefaultMaxFiles = 1000
	// maxPolicyPathBytes bounds one file name.
	maxPolicyPathBytes = 512
	// maxAuthorBytes and maxMessageBytes bound the free-text fields.
	maxAuthorBytes  = 256
	maxMessageBytes = 4096
)

// Set is one version of the policy files: Rego modules (with their
// _test.rego tests) and data documents, by slash-separated path relative to
// the root of the set, as they would lie in policies.dir.
//
// The store only stores, versions and distributes sets; it never compiles
// them. Whoever puts or activates a set (cmd, web) checks it with the
// decision package first.
type Set struct {
	// Files maps each path ("authz.rego", "roles/data.json") to its bytes.
	// Files must not be modified after the set was handed to or returned by
	// a Store: FS and Revision are views of the same bytes.
	Files map[string][]byte
	// Revision is the content hash of Files (see decision.Revision). The store
	// computes it; a value set by the caller is ignored.
	Revision string
	// Author and Message say who stored the set and why, like a commit.
	Author, Message string
	// At is when the set was stored; the store sets it (UTC).
	At time.Time
	// KVRevision is the key-value revision (the bucket stream's sequence)
	// the set was stored at; it grows with every put. Pass it to Put to
	// replace exactly this set. Zero for a set not read from the store.
	KVRevision uint64
}

// FS is a read-only view of the files, laid out as in a directory, for the
// decision engine (decision.NewEngine, Engine.Reload).
func (s Set) FS() fs.FS {
	m := make(fstest.MapFS, len(s.Files))
	for name, data := range s.Files {
		m[name] = &fstest.MapFile{Data: data, Mode: 0o444, ModTime: s.At}
	}
	return readOnlyFS{m}
}

// readOnlyFS hides the map behind fs.FS so that a caller cannot add files
// through a type assertion. fs.ReadFile, fs.WalkDir and fs.Glob still work:
// MapFS's Open serves them.
type readOnlyFS struct{ m fstest.MapFS }

func (r readOnlyFS) Open(name string) (fs.File, error) { return r.m.Open(name) }

// FromFS reads every policy file (.rego, .json, .yaml, .yml) under
// root in fsys into a set, skipping other files and hidden files and
// directories (names starting with "."), as the decision engine does when it
// loads a directory; it is how a replica seeds the bucket from policies.dir
// or the shipped policies. The result is validated as Put validates, with
// DefaultMaxFiles and without the size limit (Put checks that).
func FromFS(fsys fs.FS, root string) (Set, error) {
	files := map[string][]byte{}
	err := decision.WalkPolicyFiles(fsys, root, func(name string) error {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		rel := name
		if root != "." {
			rel = strings.TrimPrefix(name, root+"/")
		}
		files[rel] = data
		return nil
	})
	if err != nil {
		return Set{}, fmt.Errorf("policyset: read policy files: %w", err)
	}
	set := Set{Files: files, Revision: decision.Revision(files)}
	if err := validateSet(set, DefaultMaxFiles); err != nil {
		return Set{}, err
	}
	return set, nil
}

// validateSet checks what a set must be to be stored and to load the
// same everywhere. Errors wrap ErrInvalid and name the file.
func validateSet(s Set, maxFiles int) error {
	if len(s.Files) == 0 {
		return fmt.Errorf("%w: no files", ErrInvalid)
	}
	if len(s.Files) > maxFiles {
		return fmt.Errorf("%w: %d files, over the limit of %d", ErrInvalid, len(s.Files), maxFiles)
	}
	names := slices.Sorted(maps.Keys(s.Files))
	rego := false
	for i, name := range names {
		if err := validatePath(name); err != nil {
			return fmt.Errorf("%w: file %q: %v", ErrInvalid, name, err)
		}
		// A file and a directory of the same name cannot both exist in a
		// directory; sorted, a file "a.rego" comes right before the files
		// under "a.rego/" (nothing sorts between "a.rego" and "a.rego/"
		// except names starting with "a.rego" and a byte below '/').
		for _, next := range names[i+1:] {
			if !strings.HasPrefix(next, name) {
				break
			}
			if strings.HasPrefix(next, name+"/") {
				return fmt.Errorf("%w: %q is both a file and a directory (%q)", ErrInvalid, name, next)
			}
		}
		if !utf8.Valid(s.Files[name]) {
			return fmt.Errorf("%w: file %q is not valid UTF-8 text", ErrInvalid, name)
		}
		rego = rego || decision.KindOf(name) != decision.KindData
	}
	if !rego {
		return fmt.Errorf("%w: no Rego module (*.rego)", ErrInvalid)
	}
	if err := validateText("author", s.Author, maxAuthorBytes); err != nil {
		return err
	}
	return validateText("message", s.Message, maxMessageBytes)
}

// validatePath accepts the relative, clean, slash-separated paths of
// visible policy files: what the decision engine would load from a directory,
// under the same name, on any operating system.
func validatePath(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > maxPolicyPathBytes:
		return fmt.Errorf("name longer than %d bytes", maxPolicyPathBytes)
	case !utf8.ValidString(name):
		return errors.New("name is not valid UTF-8")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute path; want a path relative to the set's root")
	case strings.ContainsRune(name, '\\'):
		return errors.New(`backslash in name; separate directories with "/"`)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("control character in name")
	case path.Clean(name) != name || !fs.ValidPath(name):
		return errors.New(`not a clean relative path (no "..", ".", "//" or trailing "/")`)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(seg, ".") {
			// The engine skips hidden files and directories when it loads
			// a directory; storing one would make the revisions differ.
			return errors.New(`hidden file or directory (a name starting with ".")`)
		}
	}
	if decision.KindOf(name) == "" {
		return fmt.Errorf("extension %q; want one of %s", path.Ext(name), fileSuffixes())
	}
	return nil
}

// fileSuffixes lists what a policy file's name may end in.
func fileSuffixes() string {
	var b strings.Builder
	for i, k := range decision.FileKinds {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k.Suffix)
	}
	return b.String()
}

func validateText(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, field, limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	return nil
}

// setVersion is the "v" of the stored JSON.
const setVersion = 1

// wireSet is a set as stored in the bucket, one JSON value:
//
//	{"v":1,"files":{"authz.rego":"package ...",...},"revision":"a1b2c3d4e5f6",
//	 "author":"alice@example.com","message":"allow staff to read","at":"2026-11-23T10:00:00Z"}
//
// Files are JSON strings, not base64, so that `nats kv get` shows readable
// policies; that is why file contents must be UTF-8.
type wireSet struct {
	V        int               `json:"v"`
	Files    map[string]string `json:"files"`
	Revision string            `json:"revision"`
	Author   string            `json:"author,omitempty"`
	Message  string            `json:"message,omitempty"`
	At       time.Time         `json:"at"`
}

// encodeSet validates s and returns its stored form and s as stored:
// Revision recomputed, At in UTC (now when zero).
func encodeSet(s Set, maxFiles int) ([]byte, Set, error) {
	if err := validateSet(s, maxFiles); err != nil {
		return nil, Set{}, err
	}
	s.Revision = decision.Revision(s.Files)
	if s.At.IsZero() {
		s.At = time.Now()
	}
	s.At = s.At.UTC()
	w := wireSet{
		V: setVersion, Files: make(map[string]string, len(s.Files)),
		Revision: s.Revision, Author: s.Author, Message: s.Message, At: s.At,
	}
	for name, data := range s.Files {
		w.Files[name] = string(data)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<" and "&" in Rego readable
	if err := enc.Encode(w); err != nil {
		return nil, Set{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), s, nil
}

// decodeSet reads a stored value strictly: one JSON object of version
// 1 with no unknown fields, valid files, and a revision that matches them (a
// value edited by hand and not re-hashed is refused rather than activated
// under a revision that does not describe it).
func decodeSet(data []byte, maxFiles int) (Set, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wireSet
	if err := dec.Decode(&w); err != nil {
		return Set{}, fmt.Errorf("%w: not a policy set document: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Set{}, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	if w.V != setVersion {
		return Set{}, fmt.Errorf("%w: version %d; this Warden reads version %d", ErrInvalid, w.V, setVersion)
	}
	if w.At.IsZero() {
		return Set{}, fmt.Errorf("%w: no \"at\"", ErrInvalid)
	}
	s := Set{
		Files:    make(map[string][]byte, len(w.Files)),
		Revision: w.Revision, Author: w.Author, Message: w.Message, At: w.At,
	}
	for name, text := range w.Files {
		s.Files[name] = []byte(text)
	}
	if err := validateSet(s, maxFiles); err != nil {
		return Set{}, err
	}
	if got := decision.Revision(s.Files); got != w.Revision {
		return Set{}, fmt.Errorf("%w: stored revision %q does not match its files (%s)", ErrInvalid, w.Revision, got)
	}
	return s, nil
}
