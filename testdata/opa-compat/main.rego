package httpapi

# The default decision (OPA's POST /): undefined without a method.
main := data.httpapi.authz.allow if input.method

# A built-in error: undefined, or an evaluation error with
# ?strict-builtin-errors.
number := to_number(input.n)
