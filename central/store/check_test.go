package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plume-emissions/plume/central/store"
	bolt "go.etcd.io/bbolt"
)

// filledDB makes a central.db with enough pages to damage.
func filledDB(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), store.FileName)
	s, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		for i := range 3000 {
			if err := b.Put(fmt.Appendf(nil, "GD-SZ-0001\x00rec-%06d", i), bytes.Repeat([]byte(`{"x":1}`), 20)); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestOpenCorrupt: a damaged central.db is refused at start with
// ErrCorrupt and a readable reason, never a crash, and left untouched.
func TestOpenCorrupt(t *testing.T) {
	page := int64(os.Getpagesize())
	overwrite := func(from, to int64) func(tb testing.TB, data []byte) {
		return func(tb testing.TB, data []byte) {
			junk := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0x42}, int(page))
			for off := from * page; off < to*page && off < int64(len(data)); off += page {
				copy(data[off:min(off+page, int64(len(data)))], junk)
			}
		}
	}
	cases := map[string]func(tb testing.TB, data []byte){
		"MetaPages": overwrite(0, 2),
		"DataPages": overwrite(2, 1<<20),
		"Freelist":  overwrite(2, 4),
		"Truncated": nil,
	}
	for seed := range uint64(12) {
		cases[fmt.Sprintf("BitFlips40/%02d", seed)] = func(tb testing.TB, data []byte) {
			rng := rand.New(rand.NewPCG(seed, 7))
			for range 40 {
				data[rng.IntN(len(data))] ^= 1 << rng.IntN(8)
			}
		}
	}
	flipsCaught := 0
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			path := filledDB(t)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if spoil == nil {
				data = data[:3*page]
			} else {
				spoil(t, data)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(path, store.Options{})
			if strings.HasPrefix(name, "BitFlips") {
				// Flips may land in free space or values only; what is
				// damaged must be refused, and nothing may crash.
				if err == nil {
					s.Close()
					return
				}
				flipsCaught++
			}
			if !errors.Is(err, store.ErrCorrupt) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("open: %v, want ErrCorrupt", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, data) {
				t.Fatal("the corrupt file was changed")
			}
		})
	}
	if flipsCaught == 0 {
		t.Error("no bit-flip run was refused")
	}
}
