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
//	records/      every queued record, in append-only segment logs
//	              (seg-<n>.log, CRC32C-framed, synced before the outbox
//	              entry is committed) with the IDs settled since in
//	              seg-<n>.ack; a segment goes once all its records are
//	              delivered, so these files alone rebuild the record outbox
//	quarantine/   files the start-up reconciliation would not trust; never
//	              deleted by the spool
//
// # Write order
//
// Every file is written to a temporary name in its final directory, synced,
// renamed into place and the directory synced; a record is appended to its
// segment and the segment synced. Only then is the bbolt entry that refers
// to it committed. A crash at any point therefore leaves either nothing, or
// a complete file (or frame) that no entry refers to yet. bbolt is never
// opened with NoSync.
//
// # Checked values
//
// Every bbolt value carries a CRC32C of its key and JSON. A value that fails
// it is deleted and what it described is adopted again from the files: a
// manifest from evidence/, a record from records/, media reference counts by
// counting. This happens at Open, when the uplink reads a damaged outbox
// entry, and in Scrub. Local damage therefore never reaches central as a
// manifest whose signature does not verify.
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
// MissingMedia) but kept. A spool.db that bbolt cannot open or read (pages
// that do not parse, elements that point outside the file, keys out of
// order, a failed bbolt consistency check) is moved aside as
// spool.db.corrupt-<time> and rebuilt from evidence/ and records/; central
// is idempotent, so re-uploading an item it already holds is safe. Dead
// letters are queued again by a rebuild (central refuses them again).
//
// # Capacity
//
// Options.MaxBytes caps the whole directory, Options.RecordsMaxBytes the
// records class (records/) and Options.MinFreeBytes keeps space free on the
// file system. Under pressure the spool first removes media and manifests
// central acknowledged more than Options.MediaGrace ago, then those still
// within the grace. Only when the uplink has reported central unreachable
// (SetCentralReachable) does it fold plain pass records (outcome pass or
// invalid) into plume.RecordSummary records, which keep every folded pass's
// values in order and say why (Cause); while central is reachable no pass
// is folded. Evidence central has not acknowledged is never evicted. When
// space still cannot be found, PutMedia, AddEvidence and AddRecord return an
// error wrapping ErrFull and change nothing, so the agent can refuse to
// acknowledge the analyser, which resends later.
package spool
