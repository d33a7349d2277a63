package signals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/wardenauthz/warden/claims"
)

// PollConfig makes Warden poll a transmitter that only offers poll
// delivery (RFC 8936).
type PollConfig struct {
	// URL is the transmitter's poll endpoint (the stream's
	// delivery.endpoint_url). Empty: no polling.
	URL string `yaml:"url"`
	// AuthorizationFile holds the Authorization header value Warden sends
	// with every poll (the credential the transmitter issued).
	AuthorizationFile string `yaml:"authorization_file"`
	// Interval is the pause after a poll that returned nothing. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// MaxEvents is maxEvents of each request. Default 100.
	MaxEvents int `yaml:"max_events"`
}

// pollRequest is RFC 8936 §2.4's request body.
type pollRequest struct {
	Ack               []string          `json:"ack"`
	SetErrs           map[string]setErr `json:"setErrs,omitempty"`
	ReturnImmediately bool              `json:"returnImmediately"`
	MaxEvents         int               `json:"maxEvents"`
}

type setErr struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// pollResponse is RFC 8936 §2.5's response body.
type pollResponse struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// maxPollResponse bounds a poll response: maxEvents SETs of MaxSETBytes.
func maxPollResponse(maxEvents int) int64 { return int64(maxEvents)*(MaxSETBytes+1024) + 4096 }

// Poll polls every transmitter that has a poll URL until ctx ends. Every
// replica configured with it polls: that is correct because each SET is
// applied once whichever replica receives it (the jti is deduplicated in
// the bucket, and concurrently by Nats-Msg-Id), and a SET is acknowledged
// only after it was published and recorded. Acknowledgements are not
// kept across a restart: a SET received but not yet acknowledged is
// delivered again by the transmitter (RFC 8936 §2.3), found in the bucket
// and acknowledged then, so none is lost and none applied twice.
func (r *Receiver) Poll(ctx context.Context) {
	for _, t := range r.transmitters {
		if t.cfg.Poll.URL != "" {
			go r.poll(ctx, t)
		}
	}
}

func (r *Receiver) poll(ctx context.Context, t *transmitter) {
	p := t.cfg.Poll
	interval := p.Interval
	if interval <= 0 {
		interval = time.Second
	}
	maxEvents := p.MaxEvents
	if maxEvents <= 0 {
		maxEvents = 100
	}
	req := pollRequest{Ack: []string{}, ReturnImmediately: true, MaxEvents: maxEvents}
	for ctx.Err() == nil {
		resp, err := r.pollOnce(ctx, t, req, maxEvents)
		if err != nil {
			// The acknowledgements are sent again with the next poll.
			r.log.Warn("signals: poll failed", "transmitter", t.cfg.Name, "err", err)
			sleep(ctx, interval)
			continue
		}
		req.Ack, req.SetErrs = []string{}, nil
		for jti, set := range resp.Sets {
			d, err := r.receive(ctx, t, set)
			r.count(t.cfg.Name, d, err)
			var se *Error
			switch {
			case err == nil:
				req.Ack = append(req.Ack, jti)
			case errors.As(err, &se):
				if req.SetErrs == nil {
					req.SetErrs = map[string]setErr{}
				}
				req.SetErrs[jti] = setErr{Err: se.Code, Description: se.Description}
				r.log.Warn("signal refused", "transmitter", t.cfg.Name, "jti", claims.Clip(jti), "err", se.Code, "description", se.Description, "cause", se.Cause)
			default:
				// NATS failed: neither acknowledged nor refused, so the
				// transmitter delivers it again.
				r.log.Warn("signals: polled SET not applied", "transmitter", t.cfg.Name, "jti", claims.Clip(jti), "err", err)
			}
		}
		if len(resp.Sets) == 0 && !resp.MoreAvailable && len(req.Ack) == 0 && len(req.SetErrs) == 0 {
			sleep(ctx, interval)
		}
	}
}

// pollOnce sends one poll request and decodes the answer.
func (r *Receiver) pollOnce(ctx context.Context, t *transmitter, body pollRequest, maxEvents int) (pollResponse, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return pollResponse{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.cfg.Poll.URL, bytes.NewReader(data))
	if err != nil {
		return pollResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", string(t.pollAuthorization))
	resp, err := r.client.Do(req)
	if err != nil {
		return pollResponse{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pollResponse{}, fmt.Errorf("POST %s: %s", t.cfg.Poll.URL, resp.Status)
	}
	var out pollResponse
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxPollResponse(maxEvents)))
	if err := dec.Decode(&out); err != nil {
		return pollResponse{}, fmt.Errorf("POST %s: %w", t.cfg.Poll.URL, err)
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
