# METADATA
# title: HTTP routes (warden.http)
# description: |
#   Maps an HTTP request a proxy asks about (input.request) to the action and
#   resource the authorization policy decides on, from the route table in
#   data.warden.routes, so that protecting an API behind a proxy takes data,
#   not code. Each route is
#
#     {"method": "GET", "path": "/orders/{id}", "action": "orders:read",
#      "resource": {"type": "order", "id": "{id}"}}
#
#   method is one method or "*" for any; path is matched segment by
#   segment, a "{name}" segment matching any one non-empty segment; a
#   resource value that is exactly "{name}" becomes that segment. The first
#   route that matches, in table order, wins.
package warden.http

# proxied: the input is a request a proxy asks about. (It names the
# request's method rather than the request whole, so that the decision cache
# can tell that the policy never reads the request's headers.)
proxied if input.request.method

# match is the first matching route, with its resource filled in.
match := object.union(route, {"resource": filled}) if {
	route := data.warden.routes[min(matching)]
	params := {name: segments[j] |
		some j, seg in split(route.path, "/")
		name := param_name(seg)
	}
	filled := {k: fill(v, params) | some k, v in object.get(route, "resource", {})}
}

# segments are the request path's, split once.
segments := split(input.request.path, "/")

# matching holds the indexes of the routes that match the request: the
# method, the number of segments, every literal segment, and a non-empty
# value for every "{name}" segment.
matching contains i if {
	some i, route in data.warden.routes
	route.method in {input.request.method, "*"}
	template := split(route.path, "/")
	count(template) == count(segments)
	mismatches := [j |
		some j, seg in template
		not segment_matches(seg, segments[j])
	]
	count(mismatches) == 0
}

segment_matches(seg, value) if {
	param_name(seg)
	value != ""
}

segment_matches(seg, value) if seg == value

param_name(seg) := substring(seg, 1, count(seg) - 2) if {
	startswith(seg, "{")
	endswith(seg, "}")
	count(seg) > 2
}

fill(v, params) := params[param_name(v)] if is_string(v)

fill(v, _) := v if {
	is_string(v)
	not param_name(v)
}

fill(v, _) := v if not is_string(v)
