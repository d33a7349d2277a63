# METADATA
# title: Warden default authorization policy
# description: |
#   Decides whether the holder of a verified token may perform input.action on
#   input.resource. Access comes from the token's roles claim (an array of
#   strings), mapped to permissions by data.warden.roles, and from ownership:
#   anyone may read an order whose owner is their own subject.
package warden.authz

# Deny unless a rule below grants access.
default allow := false

allow if count(granting_roles) > 0

allow if owner_read

# roles is the set of roles the token carries. A roles claim that is not an
# array of strings grants nothing at all, rather than whatever part of it
# happens to look valid.
roles := {role | some role in input.token.claims.roles} if valid_roles_claim

valid_roles_claim if {
	is_array(input.token.claims.roles)
	every role in input.token.claims.roles {
		is_string(role)
	}
}

# granting_roles are the token's roles whose permissions include the action.
granting_roles contains role if {
	some role in roles
	input.action in data.warden.roles[role]
}

# owner_read lets anyone read an order they own. An empty subject owns
# nothing: otherwise a token without "sub" could read resources whose owner is
# the empty string.
owner_read if {
	input.action == "orders:read"
	input.subject != ""
	input.resource.owner == input.subject
}

# reasons explain the decision to the caller.
reasons contains sprintf("role %s grants %s", [role, input.action]) if {
	some role in granting_roles
}

reasons contains sprintf("subject %s owns the resource", [input.subject]) if {
	owner_read
}

reasons contains sprintf("no role grants %s", [input.action]) if {
	not allow
	valid_roles_claim
}

reasons contains "token has no roles claim" if {
	not allow
	not "roles" in object.keys(input.token.claims)
}

reasons contains "roles claim is not an array of strings" if {
	not allow
	"roles" in object.keys(input.token.claims)
	not valid_roles_claim
}

# headers are the identity headers a proxy forwards upstream on allow.
headers := {"x-warden-subject": input.subject} if allow
