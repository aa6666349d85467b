package blob_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/blob"
	"github.com/plume-emissions/plume/central/blob/blobtest"
)

func TestContract(t *testing.T) {
	blobtest.Run(t, func(tb testing.TB) central.BlobStore {
		s, err := blob.Open(tb.TempDir())
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
}

func TestOpenRemovesPartialUploads(t *testing.T) {
	dir := t.TempDir()
	if _, err := blob.Open(dir); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, "tmp", "put-123")
	if err := os.WriteFile(partial, []byte("half a clip"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := blob.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Fatalf("partial upload left behind: %v", err)
	}
	data := []byte("x")
	if _, err := s.Put(context.Background(), blobtest.Sum(data), bytes.NewReader(data), 1); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, blobtest.Sum(data)[:2], blobtest.Sum(data)))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o222 != 0 {
		t.Fatalf("blob file is writable: %v", fi.Mode())
	}
}
