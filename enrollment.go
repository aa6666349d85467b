package plume

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
)

// Enrollment is what central hands a station when it is enrolled
// (plume-central enroll), and what the edge loads at start-up: who the
// station is, where central is, the station's signing key, and central's
// public key for checking packages and responses.
type Enrollment struct {
	Station    StationID `json:"station"`
	Name       string    `json:"name,omitempty"`
	CentralURL string    `json:"central_url"`
	// StationKey is the standard base64 of the station's Ed25519 private key
	// seed (32 bytes). Empty when the edge generated its own key (plume-edge
	// keygen) and only the public key was enrolled; the edge then reads the
	// key from the file its station file's station_key names.
	StationKey string `json:"station_key,omitempty"`
	// CentralKey is the standard base64 of central's Ed25519 public key.
	CentralKey string `json:"central_key"`
}

// PrivateKey decodes the station's private key.
func (e *Enrollment) PrivateKey() (ed25519.PrivateKey, error) {
	k, err := DecodeStationKey(e.StationKey)
	if err != nil {
		return nil, fmt.Errorf("enrollment: station_key: %w", err)
	}
	return k, nil
}

// DecodeStationKey decodes a station's private key in the one encoding
// used for it, in enrollment files and in the key file plume-edge keygen
// writes: the standard base64 of its Ed25519 seed.
func DecodeStationKey(s string) (ed25519.PrivateKey, error) {
	seed, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, Errorf(EINVALID, "a station key must be base64 of a %d-byte Ed25519 seed", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// KeyFingerprint is how people compare a public key over the phone or on
// paper: "SHA256:" and the unpadded base64 of the key's SHA-256.
func KeyFingerprint(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(s[:])
}

// CentralPublicKey decodes central's public key.
func (e *Enrollment) CentralPublicKey() (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(e.CentralKey)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, Errorf(EINVALID, "enrollment: central_key must be base64 of a %d-byte Ed25519 public key", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// DecodeEnrollment parses and checks an enrollment file.
func DecodeEnrollment(b []byte) (*Enrollment, error) {
	var e Enrollment
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, Errorf(EINVALID, "enrollment: %v", err)
	}
	if err := e.Station.Validate(); err != nil {
		return nil, err
	}
	if u, err := url.Parse(e.CentralURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, Errorf(EINVALID, "enrollment: central_url %q is not an http(s) URL", e.CentralURL)
	}
	if _, err := e.CentralPublicKey(); err != nil {
		return nil, err
	}
	if e.StationKey != "" {
		if _, err := e.PrivateKey(); err != nil {
			return nil, err
		}
	}
	return &e, nil
}

// EncodeKey returns the standard base64 form used in enrollment files.
func EncodeKey(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// SeedOf returns the seed of an Ed25519 private key, for enrollment files.
func SeedOf(k ed25519.PrivateKey) []byte { return k.Seed() }

// String implements fmt.Stringer without revealing the key.
func (e Enrollment) String() string {
	return fmt.Sprintf("station %s at %s", e.Station, e.CentralURL)
}
