# The same decision as Warden's shipped policy, done the way an OPA user
# would: the token verified in Rego with io.jwt.decode_verify (its result
# cached by OPA's io_jwt cache), then RBAC over the roles claim. Used only by
# testdata/load/opa.sh to measure OPA on the same load as Warden.
package opabench

claims := payload if {
	[valid, _, payload] := io.jwt.decode_verify(input.token, {"cert": data.jwks, "iss": "warden-dev", "aud": "warden"})
	valid
}

default allow := false

allow if {
	some role in claims.roles
	input.action in data.warden.roles[role]
}
