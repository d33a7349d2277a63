# Who may use Warden's admin API (PUT /v1/policies/{id} in the test); OPA
# loads it as any other module.
package warden.admin

default allow := false

allow if "warden-admin" in input.token.claims.roles
