package claims

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// This file decides which key may verify which token. RFC 8725 §3.1: "each
// key MUST be used with exactly one algorithm, and this MUST be checked when
// the cryptographic operation is performed". Every key therefore carries the
// set of algorithms it may verify, fixed when it is loaded (its JWK "alg",
// its curve, the issuer's `algorithms`), and checkKeyAlg is consulted for
// every verification, by the Verifier and by the Wycheproof test alike.

// algSet is a set of JWS algorithms, one bit each.
type algSet uint16

// algBits are the algorithms Warden knows. Anything else, "none" first of
// all, is refused before a key is looked up.
var algBits = map[string]algSet{
	"RS256": 1 << 0, "RS384": 1 << 1, "RS512": 1 << 2,
	"PS256": 1 << 3, "PS384": 1 << 4, "PS512": 1 << 5,
	"ES256": 1 << 6, "ES384": 1 << 7, "ES512": 1 << 8,
	"EdDSA": 1 << 9,
	"HS256": 1 << 10, "HS384": 1 << 11, "HS512": 1 << 12,
}

const (
	rsaAlgs  = algSet(0b111111)
	hmacAlgs = algSet(0b111 << 10)
)

func (s algSet) has(alg string) bool { return s&algBits[alg] != 0 }

// names lists the set in a stable order, for messages.
func (s algSet) names() []string {
	var out []string
	for name, bit := range algBits {
		if s&bit != 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func (s algSet) String() string { return "[" + strings.Join(s.names(), " ") + "]" }

// keyKind is what a key is, down to the curve: the unit of "a key is only
// ever used with its own algorithm family and curve".
type keyKind uint8

const (
	kindRSA keyKind = iota + 1
	kindP256
	kindP384
	kindP521
	kindEd25519
	kindHMAC
)

// algs are the algorithms a key of this kind could ever verify.
func (k keyKind) algs() algSet {
	switch k {
	case kindRSA:
		return rsaAlgs
	case kindP256:
		return algBits["ES256"]
	case kindP384:
		return algBits["ES384"]
	case kindP521:
		return algBits["ES512"]
	case kindEd25519:
		return algBits["EdDSA"]
	case kindHMAC:
		return hmacAlgs
	}
	return 0
}

func (k keyKind) String() string {
	return [...]string{"unknown", "RSA", "EC P-256", "EC P-384", "EC P-521", "Ed25519", "HMAC"}[k]
}

// verifyKey is a key ready for verification, with the algorithms it may
// verify. It is immutable once built; key sets share pointers to it, and the
// verification cache uses pointer identity to notice that a key is gone.
type verifyKey struct {
	kid     string
	kind    keyKind
	algs    algSet
	pub     any  // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (HMAC)
	dynamic bool // from a JWKS: may disappear at the next refresh
	origin  string
}

// newVerifyKey classifies pub and fixes its algorithms. jwkAlg is the JWK's
// "alg" ("" for PEM keys and JWKs without one); pins is the issuer's
// `algorithms` (0 when not configured).
func newVerifyKey(pub any, kid, jwkAlg string, pins algSet, origin string) (*verifyKey, error) {
	kind, err := classifyKey(pub)
	if err != nil {
		return nil, err
	}
	algs, err := keyAlgs(kind, jwkAlg, pins)
	if err != nil {
		return nil, err
	}
	return &verifyKey{kid: kid, kind: kind, algs: algs, pub: pub, origin: origin}, nil
}

// keyAlgs fixes the algorithms of a key:
//   - a JWK "alg" pins the key to that one algorithm, which must fit the key
//     and be among the issuer's algorithms when those are configured;
//   - otherwise an EC or Ed25519 key has exactly one algorithm by its curve;
//   - otherwise (RSA, HMAC) the key gets the issuer's algorithms of its
//     family, or, when the issuer configures none, RS256 or HS256 only.
//     Listing both RS256 and PS256 for an issuer whose keys carry no "alg" is
//     the one way to let a key verify two algorithms, and it is explicit.
func keyAlgs(kind keyKind, jwkAlg string, pins algSet) (algSet, error) {
	if jwkAlg != "" {
		name := jwkAlg
		if name == "ES521" && kind == kindP521 {
			// A common misspelling of ES512 (it is in Wycheproof's copy of
			// the RFC 7520 key). On a P-521 key it can only mean ES512.
			name = "ES512"
		}
		bit, ok := algBits[name]
		switch {
		case !ok:
			return 0, fmt.Errorf("JWK alg %q is not a supported signature algorithm", jwkAlg)
		case bit&kind.algs() == 0:
			return 0, fmt.Errorf("JWK alg %q does not fit an %v key", jwkAlg, kind)
		case pins != 0 && bit&pins == 0:
			return 0, fmt.Errorf("JWK alg %q is not among the issuer's algorithms %v", jwkAlg, pins)
		}
		return bit, nil
	}
	set := kind.algs()
	switch {
	case pins != 0:
		set &= pins
		if set == 0 {
			return 0, fmt.Errorf("an %v key cannot verify any of the issuer's algorithms %v", kind, pins)
		}
	case kind == kindRSA:
		set = algBits["RS256"]
	case kind == kindHMAC:
		set = algBits["HS256"]
	}
	return set, nil
}

// minRSABits is the floor of RFC 7518 §3.3 for RS* and §3.5 for PS*.
const minRSABits = 2048

// classifyKey says what kind of public key pub is, refusing keys too weak or
// too odd to trust.
func classifyKey(pub any) (keyKind, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < minRSABits {
			return 0, fmt.Errorf("RSA key is shorter than %d bits", minRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return 0, fmt.Errorf("RSA public exponent %d is not an odd number of at least 3", k.E)
		}
		if rocaFingerprint(k.N) {
			return 0, errors.New("RSA key was generated by a library with the ROCA weakness (CVE-2017-15361)")
		}
		return kindRSA, nil
	case *ecdsa.PublicKey:
		// ECDH refuses points that are not on the curve, whatever the source.
		if _, err := k.ECDH(); err != nil {
			return 0, fmt.Errorf("EC key: %w", err)
		}
		switch k.Curve {
		case elliptic.P256():
			return kindP256, nil
		case elliptic.P384():
			return kindP384, nil
		case elliptic.P521():
			return kindP521, nil
		}
		return 0, fmt.Errorf("EC curve %s is not supported", k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, errors.New("Ed25519 key has the wrong length")
		}
		return kindEd25519, nil
	case []byte:
		return 0, errors.New("symmetric keys are accepted only from hmac_secret_file")
	}
	return 0, fmt.Errorf("%T is not a supported signature verification key", pub)
}

// publicHalf returns the public key of key, which may be a private key when
// allowPrivate is set (a static key file the operator controls).
func publicHalf(key any, allowPrivate bool) (any, error) {
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		if !allowPrivate {
			return nil, errors.New("the key set publishes private key material; refusing to use that key")
		}
		return key.(crypto.Signer).Public(), nil
	}
	return key, nil
}

// checkKeyAlg is the one place that says whether key k may verify a token
// signed with alg: the algorithm must be among the key's own, and the Go key
// type and curve must be the ones alg needs (the second check cannot fail for
// keys built by newVerifyKey; it is here so that no future path can pair an
// HMAC secret with a public key or a P-384 key with ES256).
func checkKeyAlg(alg string, k *verifyKey) error {
	if !k.algs.has(alg) {
		return fmt.Errorf("key %q (%v, origin %s) verifies %v, not %s", k.kid, k.kind, k.origin, k.algs, Clip(alg))
	}
	var ok bool
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		_, ok = k.pub.(*rsa.PublicKey)
	case "ES256", "ES384", "ES512":
		pk, isEC := k.pub.(*ecdsa.PublicKey)
		ok = isEC && pk.Curve == curveOf[alg]
	case "EdDSA":
		pk, isEd := k.pub.(ed25519.PublicKey)
		ok = isEd && len(pk) == ed25519.PublicKeySize
	case "HS256", "HS384", "HS512":
		_, ok = k.pub.([]byte)
	}
	if !ok {
		return fmt.Errorf("key %q is a %T, which %s cannot use", k.kid, k.pub, alg)
	}
	return nil
}

