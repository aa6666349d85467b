package spool

import "errors"

// ErrFull is returned (wrapped) by PutMedia, AddEvidence and AddRecord when
// the spool cannot make room within Options.MaxBytes and
// Options.MinFreeBytes, or the file system reports ENOSPC. Nothing was
// stored; the caller must not acknowledge the item upstream and should offer
// it again later.
var ErrFull = errors.New("spool full")

// ErrMediaMissing is returned (wrapped) by AddEvidence when a media item the
// manifest lists has not been stored with PutMedia (or has a different size),
// and by OpenMedia when the file is absent.
var ErrMediaMissing = errors.New("media missing")

// ErrNotFound is returned (wrapped) by DeadLetter and Requeue when no queued
// item or dead letter has the given kind and ID.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by operations on a spool after Close.
var ErrClosed = errors.New("spool closed")

// ErrCorruptValue is returned (wrapped) when a value read from spool.db
// fails its checksum or cannot be decoded. The spool heals such values from
// its files (evidence/ and records/) at Open, in Scrub and when the uplink
// reads the outbox; the error reaches callers only from paths that cannot
// heal on the spot.
var ErrCorruptValue = errors.New("corrupt value")
