package warden.authz_test

import data.warden.authz

test_admin_allowed if {
	authz.allow with input as {"role": "admin"}
}

test_guest_allowed if {
	req := {"role": "guest"}
	trace("checking a guest")
	print("guest input", req)
	authz.allow with input as req
}

test_level if {
	authz.level == 1 with input.x as true
}

todo_test_later if {
	false
}

test_roles[role] if {
	some role in ["admin", "intern"]
	authz.allow with input as {"role": role}
}
