package claims

import "time"

// Defaults and bounds of Config.
const (
	DefaultLeeway      = 30 * time.Second
	MaxLeeway          = 5 * time.Minute
	DefaultMaxLifetime = time.Hour
	DefaultMaxSize     = 8192
)

// Config is the tokens section of Warden's configuration.
type Config struct {
	Leeway      time.Duration  `yaml:"leeway"`
	MaxLifetime time.Duration  `yaml:"max_lifetime"`
	MaxSize     int            `yaml:"max_size"`
	Issuers     []IssuerConfig `yaml:"issuers"`
}

// IssuerConfig is one trusted issuer and where its keys come from.
type IssuerConfig struct {
	Issuer                 string   `yaml:"issuer"`
	Audiences              []string `yaml:"audiences"`
	JWKSURL                string   `yaml:"jwks_url"`
	PublicKeys             []string `yaml:"public_keys"`
	HMACSecretFile         string   `yaml:"hmac_secret_file"`
	Algorithms             []string `yaml:"algorithms"`
	RequiredType           string   `yaml:"required_type"`
	PermissionVersionClaim string   `yaml:"permission_version_claim"`
}
