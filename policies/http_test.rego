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

# The tests bring their own route table and roles, so that they test the
# mapping, not the data a deployment ships.
table := [
	{"method": "GET", "path": "/orders", "action": "orders:read", "resource": {"type": "order"}},
	{"method": "GET", "path": "/orders/{id}", "action": "orders:read", "resource": {"type": "order", "id": "{id}"}},
	{"method": "POST", "path": "/orders/{id}/approve", "action": "orders:approve", "resource": {"type": "order", "id": "{id}"}},
]

roles := {"manager": ["orders:read", "orders:approve"], "staff": ["orders:read"]}

test_route_maps_to_action_and_resource if {
	request := proxied(staff, "GET", "/orders/42")
	http.match.action == "orders:read" with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	http.match.resource == {"type": "order", "id": "42"} with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	authz.allow with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	authz.reasons == {"role staff grants orders:read"} with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	authz.headers == {"x-warden-subject": "carol"} with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
}

test_staff_may_not_approve_through_the_proxy if {
	request := proxied(staff, "POST", "/orders/42/approve")
	not authz.allow with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	authz.reasons == {"no role grants orders:approve"} with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
}

test_manager_may_approve_through_the_proxy if {
	authz.allow with input as proxied(manager, "POST", "/orders/42/approve")
		with data.warden.routes as table
		with data.warden.roles as roles
}

test_method_must_match if {
	request := proxied(manager, "DELETE", "/orders/42")
	not http.match with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	not authz.allow with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	authz.reasons == {"no route matches DELETE /orders/42"} with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
}

test_unknown_path_denied if {
	request := proxied(manager, "GET", "/admin")
	not authz.allow with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	authz.reasons == {"no route matches GET /admin"} with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
}

# One segment more or less, or an empty parameter, is another route.
test_segments_must_match_exactly if {
	not http.match with input as proxied(manager, "GET", "/orders/42/items")
		with data.warden.routes as table
		with data.warden.roles as roles
	not http.match with input as proxied(manager, "GET", "/orders/")
		with data.warden.routes as table
		with data.warden.roles as roles
	not http.match with input as proxied(manager, "GET", "/orders/42/")
		with data.warden.routes as table
		with data.warden.roles as roles
}

test_first_matching_route_wins if {
	first_wins := [
		{"method": "*", "path": "/orders/{id}", "action": "orders:any", "resource": {"id": "{id}"}},
		{"method": "GET", "path": "/orders/{id}", "action": "orders:read", "resource": {}},
	]
	m := http.match with input as proxied(manager, "GET", "/orders/7")
		with data.warden.routes as first_wins
	m.action == "orders:any"
	m.resource == {"id": "7"}
}

test_resource_values_other_than_parameters_kept if {
	shops := [{"method": "GET", "path": "/shops/{shop}/orders/{id}", "action": "orders:read", "resource": {
		"type": "order", "id": "{id}", "shop": "{shop}", "tier": 2, "label": "{}",
	}}]
	m := http.match with input as proxied(manager, "GET", "/shops/s1/orders/9")
		with data.warden.routes as shops
	m.resource == {"type": "order", "id": "9", "shop": "s1", "tier": 2, "label": "{}"}
}

# A table that names a parameter its path lacks is a mistake: it matches
# nothing (and a policy set holding it is refused when it is written).
test_unbound_parameter_matches_nothing if {
	typo := [{"method": "GET", "path": "/orders/{id}", "action": "orders:read", "resource": {"id": "{idd}"}}]
	not http.match with input as proxied(manager, "GET", "/orders/9")
		with data.warden.routes as typo
}

# The decision API's input has no request: routes play no part.
test_without_request_the_callers_action_counts if {
	request := object.union(object.remove(proxied(staff, "", ""), ["request"]), {"action": "orders:read", "resource": {"type": "order"}})
	not http.match with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
	authz.allow with input as request
		with data.warden.routes as table
		with data.warden.roles as roles
}

test_no_route_table_denies if {
	not authz.allow with input as proxied(manager, "GET", "/orders/42")
		with data.warden.routes as []
}

test_path_is_literal_apart_from_parameters if {
	odd := [{"method": "GET", "path": "/files/*/{name}", "action": "files:read", "resource": {"name": "{name}"}}]
	m := http.match with input as proxied(manager, "GET", "/files/*/a.txt")
		with data.warden.routes as odd
	m.resource == {"name": "a.txt"}
	not http.match with input as proxied(manager, "GET", "/files/x/a.txt")
		with data.warden.routes as odd
	not http.match with input as proxied(manager, "GET", "/files/*/")
		with data.warden.routes as odd
}
