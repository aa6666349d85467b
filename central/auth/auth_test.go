package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume/central/auth"
)

func TestPasswordHash(t *testing.T) {
	h, err := auth.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := auth.HashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		name, hash, pw string
		ok             bool
	}{
		{"OK", h, "correct horse battery", true},
		{"ErrWrong", h, "correct horse batterY", false},
		{"ErrEmpty", h, "", false},
		{"ErrGarbage", "$argon2id$nonsense", "x", false},
		{"ErrHugeCost", "$argon2id$v=19$m=99999999,t=2,p=1$AAAA$AAAA", "x", false},
		{"ErrOtherScheme", "$2a$10$abcdefghijklmnopqrstuv", "x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := auth.CheckPassword(tc.hash, tc.pw); got != tc.ok {
				t.Fatalf("CheckPassword = %v, want %v", got, tc.ok)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	l := auth.NewLimiter(3, 10*time.Minute, func() time.Time { return now })
	for range 3 {
		if !l.Allow("li.wei") {
			t.Fatal("refused before the limit")
		}
		l.Fail("li.wei")
		now = now.Add(time.Minute)
	}
	if l.Allow("li.wei") {
		t.Fatal("allowed after 3 failures")
	}
	if !l.Allow("zhang.min") {
		t.Fatal("another key is limited too")
	}
	now = now.Add(8 * time.Minute) // the first failure leaves the window
	if !l.Allow("li.wei") {
		t.Fatal("still refused after the window")
	}
	l.Reset("li.wei")
	if !l.Allow("li.wei") {
		t.Fatal("refused after reset")
	}
}
