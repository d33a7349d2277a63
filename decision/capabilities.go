package decision

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// CodeRestrictedBuiltin is the Problem code of a call to a built-in that
// policies may not use unless network built-ins are allowed.
const CodeRestrictedBuiltin = "restricted_builtin"

// restrictedBuiltins are the built-ins a policy set is compiled without,
// unless network built-ins are allowed, with why each is left out.
//
// Warden runs Rego that security teams write and, soon, upload through an
// API, on every replica, on the request path. A policy must therefore be a
// function of its input and data, and must not reach beyond the process:
//
//   - http.send makes HTTP requests. From a decision point inside the
//     network, a policy that can send requests can probe internal services
//     (SSRF) and leak input (tokens' claims) to anyone; it also puts a remote
//     server's latency inside the 50 ms evaluation budget.
//   - net.lookup_ip_addr makes DNS queries: the same exfiltration channel (a
//     name can carry data) and the same latency, with answers that change
//     under the policy.
//   - opa.runtime returns the runtime's configuration and the process
//     environment, where secrets live. Warden does not hand OPA a runtime
//     today, so it answers {}, but that is wiring, not a guarantee.
//
// Other non-deterministic built-ins stay: time.now_ns (policies legitimately
// check time windows), rand.intn and uuid.rfc4122 read only the clock and a
// random source, and io.jwt.* and crypto.* work on their arguments. The
// decision cache already steps aside for all of them (see memo). The
// capabilities also set allow_net to no host, which stops
// json.match_schema and json.verify_schema from fetching a schema's remote
// $ref, the one network access a hermetic-looking built-in can make.
var restrictedBuiltins = map[string]string{
	ast.HTTPSend.Name:        "it sends HTTP requests",
	ast.NetLookupIPAddr.Name: "it makes DNS queries",
	ast.OPARuntime.Name:      "it reads the host's environment and configuration",
}

// waitsOnNetwork says whether the built-in name waits on the network, which
// no deadline can interrupt (see Engine.eval).
func waitsOnNetwork(name string) bool {
	return name == ast.HTTPSend.Name || name == ast.NetLookupIPAddr.Name
}

// RestrictedBuiltins lists, sorted, the built-ins a policy set may call only
// when network built-ins are allowed (Options.AllowNetworkBuiltins).
func RestrictedBuiltins() []string {
	names := make([]string, 0, len(restrictedBuiltins))
	for name := range restrictedBuiltins {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// The two sets of capabilities are built once: the compiler only reads them,
// and building them copies OPA's whole built-in table.
var (
	restrictedCapabilities = sync.OnceValue(func() *ast.Capabilities {
		c := ast.CapabilitiesForThisVersion()
		c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool {
			_, restricted := restrictedBuiltins[b.Name]
			return restricted
		})
		c.AllowNet = []string{} // empty, not nil: no host at all
		return c
	})
	fullCapabilities = sync.OnceValue(func() *ast.Capabilities {
		return ast.CapabilitiesForThisVersion()
	})
)

// capabilities are what a policy set compiles against: OPA's own, less the
// restricted built-ins unless allowNetwork.
func capabilities(allowNetwork bool) *ast.Capabilities {
	if allowNetwork {
		return fullCapabilities()
	}
	return restrictedCapabilities()
}

// explainRestricted rewords the compiler's errors about restricted
// built-ins. Left out of the capabilities, http.send is to OPA just an
// "undefined function", or an invalid target of a test's `with`, which sends
// an author looking for a typo; the rewording says it exists and why it is
// refused, and keeps the position.
func explainRestricted(errs ast.Errors) {
	for _, e := range errs {
		if e == nil {
			continue
		}
		name, ok := strings.CutPrefix(e.Message, "undefined function ")
		if !ok && strings.HasPrefix(e.Message, "with keyword target must reference") && e.Location != nil {
			name, ok = string(e.Location.Text), true
		}
		if !ok {
			continue
		}
		if why, restricted := restrictedBuiltins[name]; restricted {
			e.Code = CodeRestrictedBuiltin
			e.Message = fmt.Sprintf("%s is a restricted built-in: %s, and Warden compiles policies without network or host access unless network built-ins are allowed", name, why)
		}
	}
}
