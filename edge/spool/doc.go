// Package spool is the edge's durable outbox: evidence manifests, their
// media and compact records wait here until central acknowledges them.
//
// # Layout
//
// A spool is one directory:
//
//	spool.db      bbolt: the outboxes, the dead letters, the seen index and
//	              the media reference counts
//	media/ab/…    media files, named by the lowercase hex SHA-256 of their
//	              content and sharded by its first two characters
//	evidence/     every signed manifest as <id>.json plus <id>.sig (base64),
//	              and <id>.delivered once central has acknowledged it; these
//	              files alone are enough to rebuild the outbox
//	quarantine/   files the start-up reconciliation would not trust; never
//	              deleted by the spool
//
// # Write order
//
// Every file is written to a temporary name in its final directory, synced,
// renamed into place and the directory synced; only then is the bbolt entry
// that refers to it committed. A crash at any point therefore leaves either
// nothing, or a complete file that no entry refers to yet. bbolt is never
// opened with NoSync.
//
// # Producer and consumer
//
// The agent calls PutMedia for each media item and then AddEvidence with the
// signed manifest, and AddRecord for every compact record. All three are
// idempotent: a resent pass is stored once (the seen index remembers IDs for
// Options.SeenRetention after delivery). Only when they return nil may the
// agent acknowledge the analyser.
//
// The uplink reads PendingEvidence and PendingRecords in FIFO order (outbox
// keys are NextSequence as 8-byte big-endian), streams media with OpenMedia
// and reports the outcome with MarkEvidenceDelivered, MarkRecordsDelivered or
// DeadLetter. Entries stay until acknowledged, so delivery resumes where it
// stopped after a restart. Dead letters stay visible with their reason
// (DeadLetters) until an operator calls Requeue.
//
// # Start-up reconciliation
//
// Open reconciles the files with the database: leftover temporary files are
// removed (they are incomplete by construction), media files no entry refers
// to are moved to quarantine/, manifests in evidence/ that the database does
// not know are queued (or recorded as delivered when marked so), and queued
// evidence whose media is missing is flagged (Stats.MissingMedia and
// MissingMedia) but kept. A spool.db that bbolt cannot open or read is moved
// aside as spool.db.corrupt-<time> and rebuilt from evidence/; central is
// idempotent, so re-uploading an item it already holds is safe. Records
// exist only in the database and are lost with a corrupt one.
//
// # Capacity
//
// Options.MaxBytes caps the whole directory and Options.MinFreeBytes keeps
// space free on the file system. Under pressure the spool first removes
// media and manifests central acknowledged more than Options.MediaGrace ago,
// then compacts plain pass records (outcome pass or invalid) into
// plume.RecordSummary records, then removes acknowledged media still within
// the grace. Evidence central has not acknowledged is never evicted. When
// space still cannot be found, PutMedia, AddEvidence and AddRecord return an
// error wrapping ErrFull and change nothing, so the agent can refuse to
// acknowledge the analyser, which resends later.
package spool
