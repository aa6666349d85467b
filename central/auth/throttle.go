package auth

import (
	"sync"
	"time"
)

// Throttle slows down password guessing without letting anyone lock an
// officer out. Sign-in attempts are counted per key (a username and the
// address it is tried from, or an address alone). The first Free attempts
// go through; after that each further attempt must wait a delay that
// doubles from Base up to Max, counted from the previous one.
//
// Counting is atomic: Begin counts the attempt before the password is
// checked, as if it will fail, under one lock, so parallel attempts cannot
// all slip through while the first ones are being checked; a right
// password then clears the key (Succeeded) or gives the attempt back
// (Undo). Keys without an attempt for a day are forgotten.
type Throttle struct {
	Free int
	Base time.Duration
	Max  time.Duration
	now  func() time.Time
	mu   sync.Mutex
	keys map[string]*throttled
}

type throttled struct {
	attempts int
	last     time.Time // of the last attempt counted
	next     time.Time // no attempt before this
}

// maxThrottleKeys bounds the keys a Throttle holds under a spray of
// addresses; past it, keys not currently held back are forgotten first.
const maxThrottleKeys = 100000

// throttleForget is how long a key is kept after its last attempt.
const throttleForget = 24 * time.Hour

// NewThrottle returns a throttle that lets free attempts through per key,
// then delays each further one from base, doubling up to max.
func NewThrottle(free int, base, max time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{Free: free, Base: base, Max: max, now: now, keys: map[string]*throttled{}}
}

// Begin counts an attempt for key and returns 0, or returns how long the
// caller must wait (nothing is counted then).
func (t *Throttle) Begin(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	k := t.keys[key]
	if k != nil && now.Sub(k.last) > throttleForget {
		k = nil
	}
	if k == nil {
		if len(t.keys) >= maxThrottleKeys {
			t.evict(now)
		}
		k = &throttled{}
		t.keys[key] = k
	}
	if now.Before(k.next) {
		return k.next.Sub(now)
	}
	k.attempts++
	k.last = now
	if over := k.attempts - t.Free; over >= 0 {
		k.next = now.Add(t.delay(over))
	}
	return 0
}

// delay returns Base·2^n, at most Max.
func (t *Throttle) delay(n int) time.Duration {
	d := t.Base
	for range n {
		if d >= t.Max/2 {
			return t.Max
		}
		d *= 2
	}
	return min(d, t.Max)
}

// Succeeded forgets key: its attempt was right.
func (t *Throttle) Succeeded(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

// Undo gives back the attempt Begin counted for key (it was right), so
// successful sign-ins from a shared address do not slow that address.
func (t *Throttle) Undo(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.keys[key]
	if k == nil {
		return
	}
	if k.attempts--; k.attempts < t.Free {
		k.next = time.Time{}
	}
	if k.attempts <= 0 {
		delete(t.keys, key)
	}
}

// evict forgets keys not held back now, or all of them if every key is.
func (t *Throttle) evict(now time.Time) {
	for key, k := range t.keys {
		if !now.Before(k.next) {
			delete(t.keys, key)
		}
	}
	if len(t.keys) >= maxThrottleKeys {
		clear(t.keys)
	}
}
