// Package central is the central service's domain: the types it stores
// (stations, evidence, cases, custody entries, queued jobs, pass rows) and
// the two storage interfaces every backend implements.
//
// # Storage
//
// Store holds metadata and BlobStore holds content-addressed bytes (media
// and evidence packages). The embedded defaults are bbolt (central/store)
// and the filesystem (central/blob), so one binary serves a city on one
// machine; PostgreSQL and MinIO implement the same interfaces for
// stateless replicas. The interfaces carry no backend specifics, and the
// contract tests in central/store/storetest and central/blob/blobtest are
// what "implements" means.
//
// # Errors
//
// The sentinel errors (ErrNotFound, ErrConflict, ErrNoJob,
// ErrDigestMismatch, ErrSizeMismatch) are *plume.Error values, so they keep
// their API code when wrapped; MissingMediaError carries the digests a
// manifest lacks.
//
// # Packages
//
//   - api: the HTTP API (station ingest protocol, read API, metrics).
//   - ingest: checks and stores station uploads; opens cases.
//   - packer: builds evidence packages from the durable queue.
//   - evidence: writes and verifies the BagIt evidence package.
//   - store, blob: the embedded storage backends.
//   - server: wires it all; cmd/plume-central is the binary.
package central
