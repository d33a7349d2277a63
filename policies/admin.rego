# METADATA
# title: Warden admin access policy
# description: |
#   Decides whether the holder of a verified admin token may call the admin
#   API. input.action is "<METHOD> <route pattern>", e.g.
#   "POST /v1/events". Tokens whose roles claim contains "warden-admin" may
#   call every admin route; tokens with "warden-viewer" may only look:
#   every GET route, and a ticket to watch the live decisions.
package warden.admin

default allow := false

allow if "warden-admin" in roles

allow if {
	"warden-viewer" in roles
	viewer_may[input.action]
}

# Reading changes nothing. A stream ticket is a POST, but it only lets its
# holder watch.
viewer_may contains input.action if startswith(input.action, "GET ")

viewer_may contains "POST /v1/decisions/stream/tickets"

# The roles claim must be an array: "in" also searches the values of an
# object, and a claim such as {"r": "warden-admin"} must not make an admin.
roles := input.token.claims.roles if is_array(input.token.claims.roles)

default roles := []
