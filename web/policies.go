package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/gin-gonic/gin"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policyset"
)

// Policies is the policy lifecycle the admin API drives: where the set comes
// from, what is stored, proposing a new set (checked whole, tests run, then
// stored), and how the replica's active set stands.
type Policies interface {
	Source() string
	Current(ctx context.Context) (policyset.Set, error)
	Propose(ctx context.Context, files map[string][]byte, expected uint64, author, message string) (policyset.Set, error)
	Status() policyset.Status
}

// Drafts is what the admin API asks the engine about a policy set that is
// not active: run its tests as activation would check it, and explain a
// decision against it (or against the active set, when draft is nil).
type Drafts interface {
	Entrypoint() string
	Test(ctx context.Context, fsys fs.FS, opts decision.TestOptions) (*decision.TestReport, error)
	Explain(ctx context.Context, in decision.Input, draft fs.FS) (*decision.Explanation, error)
}

var _ Drafts = (*decision.Engine)(nil)

// StoredSet is the answer to a write of the policy set (PUT /v1/policies,
// PUT and DELETE /v1/policies/{id}, PUT and PATCH /v1/data/{path}).
type StoredSet struct {
	Revision   string `json:"revision"`
	KVRevision uint64 `json:"kv_revision"`
}

// policyFile is one file of the set as GET /v1/policies lists it.
type policyFile struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"` // module, test or data
	Bytes int    `json:"bytes"`
}

// handleListPolicies answers GET /v1/policies: the stored set's files, its
// revision and this replica's policy status.
func (s *server) handleListPolicies() gin.HandlerFunc {
	return func(c *gin.Context) {
		set, err := s.policies.Current(c.Request.Context())
		if err != nil {
			s.writeError(c, err)
			return
		}
		files := make([]policyFile, 0, len(set.Files))
		for _, name := range slices.Sorted(maps.Keys(set.Files)) {
			files = append(files, policyFile{ID: name, Kind: decision.KindOf(name), Bytes: len(set.Files[name])})
		}
		c.Header("ETag", etag(set.KVRevision))
		resp := gin.H{
			"source":      s.policies.Source(),
			"revision":    set.Revision,
			"kv_revision": set.KVRevision,
			"author":      set.Author,
			"message":     set.Message,
			"at":          set.At,
			"files":       files,
			"file_kinds":  decision.FileKinds,
			"status":      s.policies.Status(),
		}
		if s.drafts != nil {
			resp["entrypoint"] = s.drafts.Entrypoint()
		}
		c.JSON(http.StatusOK, resp)
	}
}

// handleGetPolicy answers GET /v1/policies/{id}: the file's text, with the
// set's KV revision as ETag for a following PUT's If-Match.
func (s *server) handleGetPolicy() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := policyID(c)
		set, err := s.policies.Current(c.Request.Context())
		if err != nil {
			s.writeError(c, err)
			return
		}
		content, ok := set.Files[id]
		if !ok {
			s.writeError(c, errorf(codeNotFound, fmt.Sprintf("no policy file %q in revision %s", id, set.Revision)))
			return
		}
		c.Header("ETag", etag(set.KVRevision))
		c.Data(http.StatusOK, "text/plain; charset=utf-8", content)
	}
}

// handlePutPolicy answers PUT /v1/policies/{id}: the body (Rego or data text)
// replaces or adds that file; the whole new set is checked and its tests run
// before it is stored. If-Match makes the write conditional on the set the
// author read.
func (s *server) handlePutPolicy() gin.HandlerFunc {
	return func(c *gin.Context) {
		// curl --data-binary, as OPA's documentation pushes a policy,
		// sends application/x-www-form-urlencoded; the body is never
		// read as a form.
		body, err := s.readBody(c, s.opts.MaxPolicyBytes, "text/plain", "application/octet-stream", "application/x-www-form-urlencoded")
		if err != nil {
			s.writeError(c, err)
			return
		}
		id := policyID(c)
		s.changePolicies(c, func(files map[string][]byte) error {
			files[id] = body
			return nil
		}, "put "+id)
	}
}

