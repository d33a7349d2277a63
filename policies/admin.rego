# METADATA
# title: Warden admin access policy
# description: |
#   Decides whether the holder of a verified admin token may call the admin
#   API. input.action is "<METHOD> <route pattern>", e.g.
#   "POST /v1/events". Tokens whose roles claim contains "warden-admin" may
#   call every admin route.
package warden.admin

default allow := false

# The roles claim must be an array: "in" also searches the values of an
# object, and a claim such as {"r": "warden-admin"} must not make an admin.
allow if {
	is_array(input.token.claims.roles)
	"warden-admin" in input.token.claims.roles
}
