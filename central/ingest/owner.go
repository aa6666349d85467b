package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Blobs are content-addressed and shared by every station, so holding a
// blob says nothing about who sent it. A station may cite in its manifests
// only blobs it uploaded itself; otherwise station B could cite station
// A's image by its digest, without ever having it, and B's reviewers would
// be served A's media.
//
// That a station uploaded a blob is recorded as a small blob of its own:
// the record's text names the station and the digest, and is stored under
// its own SHA-256, so the record's existence is the check (ownerKey) and
// every blob store — filesystem, or an object store with object lock —
// holds it with no new table. A station that uploads a blob another
// already holds must send the bytes, which are hashed, to become an owner
// too.

// ownerRecord is the text recording that station uploaded sum.
func ownerRecord(station plume.StationID, sum string) []byte {
	return fmt.Appendf(nil, "plume blob owner v1\nstation %s\nsha256 %s\n", station, sum)
}

// ownerKey is the blob name of ownerRecord(station, sum).
func ownerKey(station plume.StationID, sum string) string {
	s := sha256.Sum256(ownerRecord(station, sum))
	return hex.EncodeToString(s[:])
}

// owns reports whether station uploaded sum.
func (s *Service) owns(ctx context.Context, station plume.StationID, sum string) (bool, error) {
	ok, err := s.cfg.Blobs.Exists(ctx, ownerKey(station, sum))
	if err != nil {
		return false, fmt.Errorf("blob owner: %w", err)
	}
	return ok, nil
}

// recordOwner records that station uploaded sum.
func (s *Service) recordOwner(ctx context.Context, station plume.StationID, sum string) error {
	rec := ownerRecord(station, sum)
	if _, err := s.cfg.Blobs.Put(ctx, ownerKey(station, sum), bytes.NewReader(rec), int64(len(rec))); err != nil {
		return fmt.Errorf("record blob owner: %w", err)
	}
	return nil
}

// proveHeld reads size bytes of body and checks they hash to sum: a
// station shows it has a blob that is already held before it is recorded
// as an owner.
func proveHeld(body io.Reader, sum string, size int64) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(body, size+1))
	if err != nil {
		return fmt.Errorf("read blob: %w", err)
	}
	if n != size {
		return central.ErrSizeMismatch
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return central.ErrDigestMismatch
	}
	return nil
}
