# METADATA
# title: AuthZEN 1.0 certification fixture
# description: |
#   The policy the AuthZEN Authorization API 1.0 certification scenario
#   requires of a PDP (openid/authzen,
#   certification/authorization-api-1_0-scenario.md, "Required Fixture"),
#   for subjects asserted by an authenticated caller. An entity's attributes
#   are its properties in the request, else the directory's
#   (data.directory), so that the identifier-only requests decide as the
#   fixture says.
package warden.authz

default allow := false

allow if count(grants) > 0

subject := input.authzen.subject

action := input.authzen.action

resource := input.authzen.resource

role := object.get(subject.properties, "role", object.get(data.directory.subjects, [subject.id, "role"], ""))

status := object.get(resource.properties, "status", object.get(data.directory.resources, [resource.id, "status"], ""))

grants contains "readers may read" if {
	action.name == "read"
	subject.id in data.directory.readers
}

grants contains "editors may write a record that is not archived" if {
	action.name == "write"
	subject.id in data.directory.editors
	status != "archived"
}

grants contains "admins may write an archived record" if {
	action.name == "write"
	role == "admin"
	status == "archived"
}

grants contains "editors may soft-delete" if {
	action.name == "delete"
	subject.id in data.directory.editors
	action.properties.soft == true
}

reasons := grants if allow

reasons := {sprintf("nothing grants %s %s on %s %s", [subject.id, action.name, resource.type, resource.id])} if not allow
