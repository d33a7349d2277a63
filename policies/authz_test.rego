package warden.authz_test

import data.warden.authz

# req builds the policy input Warden's engine passes for a token with the
# given claims asking to do action on resource.
req(claims, action, resource) := {
	"token": {"claims": claims, "header": {"alg": "ES256", "kid": "k1", "typ": "JWT"}},
	"subject": object.get(claims, "sub", ""),
	"action": action,
	"resource": resource,
	"context": {},
}

order := {"type": "order", "id": "42", "owner": "bob"}

test_manager_may_approve if {
	request := req({"sub": "alice", "roles": ["manager"]}, "orders:approve", order)
	authz.allow with input as request
	authz.reasons == {"role manager grants orders:approve"} with input as request
	authz.headers == {"x-warden-subject": "alice"} with input as request
}

test_staff_may_not_approve if {
	request := req({"sub": "carol", "roles": ["staff"]}, "orders:approve", order)
	not authz.allow with input as request
	authz.reasons == {"no role grants orders:approve"} with input as request
	not authz.headers with input as request
}

test_staff_may_read if {
	request := req({"sub": "carol", "roles": ["staff"]}, "orders:read", order)
	authz.allow with input as request
	authz.reasons == {"role staff grants orders:read"} with input as request
}

test_any_granting_role_is_a_reason if {
	request := req({"sub": "alice", "roles": ["staff", "manager", "intern"]}, "orders:read", order)
	authz.allow with input as request
	authz.reasons == {"role staff grants orders:read", "role manager grants orders:read"} with input as request
}

test_owner_may_read if {
	request := req({"sub": "bob", "roles": []}, "orders:read", order)
	authz.allow with input as request
	authz.reasons == {"subject bob owns the resource"} with input as request
	authz.headers == {"x-warden-subject": "bob"} with input as request
}

test_owner_may_not_approve if {
	not authz.allow with input as req({"sub": "bob", "roles": []}, "orders:approve", order)
}

test_owner_and_role_both_reasons if {
	request := req({"sub": "bob", "roles": ["staff"]}, "orders:read", order)
	authz.allow with input as request
	authz.reasons == {"role staff grants orders:read", "subject bob owns the resource"} with input as request
}

test_non_owner_may_not_read if {
	request := req({"sub": "dave", "roles": []}, "orders:read", order)
	not authz.allow with input as request
	authz.reasons == {"no role grants orders:read"} with input as request
}

test_empty_subject_owns_nothing if {
	not authz.allow with input as req({"roles": []}, "orders:read", {"owner": ""})
}

test_resource_without_owner_is_nobodys if {
	not authz.allow with input as req({"sub": "bob", "roles": []}, "orders:read", {"type": "order", "id": "42"})
}

test_missing_roles_claim_denies if {
	request := req({"sub": "alice"}, "orders:approve", order)
	not authz.allow with input as request
	authz.reasons == {"token has no roles claim"} with input as request
}

test_roles_not_an_array_denies if {
	every roles in ["manager", {"r": "manager"}, 1, null, true] {
		request := req({"sub": "alice", "roles": roles}, "orders:approve", order)
		not authz.allow with input as request
		authz.reasons == {"roles claim is not an array"} with input as request
	}
}

test_non_string_roles_grant_nothing if {
	request := req({"sub": "alice", "roles": [1, true, null, ["manager"], {"r": "manager"}]}, "orders:approve", order)
	not authz.allow with input as request
	authz.reasons == {"no role grants orders:approve"} with input as request
}

test_string_roles_beside_others_still_count if {
	authz.allow with input as req({"sub": "alice", "roles": [1, "manager"]}, "orders:approve", order)
}

test_unknown_role_grants_nothing if {
	not authz.allow with input as req({"sub": "alice", "roles": ["admin"]}, "orders:read", order)
}

test_unknown_action_denied if {
	not authz.allow with input as req({"sub": "alice", "roles": ["manager"]}, "orders:delete", order)
}

test_role_data_drives_permissions if {
	request := req({"sub": "alice", "roles": ["auditor"]}, "orders:read", order)
	authz.allow with input as request with data.warden.roles as {"auditor": ["orders:read"]}
	not authz.allow with input as req({"sub": "alice", "roles": ["manager"]}, "orders:read", order)
		with data.warden.roles as {"auditor": ["orders:read"]}
}
