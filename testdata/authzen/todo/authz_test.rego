package warden.authz_test

import data.warden.authz

rick := "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

morty := "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

ask(subject, action, owner) := {
	"subject": subject,
	"action": action,
	"resource": {"type": "todo", "id": "t1", "ownerID": owner},
	"context": {},
	"authzen": {
		"subject": {"type": "user", "id": subject, "properties": {}},
		"action": {"name": action, "properties": {}},
		"resource": {"type": "todo", "id": "t1", "properties": {"ownerID": owner}},
	},
}

test_editor_changes_own_todos_only if {
	authz.allow with input as ask(morty, "can_update_todo", "morty@the-citadel.com")
	not authz.allow with input as ask(morty, "can_update_todo", "rick@the-citadel.com")
	not authz.allow with input as ask(morty, "can_delete_todo", "rick@the-citadel.com")
}

test_rick_updates_and_deletes_anything if {
	authz.allow with input as ask(rick, "can_update_todo", "morty@the-citadel.com")
	authz.allow with input as ask(rick, "can_delete_todo", "morty@the-citadel.com")
}

test_strangers_only_read if {
	authz.allow with input as ask("nobody", "can_read_todos", "")
	not authz.allow with input as ask("nobody", "can_create_todo", "")
}
