package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "warden.yaml", `
listen: 127.0.0.1:9000
data_dir: /from/file
tokens:
  leeway: 10s
  max_lifetime: 30m
policies:
  eval_timeout: 20ms
`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		{"defaults", nil, nil, func(c *Config) {}},
		{"file over defaults", []string{"--config", file}, nil, func(c *Config) {
			c.Listen, c.DataDir = "127.0.0.1:9000", "/from/file"
			c.Tokens.Leeway, c.Tokens.MaxLifetime = 10*time.Second, 30*time.Minute
			c.Policies.EvalTimeout = 20 * time.Millisecond
		}},
		{"config file from environment", nil, map[string]string{"WARDEN_CONFIG": file}, func(c *Config) {
			c.Listen, c.DataDir = "127.0.0.1:9000", "/from/file"
			c.Tokens.Leeway, c.Tokens.MaxLifetime = 10*time.Second, 30*time.Minute
			c.Policies.EvalTimeout = 20 * time.Millisecond
		}},
		{"environment over file", []string{"--config", file}, map[string]string{
			"WARDEN_LISTEN": "127.0.0.1:9100", "WARDEN_DATA_DIR": "/from/env", "WARDEN_TOKENS_LEEWAY": "20s",
		}, func(c *Config) {
			c.Listen, c.DataDir = "127.0.0.1:9100", "/from/env"
			c.Tokens.Leeway, c.Tokens.MaxLifetime = 20*time.Second, 30*time.Minute
			c.Policies.EvalTimeout = 20 * time.Millisecond
		}},
		{"flags over environment", []string{"--config", file, "--listen", "127.0.0.1:9200", "--tokens-leeway=1m"}, map[string]string{
			"WARDEN_LISTEN": "127.0.0.1:9100", "WARDEN_DATA_DIR": "/from/env",
		}, func(c *Config) {
			c.Listen, c.DataDir = "127.0.0.1:9200", "/from/env"
			c.Tokens.Leeway, c.Tokens.MaxLifetime = time.Minute, 30*time.Minute
			c.Policies.EvalTimeout = 20 * time.Millisecond
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadConfig("serve", tt.args, env(tt.env), io.Discard, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := defaultConfig()
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string
		env     map[string]string
		wantErr []string
	}{
		{"unknown key", "listen: 127.0.0.1:1\nlisen: x\n", nil, nil, []string{"line 2", "unknown key lisen"}},
		{"unknown nested key", "tokens:\n  leway: 10s\n", nil, nil, []string{"unknown key leway"}},
		{"bad duration", "tokens:\n  leeway: soon\n", nil, nil, []string{"soon"}},
		{"bad listen", "", []string{"--listen", "nonsense"}, nil, []string{"listen:", "host:port"}},
		{"leeway too large", "", nil, map[string]string{"WARDEN_TOKENS_LEEWAY": "10m"}, []string{"tokens.leeway"}},
		{"bad env value", "", nil, map[string]string{"WARDEN_TOKENS_MAX_SIZE": "big"}, []string{"WARDEN_TOKENS_MAX_SIZE"}},
		{"bad entrypoint", "", []string{"--policies-entrypoint", "data.x y"}, nil, []string{"policies.entrypoint"}},
		{"bad default decision", "", []string{"--opa-default-decision", "data.x y"}, nil, []string{"opa.default_decision", "warden/authz/allow"}},
		{"zero timeout", "", []string{"--policies-eval-timeout", "0s"}, nil, []string{"policies.eval_timeout"}},
		{"issuer without keys", "tokens:\n  issuers:\n    - issuer: https://idp.example.com/\n      audiences: [api]\n", nil, nil, []string{"tokens.issuers"}},
		{"stray argument", "", []string{"extra"}, nil, []string{`unexpected argument "extra"`}},
		{"bad outage mode", "events:\n  on_disconnect: panic\n", nil, nil, []string{"events.on_disconnect", "fresh_only, deny, allow"}},
		{"zero grace", "", []string{"--events-grace", "0s"}, nil, []string{"events.grace"}},
		{"embedded listen with a URL", "", []string{"--events-nats-url", "nats://x:4222", "--events-embedded-listen", "127.0.0.1:4222"}, nil, []string{"events.embedded_listen"}},
		{"half a client certificate", "", []string{"--events-tls-cert-file", "c.pem"}, nil, []string{"events.tls_key_file"}},
		{"negative decision cache", "", []string{"--policies-decision-cache", "-1"}, nil, []string{"policies.decision_cache"}},
		{"transmitter without authorization", "signals:\n  transmitters:\n    - name: okta\n      issuer: https://idp.example.com\n      audiences: [warden]\n      jwks_url: https://idp.example.com/jwks\n", nil, nil, []string{"signals.transmitters[0].authorization_file"}},
		{"unknown transmitter key", "signals:\n  transmitters:\n    - name: okta\n      jwks_uri: https://idp.example.com/jwks\n", nil, nil, []string{"unknown key jwks_uri"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, "warden.yaml", tt.file)}, args...)
			}
			_, err := loadConfig("serve", args, env(tt.env), io.Discard, nil)
			if err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// TestDeployConfig: the configuration the Kubernetes manifests ship
// (deploy/kubernetes/warden.yaml) is one warden serve accepts.
func TestDeployConfig(t *testing.T) {
	data, err := os.ReadFile("../../deploy/kubernetes/warden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var text string
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "ConfigMap" {
			text = doc.Data["warden.yaml"]
		}
	}
	if text == "" {
		t.Fatal("no warden.yaml in the manifests' ConfigMap")
	}
	path := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig("serve", []string{"--config", path}, env(nil), io.Discard, nil)
	if err != nil {
		t.Fatalf("the shipped Kubernetes configuration: %v", err)
	}
	if len(cfg.Tokens.Issuers) == 0 || cfg.Events.StreamReplicas != 3 || cfg.DecisionAPI.ClientTokensFile == "" {
		t.Errorf("config %+v: want an issuer, 3 stream replicas and caller authentication", cfg)
	}
}
