package warden.authz

import data.warden.lib

default allow := false

allow if {
	double(count(input.token.claims.roles)) >= 2
	lib.ok
	limits.orders > 1
	tier == "silver"
	odd
}

double(n) := 2 * n

limits[k] := v if {
	some k, v in {"orders": 5, "users": 1}
}

tier := "gold" if input.subject == "nobody"
else := "silver"

reasons contains r if some r in ["b", "a", "b"]

odd := {1: {2, 3}}

never if input.subject == "nobody"
