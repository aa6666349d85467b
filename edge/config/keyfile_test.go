package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyFile: a station key is written 0600, read back as the same key,
// never overwritten, and refused when others may read it.
func TestKeyFile(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), KeyFileName)
	if err := WriteKeyFile(path, key); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	got, err := ReadKeyFile(path)
	if err != nil || !got.Equal(key) {
		t.Fatalf("read back %v, %v", got, err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if err := WriteKeyFile(path, other); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwrite: %v, want a refusal", err)
	}
	if got, _ := ReadKeyFile(path); !got.Equal(key) {
		t.Fatal("the existing key was replaced")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v, want a refusal", err)
	}
	bad := filepath.Join(t.TempDir(), KeyFileName)
	os.WriteFile(bad, []byte("not a key\n"), 0o600)
	if _, err := ReadKeyFile(bad); err == nil {
		t.Fatal("a key file that is not a key was accepted")
	}
}