// curveOf is the one curve each ES* algorithm is defined on (RFC 7518 §3.4).
var curveOf = map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}

// maxCandidateKeys bounds how many keys one token may make us try. Only a
// token without a kid (or with an unknown kid and an issuer with keys that
// have none) has several candidates; without the bound, an issuer with many
// keys would turn each forged token into many signature verifications.
const maxCandidateKeys = 4

// usableKeys keeps the candidates that may verify alg. No candidates means
// token_unknown_key; candidates of which none fits alg mean
// token_alg_not_allowed: the key exists but is pinned to another algorithm
// or is of another kind (the algorithm confusion attacks land here).
func usableKeys(alg string, candidates []*verifyKey) ([]*verifyKey, *Error) {
	if len(candidates) == 0 {
		return nil, fail(CodeUnknownKey, "", "no key for this kid")
	}
	var out []*verifyKey
	var why error
	for _, k := range candidates {
		if err := checkKeyAlg(alg, k); err != nil {
			why = err
			continue
		}
		out = append(out, k)
	}
	switch {
	case len(out) == 0:
		return nil, fail(CodeAlgNotAllowed, "", "%w", why)
	case len(out) > maxCandidateKeys:
		return nil, fail(CodeUnknownKey, "the token must name its signing key (kid)",
			"%d keys could verify a token without a matching kid", len(out))
	}
	return out, nil
}

