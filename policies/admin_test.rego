package warden.admin_test

import data.warden.admin

req(claims, action) := {
	"token": {"claims": claims, "header": {"alg": "ES256", "kid": "k1", "typ": "JWT"}},
	"subject": object.get(claims, "sub", ""),
	"action": action,
	"resource": {},
	"context": {},
}

test_warden_admin_allowed if {
	admin.allow with input as req({"sub": "root", "roles": ["staff", "warden-admin"]}, "POST /v1/events")
	admin.allow with input as req({"sub": "root", "roles": ["warden-admin"]}, "GET /v1/revocations")
}

test_other_roles_denied if {
	not admin.allow with input as req({"sub": "alice", "roles": ["manager"]}, "POST /v1/events")
}

test_missing_roles_denied if {
	not admin.allow with input as req({"sub": "alice"}, "GET /v1/status")
}

test_roles_not_an_array_denied if {
	every roles in ["warden-admin", {"r": "warden-admin"}, null] {
		not admin.allow with input as req({"sub": "alice", "roles": roles}, "GET /v1/status")
	}
}

test_viewer_may_look if {
	every action in ["GET /v1/status", "GET /v1/policies", "GET /v1/decisions/stream", "POST /v1/decisions/stream/tickets"] {
		admin.allow with input as req({"sub": "carol", "roles": ["warden-viewer"]}, action)
	}
}

test_viewer_may_not_change if {
	every action in ["POST /v1/events", "PUT /v1/policies", "PUT /v1/policies/*id", "PATCH /v1/data/*path", "POST /v1/explain", "POST /v1/dev/token"] {
		not admin.allow with input as req({"sub": "carol", "roles": ["warden-viewer"]}, action)
	}
}

test_viewer_role_must_be_in_an_array if {
	not admin.allow with input as req({"sub": "carol", "roles": {"r": "warden-viewer"}}, "GET /v1/status")
}

change(claims, action, resource) := object.union(req(claims, action), {"resource": resource})

author := {"sub": "dana", "roles": ["warden-policy-author"]}

test_author_may_change_policies if {
	every action in ["PUT /v1/policies", "PUT /v1/policies/*id", "DELETE /v1/policies/*id", "PATCH /v1/data/*path", "POST /v1/policies/test", "GET /v1/policies"] {
		admin.allow with input as req(author, action)
	}
	admin.allow with input as change(author, "PUT /v1/policies/*id", {"type": "policy_change", "files": ["authz.rego"], "packages": ["warden.authz"], "data_paths": []})
	admin.allow with input as change(author, "PATCH /v1/data/*path", {"type": "policy_change", "files": ["data.json"], "packages": [], "data_paths": ["warden.roles"]})
}

test_author_may_not_touch_the_admin_policy if {
	every resource in [
		{"type": "policy_change", "files": ["admin.rego"], "packages": ["warden.admin"], "data_paths": []},
		{"type": "policy_change", "files": ["x.rego"], "packages": ["warden.admin.extra"], "data_paths": []},
		{"type": "policy_change", "files": ["w.rego"], "packages": ["warden"], "data_paths": []},
		{"type": "policy_change", "files": ["data.json"], "packages": [], "data_paths": ["warden.admin"]},
		{"type": "policy_change", "files": ["data.json"], "packages": [], "data_paths": ["*"]},
	] {
		not admin.allow with input as change(author, "PUT /v1/policies", resource)
	}
}

test_author_may_not_publish_events if {
	not admin.allow with input as req(author, "POST /v1/events")
}

test_admin_may_change_the_admin_policy if {
	admin.allow with input as change({"sub": "root", "roles": ["warden-admin"]}, "PUT /v1/policies/*id", {"type": "policy_change", "files": ["admin.rego"], "packages": ["warden.admin"], "data_paths": []})
}
