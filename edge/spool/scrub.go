package spool

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ScrubResult is what the last Scrub found.
type ScrubResult struct {
	At           time.Time
	ValuesHealed int      // values that failed their check and were replaced from the files
	MediaChecked int      // media files hashed in this pass
	MediaDamaged []string // media of queued evidence whose content no longer matches its hash
}

// Scrub is the light background check: it heals every database value that
// fails its checksum (from evidence/ and records/), then hashes queued
// evidence's media files, up to mediaBytes per call, carrying on where the
// previous call stopped. Damaged media cannot be healed (the spool holds
// the only copy); it is reported in the result and in Stats.MediaDamaged.
func (s *Spool) Scrub(ctx context.Context, mediaBytes int64) (ScrubResult, error) {
	res := ScrubResult{At: s.now().UTC()}
	if err := s.check(ctx); err != nil {
		return res, fmt.Errorf("scrub: %w", err)
	}
	n, err := s.heal(ctx)
	res.ValuesHealed = n
	if err != nil {
		return res, fmt.Errorf("scrub: %w", err)
	}
	var shas []string
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMedia).ForEach(func(k, v []byte) error {
			var me mediaEntry
			if decodeValue(k, v, &me) == nil && me.Refs > 0 {
				shas = append(shas, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return res, fmt.Errorf("scrub: %w", err)
	}
	s.mu.Lock()
	from := s.scrubNext
	s.mu.Unlock()
	i, _ := slices.BinarySearch(shas, from)
	var hashed int64
	for ; i < len(shas) && hashed < mediaBytes; i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		sha := shas[i]
		p := s.mediaPath(sha)
		st, err := os.Stat(p)
		if err != nil {
			continue // missing media is flagged at Open
		}
		sum, err := fileSHA256(p)
		if err != nil {
			continue
		}
		hashed += st.Size()
		res.MediaChecked++
		s.mu.Lock()
		if sum != sha {
			s.damaged[sha] = true
			res.MediaDamaged = append(res.MediaDamaged, sha)
			s.log.Error("media file damaged on disk; central will refuse it", "sha256", sha, "hashes_to", sum)
		} else {
			delete(s.damaged, sha)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	if i >= len(shas) {
		s.scrubNext = "" // start again next time
	} else {
		s.scrubNext = shas[i]
	}
	s.lastScrub = res
	s.mu.Unlock()
	return res, nil
}
