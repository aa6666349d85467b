package evidence

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// Anyone can build a package that verifies against its own central.pub:
// change case.json, recompute the manifests and sign with a fresh key.
// What makes a package central's is that it verifies with a key the
// verifier got from central beforehand, out of band, and pinned
// (POLICE-CONTRACT.md, "Central's signing key"). A keyring is that list of
// pinned keys: the current one and, after a rotation, those that were
// valid before, each with the period it signed packages in.

// TrustedKey is one pinned central key and the period in which the
// packages it signed were built; a zero From or Until is open.
type TrustedKey struct {
	Key   ed25519.PublicKey
	From  time.Time
	Until time.Time
	Note  string
}

// Covers reports whether a package built at t falls in the key's period.
func (k TrustedKey) Covers(t time.Time) bool {
	return (k.From.IsZero() || !t.Before(k.From)) && (k.Until.IsZero() || t.Before(k.Until))
}

// Fingerprint is how people compare a central key over the phone or on
// paper (plume.KeyFingerprint).
func Fingerprint(pub ed25519.PublicKey) string { return plume.KeyFingerprint(pub) }

// maxKeyringSize bounds a keyring file.
const maxKeyringSize = 1 << 20

// ParseKeyring reads a keyring: one key a line, as
//
//	KEY [FROM [UNTIL]] [# note]
//
// with KEY central's public key in base64 and FROM and UNTIL RFC 3339 times
// or "-" for open. Blank lines and lines starting with # are skipped.
func ParseKeyring(r io.Reader) ([]TrustedKey, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxKeyringSize+1))
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	if len(b) > maxKeyringSize {
		return nil, fmt.Errorf("keyring larger than %d bytes", maxKeyringSize)
	}
	var out []TrustedKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, note, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) > 3 {
			return nil, fmt.Errorf("keyring line %d: want KEY [FROM [UNTIL]]", n)
		}
		k := TrustedKey{Note: strings.TrimSpace(note)}
		raw, err := base64.StdEncoding.Strict().DecodeString(f[0])
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("keyring line %d: not base64 of a %d-byte Ed25519 public key", n, ed25519.PublicKeySize)
		}
		k.Key = raw
		for i, t := range []*time.Time{&k.From, &k.Until} {
			if len(f) <= i+1 || f[i+1] == "-" {
				continue
			}
			if *t, err = time.Parse(time.RFC3339, f[i+1]); err != nil {
				return nil, fmt.Errorf("keyring line %d: %w", n, err)
			}
		}
		if !k.From.IsZero() && !k.Until.IsZero() && !k.From.Before(k.Until) {
			return nil, fmt.Errorf("keyring line %d: FROM is not before UNTIL", n)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("keyring has no keys")
	}
	return out, nil
}
