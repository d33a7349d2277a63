# The decision of Warden's shipped policy (policies/authz.rego: RBAC over
# the roles claim, the owner rule, the reasons) written as an OPA user
# would, the token verified in Rego with io.jwt.decode_verify (its result
# cached by OPA's io_jwt cache, testdata/load/opa.yaml). testdata/load/mix
# checks that OPA and Warden agree on every decision and reason of a sample
# before it times either.
package mixbench

claims := payload if {
	[valid, _, payload] := io.jwt.decode_verify(input.token, {"cert": data.jwks, "iss": data.issuer, "aud": data.audience})
	valid
}

default allow := false

allow if count(grants) > 0

roles := claims.roles if is_array(claims.roles)

grants contains sprintf("role %s grants %s", [role, input.action]) if {
	some role in roles
	input.action in data.warden.roles[role]
}

grants contains sprintf("subject %s owns the resource", [claims.sub]) if {
	input.action == "orders:read"
	claims.sub != ""
	input.resource.owner == claims.sub
}

reasons := grants if allow

reasons := denials if not allow

denials contains sprintf("no role grants %s", [input.action]) if is_array(claims.roles)

denials contains "token has no roles claim" if not "roles" in object.keys(claims)

decision := {"allow": allow, "reasons": reasons}
