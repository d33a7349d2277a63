package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wardenauthz/warden/claims"
)

// The development issuer: used when no issuer is configured, so that Warden
// runs with nothing to set up. Its ES256 key is generated on first start and
// kept in the data directory.
const (
	devIssuerName = "warden-dev"
	devAudience   = "warden"
	devKeyFile    = "dev-issuer.key.pem" // private key, PKCS#8, mode 0600
	devPublicFile = "dev-issuer.pub.jwk" // public JWK the verifier loads
)

type devIssuer struct {
	key *ecdsa.PrivateKey
	kid string
	dir string
}

// loadDevIssuer reads the development key from dataDir, generating it the
// first time. created reports whether it was generated now.
func loadDevIssuer(dataDir string) (d *devIssuer, created bool, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("data_dir: %w", err)
	}
	path := filepath.Join(dataDir, devKeyFile)
	key, err := readDevKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = writeDevKey(path)
		created = err == nil
	}
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, false, fmt.Errorf("development key: %w", err)
	}
	sum := sha256.Sum256(der)
	d = &devIssuer{key: key, kid: "warden-dev-" + hex.EncodeToString(sum[:6]), dir: dataDir}
	return d, created, d.writePublicJWK()
}

func readDevKey(path string) (*ecdsa.PrivateKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("development key %s is readable by others (mode %v); run: chmod 600 %s", path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("development key %s is not PEM; delete it to generate a new one", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("development key %s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("development key %s is not a P-256 key; delete it to generate a new one", path)
	}
	return key, nil
}

func writeDevKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	// O_EXCL: two processes starting at once must not overwrite each
	// other's key; the loser reads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readDevKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("development key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, fmt.Errorf("development key: %w", err)
	}
	return key, f.Close()
}

func (d *devIssuer) publicPath() string { return filepath.Join(d.dir, devPublicFile) }

func (d *devIssuer) writePublicJWK() error {
	jwk, err := jwkset.NewJWKFromKey(&d.key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: d.kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig},
	})
	if err != nil {
		return fmt.Errorf("development key: %w", err)
	}
	raw, err := json.Marshal(jwk.Marshal())
	if err != nil {
		return fmt.Errorf("development key: %w", err)
	}
	if cur, err := os.ReadFile(d.publicPath()); err == nil && bytes.Equal(cur, raw) {
		return nil
	}
	// Written aside and renamed into place: replicas sharing the data
	// directory start together, and one must never read another's
	// half-written file.
	tmp, err := os.CreateTemp(d.dir, devPublicFile+".*")
	if err != nil {
		return fmt.Errorf("development key: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing is there
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return fmt.Errorf("development key: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("development key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("development key: %w", err)
	}
	if err := os.Rename(tmp.Name(), d.publicPath()); err != nil {
		return fmt.Errorf("development key: %w", err)
	}
	return nil
}

// issuerConfig is the verifier configuration that trusts the development
// issuer, and only with ES256.
func (d *devIssuer) issuerConfig() claims.IssuerConfig {
	return claims.IssuerConfig{
		Issuer:     devIssuerName,
		Audiences:  []string{devAudience},
		PublicKeys: []string{d.publicPath()},
		Algorithms: []string{"ES256"},
	}
}

// mint signs a development token for sub with roles, living ttl from now.
// extra claims are added as given and may override the defaults.
func (d *devIssuer) mint(sub string, roles []string, ttl time.Duration, extra map[string]any, now time.Time) (string, error) {
	jti := make([]byte, 12)
	rand.Read(jti)
	c := jwt.MapClaims{
		"iss":   devIssuerName,
		"aud":   devAudience,
		"sub":   sub,
		"iat":   now.Unix(),
		"exp":   now.Add(ttl).Unix(),
		"jti":   hex.EncodeToString(jti),
		"roles": roles,
	}
	for k, v := range extra {
		c[k] = v
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = d.kid
	t.Header["typ"] = "JWT"
	return t.SignedString(d.key)
}
