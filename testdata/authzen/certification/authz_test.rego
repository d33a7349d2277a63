package warden.authz_test

import data.warden.authz

# evaluation is the policy input of an AuthZEN evaluation of an asserted
# subject, as Warden builds it.
evaluation(subject, action, resource) := {
	"subject": subject.id,
	"action": action.name,
	"resource": object.union(object.get(resource, "properties", {}), {"type": resource.type, "id": resource.id}),
	"context": {},
	"authzen": {
		"subject": object.union({"properties": {}}, subject),
		"action": object.union({"properties": {}}, action),
		"resource": object.union({"properties": {}}, resource),
	},
}

alice := {"type": "user", "id": "alice"}

bob := {"type": "user", "id": "bob"}

record1 := {"type": "record", "id": "record-1"}

test_rule_1_alice_reads if authz.allow with input as evaluation(alice, {"name": "read"}, record1)

test_rule_2_alice_writes if authz.allow with input as evaluation(alice, {"name": "write"}, record1)

test_rule_3_bob_reads if authz.allow with input as evaluation(bob, {"name": "read"}, record1)

test_rule_4_bob_may_not_write if not authz.allow with input as evaluation(bob, {"name": "write"}, record1)

test_rule_5_no_write_to_archived if {
	not authz.allow with input as evaluation(alice, {"name": "write"}, {"type": "record", "id": "record-2", "properties": {"status": "archived"}})
}

test_rule_6_admin_writes_archived if {
	admin := {"type": "user", "id": "bob", "properties": {"role": "admin"}}
	authz.allow with input as evaluation(admin, {"name": "write"}, {"type": "record", "id": "record-2", "properties": {"status": "archived"}})
}

test_rule_7_soft_delete if authz.allow with input as evaluation(alice, {"name": "delete", "properties": {"soft": true}}, record1)

test_rule_8_no_hard_delete if not authz.allow with input as evaluation(alice, {"name": "delete", "properties": {"soft": false}}, record1)

test_reasons_say_why if {
	authz.reasons == {"nothing grants bob write on record record-1"} with input as evaluation(bob, {"name": "write"}, record1)
}
