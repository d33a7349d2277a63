package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gin-gonic/gin"
)

// dataPath is the {path} of a /v1/data route as keys: warden/roles ->
// ["warden","roles"].
func dataPath(c *gin.Context) []string {
	p := strings.Trim(c.Param("path"), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// handleGetData answers GET /v1/data/{path} as OPA does, {"result": value},
// for the base documents of the stored set (data files, not rules).
func (s *server) handleGetData() gin.HandlerFunc {
	return func(c *gin.Context) {
		set, err := s.policies.Current(c.Request.Context())
		if err != nil {
			s.writeError(c, err)
			return
		}
		v, ok, err := set.Data(dataPath(c))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Header("ETag", etag(set.KVRevision))
		if !ok {
			c.JSON(http.StatusOK, gin.H{}) // OPA: an undefined document has no "result"
			return
		}
		c.JSON(http.StatusOK, gin.H{"result": v})
	}
}

// handlePutData answers PUT /v1/data/{path}: the JSON body becomes the
// document at path; the whole new set is checked and tested before it is
// stored.
func (s *server) handlePutData() gin.HandlerFunc {
	return func(c *gin.Context) {
		var value any
		if err := s.decodeJSONValue(c, "application/json", &value); err != nil {
			s.writeError(c, err)
			return
		}
		path := dataPath(c)
		s.changeData(c, path, func(any, bool) (any, error) { return value, nil })
	}
}

// handlePatchData answers PATCH /v1/data/{path}: a JSON Patch (RFC 6902)
// applied to the document at path, as OPA's API takes it.
func (s *server) handlePatchData() gin.HandlerFunc {
	return func(c *gin.Context) {
		var ops json.RawMessage
		if err := s.decodeJSONValue(c, "application/json-patch+json", &ops); err != nil {
			s.writeError(c, err)
			return
		}
		patch, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			s.writeError(c, errorf(codeInvalidRequest, "not a JSON Patch: "+err.Error()))
			return
		}
		s.changeData(c, dataPath(c), func(cur any, ok bool) (any, error) {
			if !ok {
				return nil, errorf(codeNotFound, "no document at "+c.Param("path")+" to patch")
			}
			doc, _ := json.Marshal(cur)
			out, err := patch.Apply(doc)
			if err != nil {
				return nil, errorf(codeInvalidRequest, "the patch does not apply: "+err.Error())
			}
			var v any
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.UseNumber()
			return v, dec.Decode(&v)
		})
	}
}

// changeData computes the new document at path from the current one and
// proposes the set with it.
func (s *server) changeData(c *gin.Context, path []string, change func(cur any, ok bool) (any, error)) {
	ctx := c.Request.Context()
	set, err := s.policies.Current(ctx)
	if err != nil {
		s.writeError(c, err)
		return
	}
	cur, ok, err := set.Data(path)
	if err != nil {
		s.writeError(c, err)
		return
	}
	value, err := change(cur, ok)
	if err != nil {
		s.writeError(c, err)
		return
	}
	files, err := set.WithData(path, value)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.storeChange(c, set, files, "data "+strings.Join(path, "/"))
}

// decodeJSONValue reads any JSON value (not only an object) of the given
// media type, as strictly as decodeJSON.
func (s *server) decodeJSONValue(c *gin.Context, mediaType string, v any) error {
	return s.decodeBody(c, mediaType, s.opts.MaxPolicyBytes, v)
}
