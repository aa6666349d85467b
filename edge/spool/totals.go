package spool

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var (
	bktTotals = []byte("totals") // "totals" → Totals
	keyTotals = []byte("totals")
)

// Totals are lifetime counters kept in spool.db and updated in the same
// transaction as the change they count, so they survive restarts, kill -9
// and power cuts, and always agree with the outbox. A database rebuilt from
// evidence/ starts them again from the rebuild.
type Totals struct {
	EvidenceQueued    int64 `json:"evidence_queued"`
	EvidenceDelivered int64 `json:"evidence_delivered"`
	RecordsQueued     int64 `json:"records_queued"`
	RecordsDelivered  int64 `json:"records_delivered"`
	DeadLettered      int64 `json:"dead_lettered"`
}

// bumpTotals applies f to the stored totals inside tx.
func bumpTotals(tx *bolt.Tx, f func(t *Totals)) error {
	b, err := tx.CreateBucketIfNotExists(bktTotals)
	if err != nil {
		return err
	}
	var t Totals
	if _, err := getJSON(b, keyTotals, &t); err != nil {
		return err
	}
	f(&t)
	return putJSON(b, keyTotals, t)
}

// Totals returns the lifetime counters.
func (s *Spool) Totals(ctx context.Context) (Totals, error) {
	var t Totals
	if err := s.check(ctx); err != nil {
		return t, fmt.Errorf("totals: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktTotals)
		if b == nil {
			return nil
		}
		_, err := getJSON(b, keyTotals, &t)
		return err
	})
	if err != nil {
		return t, fmt.Errorf("totals: %w", err)
	}
	return t, nil
}
