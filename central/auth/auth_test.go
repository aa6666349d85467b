package auth_test

import (
	"strings"
	"sync"
	"sync/atomic"
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

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	th := auth.NewThrottle(3, time.Second, time.Minute, func() time.Time { return now })
	for range 3 {
		if w := th.Begin("li.wei"); w != 0 {
			t.Fatalf("held back before the free attempts are used: %v", w)
		}
	}
	// Growing delays, counted from the previous attempt, up to Max.
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute} {
		if w := th.Begin("li.wei"); w != want {
			t.Fatalf("wait %v, want %v", w, want)
		}
		if w := th.Begin("li.wei"); w != want {
			t.Fatalf("a refused attempt changed the wait: %v, want %v", w, want)
		}
		now = now.Add(want)
		if w := th.Begin("li.wei"); w != 0 {
			t.Fatalf("held back after waiting: %v", w)
		}
	}
	if w := th.Begin("zhang.min"); w != 0 {
		t.Fatal("another key is held back too")
	}
	th.Succeeded("li.wei")
	if w := th.Begin("li.wei"); w != 0 {
		t.Fatal("held back after success")
	}
	// Undo gives an attempt back.
	for range 3 {
		th.Begin("office")
		th.Undo("office")
	}
	if w := th.Begin("office"); w != 0 {
		t.Fatal("given-back attempts counted")
	}
}

// TestThrottleParallel: many attempts at once are counted atomically, so
// only the free ones go through.
func TestThrottleParallel(t *testing.T) {
	th := auth.NewThrottle(5, time.Second, time.Minute, nil)
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 60 {
		wg.Go(func() {
			if th.Begin("zhang.min\x00203.0.113.9") == 0 {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if passed.Load() != 5 {
		t.Fatalf("%d of 60 parallel attempts went through, want 5", passed.Load())
	}
}
