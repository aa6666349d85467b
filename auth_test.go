package plume_test

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

func TestRequestSigningString(t *testing.T) {
	got := plume.RequestSigningString("put", "/api/v1/stations/GD-SZ-0001/blobs/ab", "2026-11-28T17:30:00Z", plume.EmptySHA256)
	want := "plume-v1\nPUT\n/api/v1/stations/GD-SZ-0001/blobs/ab\n2026-11-28T17:30:00Z\n" + plume.EmptySHA256
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if strings.HasSuffix(got, "\n") {
		t.Fatal("trailing newline")
	}
	if plume.ContentSHA256(nil) != plume.EmptySHA256 {
		t.Fatal("EmptySHA256 is not the digest of the empty string")
	}
}

func TestSignVerifyRequest(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	date := plume.FormatRequestDate(time.Date(2026, 11, 28, 17, 30, 0, 5e8, time.FixedZone("CST", 8*3600)))
	if date != "2026-11-28T09:30:00Z" {
		t.Fatalf("date %q", date)
	}
	if _, err := plume.ParseRequestDate(date); err != nil {
		t.Fatal(err)
	}
	sha := plume.ContentSHA256([]byte("body"))
	sig := plume.SignRequest(key, "PUT", "/p", date, sha)
	t.Run("OK", func(t *testing.T) {
		if !plume.VerifyRequest(pub, "PUT", "/p", date, sha, sig) {
			t.Fatal("valid signature rejected")
		}
	})
	for name, ok := range map[string]bool{
		"WrongKey":    plume.VerifyRequest(other, "PUT", "/p", date, sha, sig),
		"WrongPath":   plume.VerifyRequest(pub, "PUT", "/q", date, sha, sig),
		"WrongMethod": plume.VerifyRequest(pub, "POST", "/p", date, sha, sig),
		"WrongDate":   plume.VerifyRequest(pub, "PUT", "/p", "2026-11-28T09:30:01Z", sha, sig),
		"WrongBody":   plume.VerifyRequest(pub, "PUT", "/p", date, plume.EmptySHA256, sig),
		"BadBase64":   plume.VerifyRequest(pub, "PUT", "/p", date, sha, "!!"),
		"ShortKey":    plume.VerifyRequest(pub[:3], "PUT", "/p", date, sha, sig),
	} {
		t.Run(name, func(t *testing.T) {
			if ok {
				t.Fatal("bad request accepted")
			}
		})
	}
}
