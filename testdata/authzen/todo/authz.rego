# METADATA
# title: AuthZEN Todo interop scenario
# description: |
#   The policy of the AuthZEN interop Todo scenario (openid/authzen,
#   interop/authzen-interop-website/docs/scenarios/todo-1.0-id): five users
#   identified by PID, whose roles and email come from the directory
#   (data.directory, the scenario's "attributes expected to come from a
#   PIP"), asserted by the Todo backend (the PEP). ../todo-decisions.json is the
#   scenario's test file (interop/authzen-todo-backend/test/
#   decisions-authorization-api-1_0-02.json), copied unchanged.
package warden.authz

default allow := false

allow if count(grants) > 0

user := data.directory[input.subject]

roles contains role if some role in user.roles

owns if input.authzen.resource.properties.ownerID == user.email

grants contains "anyone may read users and todos" if input.action in {"can_read_user", "can_read_todos"}

grants contains sprintf("role %s may create todos", [role]) if {
	input.action == "can_create_todo"
	some role in (roles & {"editor", "admin", "evil_genius"})
}

grants contains sprintf("role %s may change its own todos", [role]) if {
	input.action in {"can_update_todo", "can_delete_todo"}
	some role in (roles & {"editor", "admin", "evil_genius"})
	owns
}

grants contains "an evil genius may update any todo" if {
	input.action == "can_update_todo"
	"evil_genius" in roles
}

grants contains "an admin may delete any todo" if {
	input.action == "can_delete_todo"
	"admin" in roles
}

reasons := grants if allow

reasons := {sprintf("nothing grants %s to %s", [input.action, input.subject])} if not allow
