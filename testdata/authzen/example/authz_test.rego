package warden.authz_test

import data.warden.authz

# asserted is the input of an AuthZEN evaluation whose subject an
# authenticated caller asserts: no token.
asserted(subject, action) := {
	"subject": subject,
	"action": action,
	"resource": {"type": "order", "id": "42"},
	"context": {},
	"authzen": {
		"subject": {"type": "user", "id": subject, "properties": {}},
		"action": {"name": action, "properties": {}},
		"resource": {"type": "order", "id": "42", "properties": {}},
	},
}

test_directory_manager_may_approve if authz.allow with input as asserted("alice", "orders:approve")

test_directory_staff_may_read_not_approve if {
	authz.allow with input as asserted("carol", "orders:read")
	not authz.allow with input as asserted("carol", "orders:approve")
	authz.reasons == {"no role of carol grants orders:approve"} with input as asserted("carol", "orders:approve")
}

test_unknown_user_has_no_roles if not authz.allow with input as asserted("mallory", "orders:read")

test_directory_change_applies if {
	authz.allow with input as asserted("carol", "orders:approve")
		with data.directory.users.carol as {"roles": ["manager"]}
}

# In token mode the token's roles count, not the directory's.
test_token_roles_win if {
	demoted := object.union(asserted("alice", "orders:approve"), {"token": {"claims": {"sub": "alice", "roles": ["staff"]}}})
	not authz.allow with input as demoted
}
