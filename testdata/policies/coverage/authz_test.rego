package warden.authz_test

import data.warden.authz

test_admin if {
	authz.allow with input as {"role": "admin"}
}
