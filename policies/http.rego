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

# match is the first matching route, with its resource filled in.
match := object.union(route, {"resource": filled}) if {
	i := min(matching)
	route := data.warden.routes[i]
	params := path_params(route.path, input.request.path)
	filled := {k: fill(v, params) | some k, v in object.get(route, "resource", {})}
}

# matching holds the indexes of the routes that match the request.
matching contains i if {
	some i, route in data.warden.routes
	route.method in {input.request.method, "*"}
	path_params(route.path, input.request.path)
}

# path_params are the "{name}" segments of template bound to the segments of
# path, when path matches template; undefined otherwise.
path_params(template, path) := {name: value |
	some i, seg in ts
	name := param_name(seg)
	value := ps[i]
} if {
	ts := split(template, "/")
	ps := split(path, "/")
	count(ts) == count(ps)
	every i, seg in ts {
		segment_matches(seg, ps[i])
	}
}

segment_matches(seg, value) if {
	param_name(seg)
	value != ""
}

segment_matches(seg, value) if {
	not param_name(seg)
	seg == value
}

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
