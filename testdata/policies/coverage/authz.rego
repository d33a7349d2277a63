package warden.authz

default allow := false

allow if {
	input.role == "admin"
}

allow if {
	input.role == "owner"
	input.id == 1
}
