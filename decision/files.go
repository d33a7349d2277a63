package decision

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The kinds of file a policy set is made of (FileKind.Kind).
const (
	KindModule = "module" // a Rego module
	KindTest   = "test"   // a Rego module of tests (*_test.rego)
	KindData   = "data"   // a data document, placed under data by its directory
)

// FileKind says what a file whose name ends in Suffix is in a policy set.
type FileKind struct {
	Suffix string `json:"suffix"`
	Kind   string `json:"kind"`
}

// FileKinds are the files a policy set is made of, the first matching suffix
// deciding: Rego modules, their tests, and the data files OPA's loader reads
// (as `opa run` and `opa test` do). Anything else in a policy directory is
// ignored, and a stored set may hold nothing else. The admin UI receives this
// table from GET /v1/policies rather than keeping a copy.
var FileKinds = []FileKind{
	{"_test.rego", KindTest},
	{".rego", KindModule},
	{".json", KindData},
	{".yaml", KindData},
	{".yml", KindData},
}

// KindOf returns the kind of the file name, or "" when it is no policy file.
func KindOf(name string) string {
	for _, k := range FileKinds {
		if strings.HasSuffix(name, k.Suffix) {
			return k.Kind
		}
	}
	return ""
}

// Revision is the content hash of a set of files, the one name a policy set
// has in decisions, the policy store, heartbeats and the admin API:
//
//	names := the paths, sorted bytewise
//	h := SHA-256 of, for each name in order:
//	     decimal(len(name)) ":" name decimal(len(data)) ":" data
//	revision := the first 12 lowercase hex digits of h (48 bits)
//
// For example {"a.rego": "package a\n"} hashes "6:a.rego10:package a\n".
// The length prefixes keep ("ab", "c") apart from ("a", "bc").
func Revision(files map[string][]byte) string {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		io.WriteString(h, strconv.Itoa(len(name))+":"+name+strconv.Itoa(len(data))+":")
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// WalkPolicyFiles calls fn with the name of every policy file under root in
// fsys, in lexical order, leaving out what the engine's loader leaves out:
// hidden files and directories (names starting with ".": .git, an editor's
// swap files) and files of no policy kind.
func WalkPolicyFiles(fsys fs.FS, root string, fn func(name string) error) error {
	return fs.WalkDir(fsys, root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || KindOf(name) == "" {
			return nil
		}
		return fn(name)
	})
}

// skipFile is the loader filter: it keeps hidden files and directories (an
// editor's swap files, .git) and non-policy files out of the set, so they
// neither break loading nor change the revision.
func skipFile(_ string, info fs.FileInfo, depth int) bool {
	if depth == 0 {
		return false // the root itself, named "." or after the directory
	}
	if strings.HasPrefix(info.Name(), ".") {
		return true
	}
	return !info.IsDir() && KindOf(info.Name()) == ""
}

// entrypointPattern is a package path: identifiers separated by "/".
var entrypointPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$`)

// CheckEntrypoint reports whether s can be policies.entrypoint: a package
// path such as "warden/authz" (leading and trailing slashes are ignored).
func CheckEntrypoint(s string) error {
	_, err := parseEntrypoint(s)
	return err
}

// parseEntrypoint turns a package path such as "warden/authz" into the ref
// data.warden.authz.
func parseEntrypoint(s string) (ast.Ref, error) {
	s = strings.Trim(s, "/")
	if s == "" {
		return nil, errors.New("entrypoint is empty; want a package path like warden/authz")
	}
	if !entrypointPattern.MatchString(s) {
		return nil, fmt.Errorf("entrypoint %q is not a package path like warden/authz", s)
	}
	ref := ast.Ref{ast.DefaultRootDocument}
	for seg := range strings.SplitSeq(s, "/") {
		ref = append(ref, ast.StringTerm(seg))
	}
	return ref, nil
}
