# A policy written for OPA, as a gateway's OPA plugin would ask it: the
# OPA compatibility test (cmd/warden/opacompat_test.go) loads this set into
# both OPA and Warden and asks both the same questions.
package httpapi.authz

default allow := false

# Anyone may read their own orders.
allow if {
	input.method == "GET"
	input.path == ["orders", input.user]
}

# An admin may do anything.
allow if "admin" in data.httpapi.roles[input.user]

reasons contains "owner" if input.path == ["orders", input.user]

reasons contains sprintf("role %s", [role]) if some role in data.httpapi.roles[input.user]