// handleDeletePolicy answers DELETE /v1/policies/{id}.
func (s *server) handleDeletePolicy() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := policyID(c)
		s.changePolicies(c, func(files map[string][]byte) error {
			if _, ok := files[id]; !ok {
				return errorf(codeNotFound, fmt.Sprintf("no policy file %q", id))
			}
			delete(files, id)
			return nil
		}, "delete "+id)
	}
}

type putSetRequest struct {
	Files   map[string]string `json:"files"`
	Message string            `json:"message"`
}

// handlePutPolicySet answers PUT /v1/policies: a whole set at once (what
// `warden policy push` sends), replacing every file atomically.
func (s *server) handlePutPolicySet() gin.HandlerFunc {
	return func(c *gin.Context) {
		var req putSetRequest
		if err := s.decodeJSONUpTo(c, &req, s.opts.MaxPolicyBytes); err != nil {
			s.writeError(c, err)
			return
		}
		s.changePolicies(c, func(files map[string][]byte) error {
			clear(files)
			for name, content := range req.Files {
				files[name] = []byte(content)
			}
			return nil
		}, req.Message)
	}
}

// changePolicies applies change to a copy of the stored set's files and
// proposes the result, conditional on If-Match when given, else on the set
// just read.
func (s *server) changePolicies(c *gin.Context, change func(map[string][]byte) error, message string) {
	set, err := s.policies.Current(c.Request.Context())
	if err != nil && !errors.Is(err, policyset.ErrNoSet) {
		s.writeError(c, err)
		return
	}
	files := maps.Clone(set.Files)
	if files == nil {
		files = map[string][]byte{}
	}
	if err := change(files); err != nil {
		s.writeError(c, err)
		return
	}
	s.storeChange(c, set, files, message)
}

// storeChange is the one way the admin API changes the policy set: from
// before (as read) to files. The admin policy is asked again, now that it
// can see what the change touches (input.resource, see changeResource), so
// that it can keep some admins away from some files, the admin policy's
// own above all. The set is then checked and stored in place of before (or
// of the revision If-Match names). A change to the admin policy is a
// security event: logged at warn, counted, and said in the stored set's
// message, which the UI shows with the revision.
func (s *server) storeChange(c *gin.Context, before policyset.Set, files map[string][]byte, message string) {
	expected := before.KVRevision
	if m := c.GetHeader("If-Match"); m != "" {
		n, err := strconv.ParseUint(strings.Trim(m, `"`), 10, 64)
		if err != nil {
			s.writeError(c, errorf(codeInvalidRequest, "If-Match must be the ETag of a GET, e.g. \"12\""))
			return
		}
		expected = n
	}
	ctx := c.Request.Context()
	who := admin(c)
	resource := changeResource(before.Files, files)
	if err := s.admit(ctx, who, c.Request.Method+" "+c.FullPath(), resource); err != nil {
		s.writeError(c, err)
		return
	}
	adminPolicy := touchesAdminPolicy(resource)
	if adminPolicy {
		message += " (changes the admin policy, warden.admin)"
	}
	stored, err := s.policies.Propose(ctx, files, expected, who.Subject, message)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if adminPolicy {
		s.metrics.adminPolicyChanges.Inc()
		s.logger.WarnContext(ctx, "security: the admin policy was changed", "actor", who.Subject, "issuer", who.Issuer,
			"revision", stored.Revision, "kv_revision", stored.KVRevision, "files", resource["files"])
	}
	c.Header("ETag", etag(stored.KVRevision))
	c.JSON(http.StatusOK, StoredSet{Revision: stored.Revision, KVRevision: stored.KVRevision})
}

type testRequest struct {
	Files    map[string]string `json:"files"` // a draft set; absent: the stored set
	Run      string            `json:"run"`
	Coverage bool              `json:"coverage"`
}

// handleTestPolicies answers POST /v1/policies/test: the tests of the stored
// set or of a draft set sent in the body, with per-test results and
// optionally coverage. The set is first checked as activation would check it
// (compiled with this server's built-ins, the entrypoint's allow rule
// defined), so a draft that passes here is refused on activation only for
// failing tests.
func (s *server) handleTestPolicies() gin.HandlerFunc {
	return func(c *gin.Context) {
		var req testRequest
		if err := s.decodeJSONUpTo(c, &req, s.opts.MaxPolicyBytes); err != nil {
			s.writeError(c, err)
			return
		}
		fsys, err := s.draftOrCurrent(c.Request.Context(), req.Files)
		if err != nil {
			s.writeError(c, err)
			return
		}
		report, err := s.drafts.Test(c.Request.Context(), fsys, decision.TestOptions{Run: req.Run, Coverage: req.Coverage})
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, report)
	}
}

