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
#   route that matches, in table order, wins. The matching is Warden's
#   built-in warden.route, which compiles the table once.
package warden.http

# proxied: the input is a request a proxy asks about. (It names the
# request's method rather than the request whole, so that the decision cache
# can tell that the policy never reads the request's headers.)
proxied if input.request.method

# match is the first route of data.warden.routes that matches the request,
# with its resource filled in (warden.route, docs/policies.md).
match := warden.route(data.warden.routes, input.request.method, input.request.path)
