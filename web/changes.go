package web

import (
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policyset"
)

// adminPackage is the package of the admin policy (DESIGN §3).
const adminPackage = "warden.admin"

// changeResource is what a change of the policy set from before to after
// touches, as the admin policy sees it in input.resource:
//
//	{"type": "policy_change",
//	 "files": ["admin.rego", ...],        // added, changed or removed
//	 "packages": ["warden.admin", ...],   // the Rego packages those files declare, before or after
//	 "data_paths": ["warden.roles", ...]} // the data documents (two levels deep) whose value changes
//
// With it the admin policy can let an author change some policies and
// not others, the admin policy above all (see policies/admin.rego).
func changeResource(before, after map[string][]byte) map[string]any {
	var files []string
	packages := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(mergeKeys(before, after))) {
		b, inBefore := before[name]
		a, inAfter := after[name]
		if inBefore && inAfter && string(a) == string(b) {
			continue
		}
		files = append(files, name)
		if decision.KindOf(name) == decision.KindData {
			continue
		}
		for _, content := range [][]byte{b, a} {
			if content != nil {
				packages[regoPackage(name, content)] = true
			}
		}
	}
	delete(packages, "")
	return map[string]any{
		"type":       "policy_change",
		"files":      toAny(files),
		"packages":   toAny(slices.Sorted(maps.Keys(packages))),
		"data_paths": toAny(changedDataPaths(before, after)),
	}
}

// packageLine finds the package of a module OPA cannot parse (it will be
// refused when checked, but the admin policy is asked first).
var packageLine = regexp.MustCompile(`(?m)^\s*package\s+([A-Za-z_][\w.]*)`)

// regoPackage is the package a Rego module declares, without "data.".
func regoPackage(name string, content []byte) string {
	if m, err := ast.ParseModuleWithOpts(name, string(content), ast.ParserOptions{RegoVersion: ast.RegoV1}); err == nil && m != nil {
		return strings.TrimPrefix(m.Package.Path.String(), "data.")
	}
	if m := packageLine.FindSubmatch(content); m != nil {
		return string(m[1])
	}
	return ""
}

// changedDataPaths lists the data documents, two levels deep ("warden.roles"),
// whose value differs between the data files of before and after. A set
// whose data cannot be read gives its top level as changed, "*".
func changedDataPaths(before, after map[string][]byte) []string {
	b, _, errB := policyset.Set{Files: before}.Data(nil)
	a, _, errA := policyset.Set{Files: after}.Data(nil)
	if errB != nil || errA != nil {
		return []string{"*"}
	}
	changed := map[string]bool{}
	bo, _ := b.(map[string]any)
	ao, _ := a.(map[string]any)
	for k := range mergeKeys(bo, ao) {
		bk, bIsObj := bo[k].(map[string]any)
		ak, aIsObj := ao[k].(map[string]any)
		if !bIsObj || !aIsObj {
			if !reflect.DeepEqual(bo[k], ao[k]) {
				changed[k] = true
			}
			continue
		}
		for k2 := range mergeKeys(bk, ak) {
			if !reflect.DeepEqual(bk[k2], ak[k2]) {
				changed[k+"."+k2] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(changed))
}

// touchesAdminPolicy says whether a change (its changeResource) alters the
// admin policy: a module of its package or below, or its data.
func touchesAdminPolicy(resource map[string]any) bool {
	for _, key := range []string{"packages", "data_paths"} {
		for _, v := range resource[key].([]any) {
			p := v.(string)
			if p == "*" || p == adminPackage || strings.HasPrefix(p, adminPackage+".") || p == "warden" {
				return true
			}
		}
	}
	return false
}

func mergeKeys[V any](a, b map[string]V) map[string]struct{} {
	keys := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		keys[k] = struct{}{}
	}
	for k := range b {
		keys[k] = struct{}{}
	}
	return keys
}

// toAny makes a []string a JSON array for the policy input.
func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