// explainRequest is a decision request plus an optional draft set. The token
// must be in the body: the Authorization header carries the admin's.
type explainRequest struct {
	Token    string            `json:"token"`
	Action   string            `json:"action"`
	Resource map[string]any    `json:"resource"`
	Context  map[string]any    `json:"context"`
	Files    map[string]string `json:"files"` // a draft set; absent: the active set
	// Request explains the decision on an HTTP request a proxy asks about,
	// instead of an action: input.request as the proxy routes build it.
	Request *explainHTTPRequest `json:"request"`
}

// explainHTTPRequest is the original request a proxy would describe.
type explainHTTPRequest struct {
	Method  string            `json:"method"`
	URI     string            `json:"uri"` // path and query, as sent
	Host    string            `json:"host"`
	Headers map[string]string `json:"headers"`
}

// handleExplain answers POST /v1/explain: a decision as POST /v1/decision
// makes it, with the policy input, the evaluation trace and the rules that
// fired; against a draft set when the body carries one.
func (s *server) handleExplain() gin.HandlerFunc {
	return func(c *gin.Context) {
		var req explainRequest
		if err := s.decodeJSONUpTo(c, &req, s.opts.MaxPolicyBytes); err != nil {
			s.writeError(c, err)
			return
		}
		var proxied *decision.Request
		if r := req.Request; r != nil {
			if req.Action != "" {
				s.writeError(c, errorf(codeInvalidRequest, "send an action or a request, not both: a request's action comes from its route"))
				return
			}
			h := http.Header{}
			for name, value := range r.Headers {
				h.Set(name, value)
			}
			var err error
			if proxied, err = newProxyRequest(r.Method, r.URI, r.Host, h, s.opts.Proxy.TokenHeader); err != nil {
				s.writeError(c, errorf(codeInvalidRequest, "request: "+err.Error()))
				return
			}
		} else if err := requireAction(req.Action); err != nil {
			s.writeError(c, err)
			return
		}
		ctx := c.Request.Context()
		cl, err := s.verifier.Verify(ctx, req.Token)
		if err != nil {
			reason := s.tokenReason(ctx, err)
			c.JSON(http.StatusOK, gin.H{"decision": decisionResponse{Reason: reason, Reasons: []string{}, PolicyRevision: s.engine.Revision()}})
			return
		}
		var draft fs.FS
		if req.Files != nil {
			draft = draftFS(req.Files)
		}
		ex, err := s.drafts.Explain(ctx, decision.Input{Claims: cl, Action: req.Action, Resource: req.Resource, Context: req.Context, Request: proxied}, draft)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, ex)
	}
}

// draftOrCurrent is the draft set of a request body, or the stored set.
func (s *server) draftOrCurrent(ctx context.Context, files map[string]string) (fs.FS, error) {
	if files != nil {
		return draftFS(files), nil
	}
	set, err := s.policies.Current(ctx)
	if err != nil {
		return nil, err
	}
	return set.FS(), nil
}

func draftFS(files map[string]string) fs.FS {
	m := fstest.MapFS{}
	for name, content := range files {
		m[path.Clean(name)] = &fstest.MapFile{Data: []byte(content)}
	}
	return m
}

// policyID is the {id} of a policy route: the file's path in the set. An
// id without the suffix of a file kind is an OPA policy id ("example",
// "authz/rules"), whose module is the file <id>.rego: OPA's clients name a
// module by an id of their choice.
func policyID(c *gin.Context) string {
	id := strings.TrimPrefix(c.Param("id"), "/")
	if id != "" && decision.KindOf(id) == "" {
		id += ".rego"
	}
	return id
}

func etag(kvRevision uint64) string { return `"` + strconv.FormatUint(kvRevision, 10) + `"` }
