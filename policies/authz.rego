# METADATA
# title: Warden default authorization policy
# description: |
#   Decides whether the holder of a verified token may perform an action on a
#   resource. The action and resource are the caller's (input.action,
#   input.resource), or, for an HTTP request a proxy asks about
#   (input.request), those its route maps it to in data.warden.routes.
#   Access comes from the token's roles claim (an array of role names),
#   mapped to permissions by data.warden.roles, and from ownership: anyone
#   may read an order whose owner is their own subject.
package warden.authz

import data.warden.http

# Deny unless something grants access.
default allow := false

allow if count(grants) > 0

# action and resource are what the request asks: the caller's own, or its
# route's for a request a proxy asks about. A request no route matches has
# neither, and nothing grants it.
action := input.action if not http.proxied

action := http.match.action if http.proxied

resource := input.resource if not http.proxied

resource := http.match.resource if http.proxied

# grants holds one reason for each way the request is granted. Allowing
# exactly when there is a reason keeps the two from drifting apart.
grants contains sprintf("role %s grants %s", [role, action]) if {
	some role in roles
	action in data.warden.roles[role]
}

# Anyone may read an order they own. An empty subject owns nothing:
# otherwise a token without "sub" could read resources whose owner is "".
grants contains sprintf("subject %s owns the resource", [input.subject]) if {
	action == "orders:read"
	input.subject != ""
	resource.owner == input.subject
}

# roles is the token's roles claim, only if it is an array: "in" would
# otherwise also walk the values of an object such as {"r": "manager"}.
# Entries that are not strings name no role and grant nothing.
roles := input.token.claims.roles if is_array(input.token.claims.roles)

# reasons explain the decision to the caller: what granted access, or why
# nothing did.
reasons := grants if allow

reasons := denials if not allow

denials contains sprintf("no role grants %s", [action]) if is_array(input.token.claims.roles)

denials contains sprintf("no route matches %s %s", [input.request.method, input.request.path]) if {
	http.proxied
	not http.match
}

denials contains "token has no roles claim" if not has_roles_claim

denials contains "roles claim is not an array" if {
	has_roles_claim
	not is_array(input.token.claims.roles)
}

has_roles_claim if "roles" in object.keys(input.token.claims)

# headers are the identity headers a proxy forwards upstream on allow.
headers := {"x-warden-subject": input.subject} if allow
