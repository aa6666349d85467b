package export

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// Header names of the police exchange (POLICE-CONTRACT.md).
const (
	HeaderDate          = "Plume-Date"
	HeaderContentSHA256 = "Plume-Content-SHA256"
	HeaderAuthorization = "Authorization"
	HeaderIdempotency   = "Idempotency-Key"
	AuthScheme          = "Plume-HMAC-SHA256"
	SigningVersion      = "plume-police-v1"
	// MaxSkew is how far a request's Plume-Date may be from the
	// receiver's clock.
	MaxSkew = 15 * time.Minute
)

// Sign returns the Authorization value of a request: HMAC-SHA256 with the
// shared secret over the five lines
// "plume-police-v1\nMETHOD\nPATH\nDATE\nBODY-SHA256".
func Sign(secret []byte, method, path, date, bodySHA string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strings.Join([]string{SigningVersion, method, path, date, bodySHA}, "\n")))
	return AuthScheme + " " + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's Authorization value and date against now. It
// returns a coded error saying what is wrong.
func Verify(secret []byte, method, path, date, bodySHA, auth string, now time.Time) error {
	if date == "" || bodySHA == "" || auth == "" {
		return plume.Errorf(plume.EUNAUTHORIZED, "missing %s, %s or %s", HeaderDate, HeaderContentSHA256, HeaderAuthorization)
	}
	t, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return plume.Errorf(plume.EUNAUTHORIZED, "bad %s", HeaderDate)
	}
	if d := now.Sub(t); d > MaxSkew || -d > MaxSkew {
		return plume.Errorf(plume.EUNAUTHORIZED, "%s too far from the receiver's clock", HeaderDate)
	}
	want := Sign(secret, method, path, date, bodySHA)
	if !hmac.Equal([]byte(want), []byte(auth)) {
		return plume.Errorf(plume.EUNAUTHORIZED, "signature does not verify")
	}
	return nil
}
