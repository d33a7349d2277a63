package warden.authz

allow := true

reasons := {json.marshal(input)}
