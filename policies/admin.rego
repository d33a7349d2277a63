# METADATA
# title: Warden admin access policy
# description: |
#   Decides whether the holder of a verified admin token may call the admin
#   API. input.action is "<METHOD> <route pattern>", e.g.
#   "POST /v1/events". A change of the policy set is asked about twice:
#   for the route, then with input.resource saying what it touches
#   ({"type": "policy_change", "files", "packages", "data_paths"}).
#   Tokens whose roles claim contains "warden-admin" may call every admin
#   route; "warden-policy-author" may change and test the policies and
#   their data, except the admin policy itself (package warden.admin and
#   data.warden.admin): only a warden-admin changes who is an admin;
#   "warden-viewer" may only look: every GET route, and a ticket to watch
#   the live decisions.
package warden.admin

default allow := false

allow if "warden-admin" in roles

allow if {
	"warden-viewer" in roles
	viewer_may[input.action]
}

allow if {
	"warden-policy-author" in roles
	author_may[input.action]
	not touches_admin_policy
}

# Reading changes nothing. A stream ticket is a POST, but it only lets its
# holder watch.
viewer_may contains input.action if startswith(input.action, "GET ")

viewer_may contains "POST /v1/decisions/stream/tickets"

# Authors look, and change, test and explain policies and their data.
author_may contains action if some action in viewer_may

author_may contains action if some action in {
	"PUT /v1/policies", "PUT /v1/policies/*id", "DELETE /v1/policies/*id",
	"PUT /v1/data/*path", "PATCH /v1/data/*path",
	"POST /v1/policies/test", "POST /v1/explain",
}

# A change touches the admin policy when it changes a module of its package
# (or of a package above it, whose rules can reach into it) or its data.
touches_admin_policy if {
	some p in input.resource.packages
	reaches_admin(p)
}

touches_admin_policy if {
	some p in input.resource.data_paths
	reaches_admin(p)
}

reaches_admin(p) if p in {"warden", "warden.admin", "*"}

reaches_admin(p) if startswith(p, "warden.admin.")

# The roles claim must be an array: "in" also searches the values of an
# object, and a claim such as {"r": "warden-admin"} must not make an admin.
roles := input.token.claims.roles if is_array(input.token.claims.roles)

default roles := []
