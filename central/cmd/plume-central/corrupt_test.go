package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume/central/store"
)

// TestServeCorruptDB: central refuses to start on a damaged central.db
// with a message that says what to do, and leaves the file as it was.
func TestServeCorruptDB(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, store.FileName)
	data, _ := os.ReadFile(path)
	copy(data, bytes.Repeat([]byte{0x5a}, 2*os.Getpagesize()))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-data", dir}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "restore the last backup") || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("serve on a damaged central.db: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
		t.Fatal("the damaged file was changed")
	}
}
