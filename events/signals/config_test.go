package signals

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := TransmitterConfig{
		Name: "okta", Issuer: "https://idp.example.com", Audiences: []string{"warden"},
		ConfigURL: "https://idp.example.com/.well-known/ssf-configuration", AuthorizationFile: "/etc/warden/okta.auth",
	}
	if err := (Config{Transmitters: []TransmitterConfig{good}}).Validate(); err != nil {
		t.Fatalf("a good transmitter: %v", err)
	}
	tests := []struct {
		name string
		edit func(*TransmitterConfig)
		want string
	}{
		{"bad name", func(c *TransmitterConfig) { c.Name = "Okta/1" }, ".name"},
		{"no issuer", func(c *TransmitterConfig) { c.Issuer = "" }, ".issuer"},
		{"no audiences", func(c *TransmitterConfig) { c.Audiences = nil }, ".audiences"},
		{"no keys", func(c *TransmitterConfig) { c.ConfigURL = "" }, "has no keys"},
		{"plain http config_url", func(c *TransmitterConfig) { c.ConfigURL = "http://idp.example.com/x" }, ".config_url"},
		{"plain http poll url", func(c *TransmitterConfig) {
			c.Poll = PollConfig{URL: "http://idp.example.com/poll", AuthorizationFile: "f"}
		}, ".poll.url"},
		{"poll without credential", func(c *TransmitterConfig) { c.Poll.URL = "https://idp.example.com/poll" }, ".poll.authorization_file"},
		{"no authorization", func(c *TransmitterConfig) { c.AuthorizationFile = "" }, ".authorization_file"},
		{"unknown mapping target", func(c *TransmitterConfig) { c.Mapping = map[string]string{CAEPSessionRevoked: "logout"} }, "mapping"},
		{"unknown subject rule", func(c *TransmitterConfig) { c.Subjects.Email = "lowercase" }, "subjects.email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			err := (Config{Transmitters: []TransmitterConfig{c}}).Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if err := (Config{Transmitters: []TransmitterConfig{good, good}}).Validate(); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Errorf("two transmitters named alike: %v", err)
	}
}
