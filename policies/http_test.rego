package warden.http_test

import data.warden.authz
import data.warden.http

# proxied builds the policy input of a request a proxy asks about, for a
# token with the given claims.
proxied(claims, method, path) := {
	"token": {"claims": claims, "header": {"alg": "ES256", "kid": "k1", "typ": "JWT"}},
	"subject": object.get(claims, "sub", ""),
	"action": "",
	"resource": {},
	"context": {},
	"request": {"method": method, "path": path, "query": {}, "host": "api.example.com", "headers": {}},
}

manager := {"sub": "alice", "roles": ["manager"]}

staff := {"sub": "carol", "roles": ["staff"]}

test_route_maps_to_action_and_resource if {
	request := proxied(staff, "GET", "/orders/42")
	http.match.action == "orders:read" with input as request
	http.match.resource == {"type": "order", "id": "42"} with input as request
	authz.allow with input as request
	authz.reasons == {"role staff grants orders:read"} with input as request
	authz.headers == {"x-warden-subject": "carol"} with input as request
}

test_staff_may_not_approve_through_the_proxy if {
	request := proxied(staff, "POST", "/orders/42/approve")
	not authz.allow with input as request
	authz.reasons == {"no role grants orders:approve"} with input as request
}

test_manager_may_approve_through_the_proxy if {
	authz.allow with input as proxied(manager, "POST", "/orders/42/approve")
}

test_method_must_match if {
	request := proxied(manager, "DELETE", "/orders/42")
	not http.match with input as request
	not authz.allow with input as request
	authz.reasons == {"no route matches DELETE /orders/42"} with input as request
}

test_unknown_path_denied if {
	request := proxied(manager, "GET", "/admin")
	not authz.allow with input as request
	authz.reasons == {"no route matches GET /admin"} with input as request
}

test_segments_must_match_exactly if {
	# One segment more or less, or an empty parameter, is another route.
	not http.match with input as proxied(manager, "GET", "/orders/42/items")
	not http.match with input as proxied(manager, "GET", "/orders/")
	not http.match with input as proxied(manager, "GET", "/orders/42/")
}

test_first_matching_route_wins if {
	table := [
		{"method": "*", "path": "/orders/{id}", "action": "orders:any", "resource": {"id": "{id}"}},
		{"method": "GET", "path": "/orders/{id}", "action": "orders:read", "resource": {}},
	]
	http.match.action == "orders:any" with input as proxied(manager, "GET", "/orders/7")
		with data.warden.routes as table
	http.match.resource == {"id": "7"} with input as proxied(manager, "GET", "/orders/7")
		with data.warden.routes as table
}

test_resource_values_other_than_parameters_kept if {
	table := [{"method": "GET", "path": "/shops/{shop}/orders/{id}", "action": "orders:read", "resource": {
		"type": "order", "id": "{id}", "shop": "{shop}", "tier": 2, "label": "{unbound}",
	}}]
	http.match.resource == {"type": "order", "id": "9", "shop": "s1", "tier": 2, "label": "{unbound}"} with input as proxied(manager, "GET", "/shops/s1/orders/9")
		with data.warden.routes as table
}

test_without_request_the_callers_action_counts if {
	# The decision API's input has no request: routes play no part.
	request := object.remove(proxied(staff, "", ""), ["request"])
	not http.match with input as request
	authz.allow with input as object.union(request, {"action": "orders:read", "resource": {"type": "order"}})
}
