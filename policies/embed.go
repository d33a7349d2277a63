// Package policies holds the Rego modules Warden ships: the default
// authorization policy (package warden.authz), the admin access policy
// (package warden.admin), their _test.rego tests, and data.json, which places
// the role permissions at data.warden.roles.
//
// When no policy directory is configured, the decision engine loads this set;
// it contains no logic of its own.
package policies

import (
	"embed"
	"io/fs"
)

//go:embed *.rego *.json
var files embed.FS

// FS returns the shipped policy set, rooted at its own directory, in the
// layout decision.NewEngine and `opa test` expect.
func FS() fs.FS {
	return files
}
