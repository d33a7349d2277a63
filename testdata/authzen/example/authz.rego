# METADATA
# title: AuthZEN with a directory (example)
# description: |
#   A policy set for AuthZEN callers in both modes (docs/authzen.md). In
#   token mode the user's roles are the verified token's roles claim; in
#   asserted mode, where an authenticated caller names the subject, they
#   are the directory's (data.directory.users), which an admin keeps current
#   with PUT /v1/data/directory/users. Roles grant permissions through
#   data.warden.roles, as in the shipped set.
package warden.authz

default allow := false

allow if count(grants) > 0

roles := input.token.claims.roles if is_array(input.token.claims.roles)

roles := object.get(data.directory.users, [input.subject, "roles"], []) if not input.token

grants contains sprintf("role %s grants %s", [role, input.action]) if {
	some role in roles
	input.action in data.warden.roles[role]
}

reasons := grants if allow

reasons := {sprintf("no role of %s grants %s", [input.subject, input.action])} if not allow
