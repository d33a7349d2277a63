package warden.authz

default allow := false

allow if input.role == "admin"

level := 1 if input.x

level := 2 if input.x