// pinPSS returns golang-jwt's PS* method with verification pinned to a salt
// as long as the hash. RFC 7518 §3.5: "The size of the salt value is the same
// size as the hash function output." golang-jwt verifies with
// rsa.PSSSaltLengthAuto by default (VerifyOptions), which accepts any salt
// length and so any signature a differently configured signer produced; the
// Wycheproof PS* vectors with a changed salt length only fail once pinned.
func pinPSS(m *jwt.SigningMethodRSAPSS) *jwt.SigningMethodRSAPSS {
	return &jwt.SigningMethodRSAPSS{
		SigningMethodRSA: m.SigningMethodRSA,
		Options:          m.Options,
		VerifyOptions:    &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash},
	}
}

var pinnedPSS = map[string]jwt.SigningMethod{
	"PS256": pinPSS(jwt.SigningMethodPS256),
	"PS384": pinPSS(jwt.SigningMethodPS384),
	"PS512": pinPSS(jwt.SigningMethodPS512),
}

// signingMethod is the golang-jwt method that verifies alg: the pinned PS*
// methods, golang-jwt's registered methods otherwise. parseHeader has already
// refused every alg outside algBits, so "none" can never get here.
func signingMethod(alg string) jwt.SigningMethod {
	if m, ok := pinnedPSS[alg]; ok {
		return m
	}
	return jwt.GetSigningMethod(alg)
}

// keySet is an immutable set of keys, indexed by kid.
type keySet struct {
	byKID map[string]*verifyKey
	noKID []*verifyKey
	all   []*verifyKey
}

var emptyKeySet = &keySet{byKID: map[string]*verifyKey{}}

// newKeySet indexes keys. Keys sharing a kid are all left out (which one the
// token meant is ambiguous, and guessing is how verifiers get fooled); the
// returned errors say so, for the log.
func newKeySet(keys []*verifyKey) (*keySet, []error) {
	count := map[string]int{}
	for _, k := range keys {
		if k.kid != "" {
			count[k.kid]++
		}
	}
	s := &keySet{byKID: map[string]*verifyKey{}}
	var problems []error
	for _, k := range keys {
		if n := count[k.kid]; n > 1 {
			if _, reported := s.byKID[k.kid]; !reported {
				problems = append(problems, fmt.Errorf("kid %q names %d keys; none of them is used", k.kid, n))
				s.byKID[k.kid] = nil // reported; deleted below
			}
			continue
		}
		if k.kid == "" {
			s.noKID = append(s.noKID, k)
		} else {
			s.byKID[k.kid] = k
		}
		s.all = append(s.all, k)
	}
	for kid, n := range count {
		if n > 1 {
			delete(s.byKID, kid)
		}
	}
	return s, problems
}

// candidates are the keys a token naming kid may have been signed with: the
// key with that kid, else the keys that have no kid (a PEM key, an HMAC
// secret). A token without a kid may have been signed by any key.
func (s *keySet) candidates(kid string) []*verifyKey {
	if kid == "" {
		return s.all
	}
	if k, ok := s.byKID[kid]; ok {
		return []*verifyKey{k}
	}
	return s.noKID
}

// holds reports whether k, by identity, is still in the set.
func (s *keySet) holds(k *verifyKey) bool {
	if k.kid != "" {
		return s.byKID[k.kid] == k
	}
	return slices.Contains(s.noKID, k)
}

// same finds the key of s that is equal to k (same kid, algorithms and key
// material), so that a JWKS refresh which did not change a key keeps its
// identity and the cache entries verified with it.
func (s *keySet) same(k *verifyKey) *verifyKey {
	for _, o := range s.all {
		if o.kid == k.kid && o.algs == k.algs && o.kind == k.kind && equalKeys(o.pub, k.pub) {
			return o
		}
	}
	return nil
}

func equalKeys(a, b any) bool {
	if ea, ok := a.(interface{ Equal(crypto.PublicKey) bool }); ok {
		return ea.Equal(b)
	}
	return false
}

