package spool

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stats are plain counters and gauges for metrics. Counters count since
// Open.
type Stats struct {
	QueuedEvidence int   // gauge: evidence waiting for central
	QueuedRecords  int   // gauge: records waiting for central
	DeadLetters    int   // gauge: items central refused, kept with a reason
	MissingMedia   int   // gauge: queued evidence whose media was missing at start-up
	Bytes          int64 // gauge: bytes used (files plus live database pages)
	MaxBytes       int64 // configured cap, 0 for none

	EvidenceDelivered  int64 // counter
	RecordsDelivered   int64 // counter
	DeadLettered       int64 // counter
	RecordsCompacted   int64 // counter: pass records folded into summaries
	OrphansQuarantined int64 // counter: media files moved to quarantine/ at start-up
	MediaRemoved       int64 // counter: delivered media files removed
	FullRefusals       int64 // counter: items refused with ErrFull
	RecordsRecovered   int64 // counter: records queued again from records/ (rebuild or heal)
	ValuesHealed       int64 // counter: database values that failed their check and were replaced from the files
	Rebuilt            bool  // the database was rebuilt from evidence/ and records/ at Open
	CentralUnreachable bool  // the uplink last reported central unreachable (folding allowed)
	MediaDamaged       int   // gauge: queued media whose content Scrub found not to match its hash
	LastScrub          time.Time
}

// Stats returns the current counters and gauges.
func (s *Spool) Stats() Stats {
	st := Stats{
		MaxBytes:           s.opts.MaxBytes,
		EvidenceDelivered:  s.evidenceDelivered.Load(),
		RecordsDelivered:   s.recordsDelivered.Load(),
		DeadLettered:       s.deadLettered.Load(),
		RecordsCompacted:   s.recordsCompacted.Load(),
		OrphansQuarantined: s.orphansQuarantined.Load(),
		MediaRemoved:       s.mediaRemoved.Load(),
		FullRefusals:       s.fullRefusals.Load(),
		RecordsRecovered:   s.recordsRecovered.Load(),
		ValuesHealed:       s.valuesHealed.Load(),
		Rebuilt:            s.rebuilt,
		CentralUnreachable: s.unreachable.Load(),
	}
	if s.closed.Load() {
		return st
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		st.QueuedEvidence = tx.Bucket(bktEvidence).Stats().KeyN
		st.QueuedRecords = tx.Bucket(bktRecords).Stats().KeyN
		st.DeadLetters = tx.Bucket(bktDead).Stats().KeyN
		return nil
	})
	s.mu.Lock()
	st.MissingMedia = len(s.missing)
	st.MediaDamaged = len(s.damaged)
	st.LastScrub = s.lastScrub.At
	st.Bytes = s.usage()
	s.mu.Unlock()
	return st
}
