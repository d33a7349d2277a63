package web

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// extAuthz is Envoy's external authorization service over gRPC
// (envoy.service.auth.v3.Authorization/Check), on the listener
// proxy.grpc_listen. It decides through proxyDecide, as the HTTP proxy
// routes do, and answers in Envoy's terms:
//
//   - allow: OK, with the policy's headers (and the decision id) added to
//     the request upstream, the token's header removed when
//     ProxyOptions.RemoveAuthorization;
//   - token problems: UNAUTHENTICATED with a 401 denied response carrying
//     the RFC 6750 challenge (and the refresh hint for a stale token);
//   - a policy deny or a request Warden will not decide on:
//     PERMISSION_DENIED with a 403 denied response.
//
// The decision id, reason, subject and policy revision travel as dynamic
// metadata, for Envoy's access log. A replica that cannot decide answers the
// gRPC error UNAVAILABLE, which Envoy turns into its status_on_error (403
// by default) unless failure_mode_allow is set.
type extAuthz struct {
	authv3.UnimplementedAuthorizationServer
	s *server
}

// Check answers one CheckRequest.
func (a extAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s := a.s
	if p, ok := peer.FromContext(ctx); !ok || !s.trustedPeer(p.Addr.String()) {
		if ok {
			s.untrustedProxy(ctx, p.Addr.String())
		}
		return nil, status.Error(codes.PermissionDenied, "this address is not a trusted proxy (proxy.trusted_proxies)")
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return deniedResponse(http.StatusForbidden, codes.PermissionDenied, nil, errorBody(codeForbidden, "the CheckRequest holds no HTTP request")), nil
	}
	// Envoy sends headers as a map (names lower-cased, repeated values
	// joined with ","), or as a list with encode_raw_headers.
	header := http.Header{}
	for name, value := range h.GetHeaders() {
		if !strings.HasPrefix(name, ":") {
			header.Add(name, value)
		}
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if strings.HasPrefix(hv.GetKey(), ":") {
			continue
		}
		value := hv.GetValue()
		if value == "" {
			value = string(hv.GetRawValue())
		}
		header.Add(hv.GetKey(), value)
	}
	request, err := newProxyRequest(h.GetMethod(), h.GetPath(), h.GetHost(), header, s.opts.Proxy.TokenHeader)
	if err != nil {
		s.logger.DebugContext(ctx, "envoy check refused", "err", err)
		return deniedResponse(http.StatusForbidden, codes.PermissionDenied, nil, errorBody(codeForbidden, err.Error())), nil
	}
	token := s.proxyToken(header)
	v, err := s.proxyDecide(ctx, token, request, validRequestID(header.Get(requestIDHeader)))
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}

	resp := v.resp
	metadata := &structpb.Struct{Fields: map[string]*structpb.Value{
		"decision_id": structpb.NewStringValue(resp.DecisionID), "allow": structpb.NewBoolValue(resp.Allow),
		"reason": structpb.NewStringValue(string(resp.Reason)), "subject": structpb.NewStringValue(resp.Subject),
		"policy_revision": structpb.NewStringValue(resp.PolicyRevision),
	}}
	if resp.Allow {
		ok := &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{setHeader(decisionIDHeader, resp.DecisionID)}}
		for _, name := range slices.Sorted(maps.Keys(resp.headers)) {
			ok.Headers = append(ok.Headers, setHeader(name, resp.headers[name]))
		}
		if s.opts.Proxy.RemoveAuthorization {
			ok.HeadersToRemove = []string{strings.ToLower(s.opts.Proxy.TokenHeader)}
		}
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: metadata,
		}, nil
	}
	headers := []*corev3.HeaderValueOption{setHeader(decisionIDHeader, resp.DecisionID), setHeader(reasonHeader, string(resp.Reason))}
	code := codes.PermissionDenied
	if v.status == http.StatusUnauthorized {
		code = codes.Unauthenticated
		headers = append(headers, setHeader("WWW-Authenticate", v.challenge))
	}
	body, _ := json.Marshal(resp) // strings, bools and a slice of strings
	out := deniedResponse(v.status, code, headers, body)
	out.Status.Message = string(resp.Reason)
	out.DynamicMetadata = metadata
	return out, nil
}

// deniedResponse is a CheckResponse that has Envoy answer the client with
// httpStatus, headers and a JSON body.
func deniedResponse(httpStatus int, code codes.Code, headers []*corev3.HeaderValueOption, body []byte) *authv3.CheckResponse {
	headers = append(headers, setHeader("Content-Type", "application/json; charset=utf-8"))
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(httpStatus)},
			Headers: headers,
			Body:    string(body),
		}},
	}
}

// setHeader sets a header, replacing any the request already has: a
// client's own X-Warden-Subject never reaches the upstream.
func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: strings.ToLower(name), Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// errorBody is the API's error shape.
func errorBody(code, message string) []byte {
	b, _ := json.Marshal(ErrorBody{Error: APIError{Code: code, Message: message}})
	return b
}
