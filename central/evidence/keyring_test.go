package evidence

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

func TestParseKeyring(t *testing.T) {
	cur := plume.EncodeKey(centralKey.Public().(ed25519.PublicKey))
	old := plume.EncodeKey(fixture.Key("central-2025").Public().(ed25519.PublicKey))
	ring, err := ParseKeyring(strings.NewReader("# central keys of the Shenzhen bureau\n\n" +
		old + " - 2026-01-01T00:00:00Z  # retired 2026-01-01\n" +
		cur + " 2026-01-01T00:00:00Z\n"))
	if err != nil || len(ring) != 2 || ring[0].Note != "retired 2026-01-01" || !ring[0].From.IsZero() || ring[1].Until.IsZero() != true {
		t.Fatalf("%+v %v", ring, err)
	}
	if !ring[0].Covers(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)) || ring[0].Covers(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatal("period of the retired key")
	}
	for name, bad := range map[string]string{
		"ErrEmpty":     "# nothing\n",
		"ErrNotAKey":   "bm90IGEga2V5\n",
		"ErrBadTime":   cur + " yesterday\n",
		"ErrBackwards": cur + " 2026-02-01T00:00:00Z 2026-01-01T00:00:00Z\n",
		"ErrTooMany":   cur + " - - extra\n",
	} {
		if _, err := ParseKeyring(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestVerifyKeyring: a package verifies with a keyring that holds its
// signer for the period it was built in, and not otherwise.
func TestVerifyKeyring(t *testing.T) {
	pkg := buildPackage(t) // built 2026-11-28
	cur := centralKey.Public().(ed25519.PublicKey)
	other := fixture.Key("central-2025").Public().(ed25519.PublicKey)
	at := func(s string) time.Time { tt, _ := time.Parse(time.RFC3339, s); return tt }
	for _, tc := range []struct {
		name string
		ring []TrustedKey
		ok   bool
	}{
		{"OK", []TrustedKey{{Key: other, Until: at("2026-01-01T00:00:00Z")}, {Key: cur, From: at("2026-01-01T00:00:00Z")}}, true},
		{"ErrOutsidePeriod", []TrustedKey{{Key: cur, Until: at("2026-01-01T00:00:00Z")}}, false},
		{"ErrUnknownSigner", []TrustedKey{{Key: other}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := verify(pkg, VerifyOptions{Keyring: tc.ring})
			if (err == nil) != tc.ok || (tc.ok && !rep.Pinned) {
				t.Fatalf("err %v\n%s", err, rep)
			}
			if rep.CentralKey != Fingerprint(cur) {
				t.Fatalf("fingerprint %q", rep.CentralKey)
			}
		})
	}
	if rep, err := verify(pkg, VerifyOptions{}); err != nil || rep.Pinned {
		t.Fatalf("unpinned: pinned=%v %v", rep.Pinned, err)
	}
}