// loadKeyFile reads a public_keys file: PEM (public keys, certificates, or
// private keys of which only the public half is used) or JSON (one JWK or a
// JWK set).
func loadKeyFile(path string, pins algSet) ([]*verifyKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	if bytes.HasPrefix(data, []byte("{")) {
		jwks, err := parseJWKs(data)
		if err != nil {
			return nil, err
		}
		var keys []*verifyKey
		for _, j := range jwks {
			k, err := keyFromJWK(j, pins, true, path)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", j.Marshal().KID, err)
			}
			keys = append(keys, k)
		}
		return keys, nil
	}
	var keys []*verifyKey
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		key, err := keyFromPEM(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", len(keys)+1, block.Type, err)
		}
		pub, err := publicHalf(key, true)
		if err != nil {
			return nil, err
		}
		k, err := newVerifyKey(pub, "", "", pins, path)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", len(keys)+1, block.Type, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block and no JSON Web Key found")
	}
	return keys, nil
}

func keyFromPEM(block *pem.Block) (any, error) {
	if block.Type == "CERTIFICATE" {
		// The operator pinned this certificate's key; its validity period
		// and chain are not what makes the key trusted here.
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return jwkset.LoadX509KeyInfer(block)
}

// parseJWKs parses one JWK or a JWK set, the way jwkset parses a fetched
// JWKS (so static JWK files and the Wycheproof key tests meet the same
// parser as remote key sets).
func parseJWKs(data []byte) ([]jwkset.JWK, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, err
	}
	var marshals []jwkset.JWKMarshal
	if _, isSet := probe["keys"]; isSet {
		var set jwkset.JWKSMarshal
		if err := json.Unmarshal(data, &set); err != nil {
			return nil, err
		}
		marshals = set.Keys
	} else {
		var m jwkset.JWKMarshal
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		marshals = []jwkset.JWKMarshal{m}
	}
	out := make([]jwkset.JWK, 0, len(marshals))
	for _, m := range marshals {
		// Private: true only so that a symmetric or private key is parsed
		// and then refused with a clear message by keyFromJWK.
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", m.KID, err)
		}
		out = append(out, j)
	}
	return out, nil
}

// keyFromJWK turns a parsed JWK into a verifyKey, refusing keys that say they
// are not for verifying signatures (use other than "sig", key_ops without
// "verify"), symmetric keys, and private keys unless allowPrivate.
func keyFromJWK(j jwkset.JWK, pins algSet, allowPrivate bool, origin string) (*verifyKey, error) {
	m := j.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, fmt.Errorf("JWK use is %q, not %q", m.USE, jwkset.UseSig)
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return nil, fmt.Errorf("JWK key_ops %v do not include %q", m.KEYOPS, jwkset.KeyOpsVerify)
	}
	pub, err := publicHalf(j.Key(), allowPrivate)
	if err != nil {
		return nil, err
	}
	return newVerifyKey(pub, m.KID, string(m.ALG), pins, origin)
}

// keySetFromJWKS builds the key set of a fetched JWKS. Keys we cannot use
// are left out and reported (a JWKS often carries encryption keys too);
// keys equal to one of old keep their identity, so a refresh that changes
// nothing keeps the verification cache warm.
func keySetFromJWKS(jwks []jwkset.JWK, pins algSet, old *keySet, origin string) (*keySet, []error) {
	var problems []error
	keys := make([]*verifyKey, 0, len(jwks))
	for _, j := range jwks {
		k, err := keyFromJWK(j, pins, false, origin)
		if err != nil {
			problems = append(problems, fmt.Errorf("key %q: %w", j.Marshal().KID, err))
			continue
		}
		k.dynamic = true
		if same := old.same(k); same != nil {
			k = same
		}
		keys = append(keys, k)
	}
	set, more := newKeySet(keys)
	return set, append(problems, more...)
}

var hmacMinBytes = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}

// newHMACKey builds the key of an issuer configured with hmac_secret_file.
// RFC 7518 §3.2: the secret must be at least as long as the hash output, so
// 32 bytes for HS256, 48 for HS384, 64 for HS512.
func newHMACKey(secret []byte, pins algSet, origin string) (*verifyKey, error) {
	algs, err := keyAlgs(kindHMAC, "", pins)
	if err != nil {
		return nil, err
	}
	for _, alg := range algs.names() {
		if need := hmacMinBytes[alg]; len(secret) < need {
			return nil, fmt.Errorf("the secret is %d bytes; %s needs at least %d", len(secret), alg, need)
		}
	}
	return &verifyKey{kind: kindHMAC, algs: algs, pub: bytes.Clone(secret), origin: origin}, nil
}
