package plume

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// Request authentication (central/api/PROTOCOL.md, "Authentication"). The
// edge signs every request with its station key; central verifies with the
// enrolled public key. Both sides build the string to sign here, so they can
// never drift apart.

// Header names of the station ingest protocol.
const (
	HeaderStation           = "Plume-Station"
	HeaderDate              = "Plume-Date"
	HeaderContentSHA256     = "Plume-Content-SHA256"
	HeaderSignature         = "Plume-Signature"
	HeaderManifestSignature = "Plume-Manifest-Signature"
	HeaderIdempotencyKey    = "Idempotency-Key"
)

// SigningVersion is the first line of every string to sign.
const SigningVersion = "plume-v1"

// DefaultMaxClockSkew is how far Plume-Date may be from central's clock
// before central answers 401.
const DefaultMaxClockSkew = time.Hour

// EmptySHA256 is the lowercase hex SHA-256 of the empty string, the
// Plume-Content-SHA256 of a request without a body.
const EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// ContentSHA256 returns the lowercase hex SHA-256 of b.
func ContentSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// FormatRequestDate formats t for the Plume-Date header: RFC 3339 in UTC,
// to the second.
func FormatRequestDate(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// ParseRequestDate parses a Plume-Date header.
func ParseRequestDate(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, Errorf(EUNAUTHORIZED, "bad %s header", HeaderDate)
	}
	return t, nil
}

// RequestSigningString returns the string a station signs for one request:
// the five lines "plume-v1", method, escaped path without the query,
// Plume-Date and Plume-Content-SHA256, joined by "\n" without a trailing
// newline. path is what (*url.URL).EscapedPath returns.
func RequestSigningString(method, path, date, contentSHA256 string) string {
	return strings.Join([]string{SigningVersion, strings.ToUpper(method), path, date, contentSHA256}, "\n")
}

// SignRequest returns the Plume-Signature header value: the standard base64
// of key's Ed25519 signature of RequestSigningString.
func SignRequest(key ed25519.PrivateKey, method, path, date, contentSHA256 string) string {
	sig := ed25519.Sign(key, []byte(RequestSigningString(method, path, date, contentSHA256)))
	return base64.StdEncoding.EncodeToString(sig)
}

// VerifyRequest reports whether sig (a Plume-Signature header value) is
// pub's signature of the request. It checks the signature only; the caller
// also checks the date skew, that contentSHA256 matches the body, and that
// the station may act on the path.
func VerifyRequest(pub ed25519.PublicKey, method, path, date, contentSHA256, sig string) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, []byte(RequestSigningString(method, path, date, contentSHA256)), raw)
}
