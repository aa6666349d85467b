// Package objectstore is central's scale-out blob store: a central.BlobStore
// on an S3-compatible object store (MinIO in production and in tests),
// shared by every central replica.
//
// # Buckets
//
// Evidence (media and evidence packages) lives in the evidence bucket, keyed
// by lowercase hex SHA-256 ("<first two hex digits>/<sha256>", as on disk).
// Open creates it with S3 object locking (which turns on versioning) and
// sets its default retention from Config: governance mode for test and
// staging, compliance mode for production. Every evidence object is also
// written with that mode and a retain-until date of its own, so an object
// is locked even if somebody later loosens the bucket default. A locked
// version cannot be deleted or replaced before its date: a PUT to the same
// key only adds a newer version, and Open and Stat always serve the newest
// version whose stored SHA-256 matches its key.
//
// Exports of pass records live in a second bucket without object lock,
// whose lifecycle rule expires objects after Config.ExportExpiryDays. The
// evidence bucket never gets an expiration rule: Open refuses to start
// if it finds one, so evidence outlives every policy except its own
// retention, and even then nothing deletes it by itself.
//
// # Integrity
//
// Put streams the reader straight into a single PUT of known size (no
// multipart, no buffering of the clip) while hashing it. The request
// carries x-amz-checksum-sha256 (the digest named by the key), which the
// server checks before the object becomes visible; Put also checks the
// digest and size itself and aborts the upload on a mismatch. Reads ask
// for the stored checksum and are verified at EOF.
//
// # Legal hold
//
// SetLegalHold places or lifts a legal hold on one blob. A held version
// cannot be deleted even after its retention date, in either mode. The
// review flow calls it for the media and package of an approved case.
package objectstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Mode is an object-lock retention mode.
type Mode string

// Retention modes.
const (
	// Governance locks versions against ordinary users; an account with
	// s3:BypassGovernanceRetention may still delete them. For test and
	// staging.
	Governance Mode = "governance"
	// Compliance locks versions against everyone, root included, until
	// their retain-until date. For production.
	Compliance Mode = "compliance"
)

// Config configures a Store. Zero fields take NewConfig's defaults, except
// the endpoint and keys, which are required.
type Config struct {
	Endpoint  string // host:port of the S3 API, e.g. minio:9000
	AccessKey string
	SecretKey string
	Secure    bool   // HTTPS
	Region    string // default "us-east-1" (MinIO's default)

	EvidenceBucket string // default "plume-evidence"
	ExportBucket   string // default "plume-exports"

	// Mode is the evidence retention mode: Governance (test, staging) or
	// Compliance (production). Required: there is no safe default.
	Mode Mode
	// RetentionDays is how long every evidence version stays locked
	// (default 3650, ten years).
	RetentionDays int
	// ExportExpiryDays is after how many days the lifecycle rule deletes
	// an export (default 400).
	ExportExpiryDays int

	Logger *slog.Logger
	Now    func() time.Time
}

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{
		Region:           "us-east-1",
		EvidenceBucket:   "plume-evidence",
		ExportBucket:     "plume-exports",
		RetentionDays:    3650,
		ExportExpiryDays: 400,
	}
}

func (c *Config) fill() error {
	def := NewConfig()
	if c.Endpoint == "" || c.AccessKey == "" || c.SecretKey == "" {
		return errors.New("object store: endpoint, access key and secret key are required")
	}
	switch c.Mode {
	case Governance, Compliance:
	default:
		return fmt.Errorf("object store: retention mode %q: want %q or %q", c.Mode, Governance, Compliance)
	}
	if c.Region == "" {
		c.Region = def.Region
	}
	if c.EvidenceBucket == "" {
		c.EvidenceBucket = def.EvidenceBucket
	}
	if c.ExportBucket == "" {
		c.ExportBucket = def.ExportBucket
	}
	if c.EvidenceBucket == c.ExportBucket {
		return errors.New("object store: evidence and export buckets must differ")
	}
	if c.RetentionDays <= 0 {
		c.RetentionDays = def.RetentionDays
	}
	if c.ExportExpiryDays <= 0 {
		c.ExportExpiryDays = def.ExportExpiryDays
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func (m Mode) lock() minio.RetentionMode {
	if m == Compliance {
		return minio.Compliance
	}
	return minio.Governance
}

// Store is the object-store implementation of central.BlobStore. It is safe
// for concurrent use, by several goroutines and several replicas.
type Store struct {
	cfg    Config
	client *minio.Client
	logger *slog.Logger
}

var _ central.BlobStore = (*Store)(nil)

// Open connects to the object store and makes sure both buckets exist with
// the configured lock, retention and lifecycle. It is safe to call from
// several replicas at once.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
		// Needed for x-amz-checksum-* headers on PUT.
		TrailingHeaders: true,
	})
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	s := &Store{cfg: cfg, client: client, logger: cfg.Logger.With("component", "objectstore")}
	if err := s.ensureEvidenceBucket(ctx); err != nil {
		return nil, err
	}
	if err := s.ensureExportBucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Client returns the underlying S3 client, for tests and operator tools.
func (s *Store) Client() *minio.Client { return s.client }

// EvidenceBucket returns the name of the evidence bucket.
func (s *Store) EvidenceBucket() string { return s.cfg.EvidenceBucket }

// ExportBucket returns the name of the export bucket.
func (s *Store) ExportBucket() string { return s.cfg.ExportBucket }

func (s *Store) ensureEvidenceBucket(ctx context.Context) error {
	b := s.cfg.EvidenceBucket
	if err := s.makeBucket(ctx, b, true); err != nil {
		return err
	}
	enabled, mode, validity, unit, err := s.client.GetObjectLockConfig(ctx, b)
	if err != nil && minio.ToErrorResponse(err).Code != "ObjectLockConfigurationNotFoundError" {
		return fmt.Errorf("evidence bucket %s: read object lock: %w", b, err)
	}
	if enabled != "Enabled" {
		// Locking cannot be turned on safely after the fact here:
		// versions written before it would be unprotected.
		return fmt.Errorf("evidence bucket %s exists without object lock; create it with locking (mc mb --with-lock) or pick another bucket", b)
	}
	want, days, dayUnit := s.cfg.Mode.lock(), uint(s.cfg.RetentionDays), minio.Days
	if mode == nil || *mode != want || validity == nil || *validity != days || unit == nil || *unit != dayUnit {
		if err := s.client.SetObjectLockConfig(ctx, b, &want, &days, &dayUnit); err != nil {
			return fmt.Errorf("evidence bucket %s: set default retention: %w", b, err)
		}
		s.logger.Info("evidence bucket default retention set", "bucket", b, "mode", want, "days", days)
	}
	// Evidence never expires by policy: refuse a lifecycle rule that
	// would delete it.
	lc, err := s.client.GetBucketLifecycle(ctx, b)
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchLifecycleConfiguration" {
		return fmt.Errorf("evidence bucket %s: read lifecycle: %w", b, err)
	}
	if lc != nil {
		for _, r := range lc.Rules {
			if r.Status == "Enabled" && expires(r) {
				return fmt.Errorf("evidence bucket %s has lifecycle rule %q that expires objects; evidence must never age out: remove the rule", b, r.ID)
			}
		}
	}
	return nil
}

func expires(r lifecycle.Rule) bool {
	return !r.Expiration.IsNull() || !r.NoncurrentVersionExpiration.IsDaysNull() || !r.AllVersionsExpiration.IsNull()
}

// exportRuleID names the lifecycle rule of the export bucket.
const exportRuleID = "plume-exports-expire"

func (s *Store) ensureExportBucket(ctx context.Context) error {
	b := s.cfg.ExportBucket
	if err := s.makeBucket(ctx, b, false); err != nil {
		return err
	}
	cfg := lifecycle.NewConfiguration()
	cfg.Rules = []lifecycle.Rule{{
		ID:         exportRuleID,
		Status:     "Enabled",
		Expiration: lifecycle.Expiration{Days: lifecycle.ExpirationDays(s.cfg.ExportExpiryDays)},
		// Cleans up uploads a crashed replica never finished.
		AbortIncompleteMultipartUpload: lifecycle.AbortIncompleteMultipartUpload{DaysAfterInitiation: 1},
	}}
	if err := s.client.SetBucketLifecycle(ctx, b, cfg); err != nil {
		return fmt.Errorf("export bucket %s: set lifecycle: %w", b, err)
	}
	return nil
}

func (s *Store) makeBucket(ctx context.Context, b string, locking bool) error {
	err := s.client.MakeBucket(ctx, b, minio.MakeBucketOptions{Region: s.cfg.Region, ObjectLocking: locking})
	if err == nil {
		s.logger.Info("bucket created", "bucket", b, "object_lock", locking)
		return nil
	}
	switch minio.ToErrorResponse(err).Code {
	case "BucketAlreadyOwnedByYou", "BucketAlreadyExists": // another replica, or an earlier run
		return nil
	}
	return fmt.Errorf("create bucket %s: %w", b, err)
}

// key returns the object key of a validated digest.
func key(sum string) (string, error) {
	if !plume.ValidSHA256(sum) {
		return "", plume.Errorf(plume.EINVALID, "invalid sha256 %q", truncate(sum))
	}
	return sum[:2] + "/" + sum, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// checksumOf returns the base64 SHA-256 (as x-amz-checksum-sha256 carries
// it) of a validated hex digest.
func checksumOf(sum string) string {
	b, _ := hex.DecodeString(sum)
	return base64.StdEncoding.EncodeToString(b)
}

// Put implements central.BlobStore. The size must be known (>= 0): an
// object store needs it for a single verified PUT.
func (s *Store) Put(ctx context.Context, sum string, r io.Reader, size int64) (bool, error) {
	k, err := key(sum)
	if err != nil {
		return false, err
	}
	if size < 0 {
		return false, plume.Errorf(plume.EINVALID, "blob size is required")
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("put blob %s: %w", sum[:12], err)
	}
	if _, err := s.resolve(ctx, sum, k); err == nil {
		return false, nil
	} else if !errors.Is(err, central.ErrNotFound) {
		return false, fmt.Errorf("put blob %s: %w", sum[:12], err)
	}
	vr := &verifyingReader{ctx: ctx, r: r, h: sha256.New(), left: size, want: sum}
	opts := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		Mode:             s.cfg.Mode.lock(),
		RetainUntilDate:  s.cfg.Now().UTC().Add(time.Duration(s.cfg.RetentionDays) * 24 * time.Hour),
		DisableMultipart: true, // one PUT, so the server can check the whole-object SHA-256
		UserMetadata:     map[string]string{"x-amz-checksum-sha256": checksumOf(sum)},
	}
	var body io.Reader = vr
	if size == 0 {
		// An empty body is never read by the transport: check it now.
		if err := vr.finish(); !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("put blob %s: %w", sum[:12], err)
		}
		body = bytes.NewReader(nil)
	}
	// Never replace a version that is already there: a concurrent Put of
	// the same blob loses with 412 and finds the winner's copy.
	opts.SetMatchETagExcept("*")
	_, err = s.client.PutObject(ctx, s.cfg.EvidenceBucket, k, body, size, opts)
	if vr.err != nil { // our own verdict on the bytes comes first
		return false, fmt.Errorf("put blob %s: %w", sum[:12], vr.err)
	}
	if err != nil {
		resp := minio.ToErrorResponse(err)
		switch {
		case resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed":
			if _, err := s.resolve(ctx, sum, k); err != nil {
				return false, fmt.Errorf("put blob %s: lost a race, then: %w", sum[:12], err)
			}
			return false, nil
		case resp.Code == "BadDigest" || resp.Code == "XAmzContentChecksumMismatch" || resp.Code == "InvalidDigest":
			return false, fmt.Errorf("put blob %s: %w", sum[:12], central.ErrDigestMismatch)
		case ctx.Err() != nil:
			return false, fmt.Errorf("put blob %s: %w", sum[:12], ctx.Err())
		}
		return false, fmt.Errorf("put blob %s: %w", sum[:12], err)
	}
	if !vr.done {
		// The transport stopped at the declared size without asking for
		// more. The server already checked the digest; check for extra
		// bytes, which mean the caller's size was wrong.
		if err := vr.finish(); !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("put blob %s: %w", sum[:12], err)
		}
	}
	return true, nil
}

// verifyingReader streams the body while hashing and counting it. When the
// declared size has been read it checks for extra bytes and compares the
// digest, returning an error instead of EOF on a mismatch, so the upload
// is aborted before its last chunk and nothing becomes visible.
type verifyingReader struct {
	ctx  context.Context
	r    io.Reader
	h    hash.Hash
	left int64
	want string
	err  error // sticky
	done bool  // the body was complete and verified
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.done {
		return 0, io.EOF
	}
	if err := v.ctx.Err(); err != nil {
		v.err = err
		return 0, err
	}
	if v.left == 0 {
		return 0, v.finish()
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	switch {
	case errors.Is(err, io.EOF) && v.left > 0:
		v.err = central.ErrSizeMismatch
		return n, v.err
	case err != nil && !errors.Is(err, io.EOF):
		v.err = fmt.Errorf("read body: %w", err)
		return n, v.err
	case v.left == 0 && n > 0:
		return n, nil // finish on the next call
	}
	return n, nil
}

func (v *verifyingReader) finish() error {
	var probe [1]byte
	n, err := io.ReadFull(v.r, probe[:])
	switch {
	case n > 0:
		v.err = central.ErrSizeMismatch
	case err != nil && !errors.Is(err, io.EOF):
		v.err = fmt.Errorf("read body: %w", err)
	case hex.EncodeToString(v.h.Sum(nil)) != v.want:
		v.err = central.ErrDigestMismatch
	}
	if v.err != nil {
		return v.err
	}
	v.done = true
	return io.EOF
}

// resolve returns the version ID to serve for a blob: the newest version
// whose stored SHA-256 matches its key. The newest version is the usual
// answer; older ones are searched only when the newest is missing its
// checksum, holds other bytes, or is a delete marker, which is what an
// overwrite or a delete on a locked key leaves behind.
func (s *Store) resolve(ctx context.Context, sum, k string) (string, error) {
	info, err := s.client.StatObject(ctx, s.cfg.EvidenceBucket, k, minio.StatObjectOptions{Checksum: true})
	if err == nil && info.ChecksumSHA256 == checksumOf(sum) {
		return info.VersionID, nil
	}
	if err != nil && !info.IsDeleteMarker {
		if isNotFound(err) {
			return "", central.ErrNotFound
		}
		return "", err
	}
	s.logger.Warn("newest version of a blob is not its content; searching older versions", "sha256", sum, "version", info.VersionID, "delete_marker", info.IsDeleteMarker)
	for obj := range s.client.ListObjects(ctx, s.cfg.EvidenceBucket, minio.ListObjectsOptions{Prefix: k, WithVersions: true}) {
		if obj.Err != nil {
			return "", obj.Err
		}
		if obj.Key != k || obj.IsDeleteMarker {
			continue
		}
		vi, err := s.client.StatObject(ctx, s.cfg.EvidenceBucket, k, minio.StatObjectOptions{VersionID: obj.VersionID, Checksum: true})
		if err == nil && vi.ChecksumSHA256 == checksumOf(sum) {
			return obj.VersionID, nil
		}
	}
	return "", central.ErrNotFound
}

func isNotFound(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchVersion":
		return true
	}
	return false
}

// Open implements central.BlobStore. Reading to EOF verifies the bytes
// against the stored checksum.
func (s *Store) Open(ctx context.Context, sum string) (io.ReadSeekCloser, central.BlobInfo, error) {
	k, err := key(sum)
	if err != nil {
		return nil, central.BlobInfo{}, err
	}
	version, err := s.resolve(ctx, sum, k)
	if err != nil {
		return nil, central.BlobInfo{}, fmt.Errorf("open blob %s: %w", sum[:12], err)
	}
	obj, err := s.client.GetObject(ctx, s.cfg.EvidenceBucket, k, minio.GetObjectOptions{VersionID: version, Checksum: true})
	if err != nil {
		return nil, central.BlobInfo{}, fmt.Errorf("open blob %s: %w", sum[:12], err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if isNotFound(err) {
			err = central.ErrNotFound
		}
		return nil, central.BlobInfo{}, fmt.Errorf("open blob %s: %w", sum[:12], err)
	}
	return obj, central.BlobInfo{SHA256: sum, Size: st.Size}, nil
}

// Stat implements central.BlobStore.
func (s *Store) Stat(ctx context.Context, sum string) (central.BlobInfo, error) {
	k, err := key(sum)
	if err != nil {
		return central.BlobInfo{}, err
	}
	version, err := s.resolve(ctx, sum, k)
	if err != nil {
		return central.BlobInfo{}, fmt.Errorf("stat blob %s: %w", sum[:12], err)
	}
	info, err := s.client.StatObject(ctx, s.cfg.EvidenceBucket, k, minio.StatObjectOptions{VersionID: version})
	if err != nil {
		return central.BlobInfo{}, fmt.Errorf("stat blob %s: %w", sum[:12], err)
	}
	return central.BlobInfo{SHA256: sum, Size: info.Size}, nil
}

// Exists implements central.BlobStore.
func (s *Store) Exists(ctx context.Context, sum string) (bool, error) {
	_, err := s.Stat(ctx, sum)
	if errors.Is(err, central.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// SetLegalHold places (on) or lifts (off) a legal hold on the blob's
// served version. A held version cannot be deleted by anyone, in either
// retention mode and even after its retain-until date, until the hold is
// lifted. Returns central.ErrNotFound if the blob is not held.
//
// The review flow calls it with on=true for every media item and the
// evidence package of an approved case, and with on=false only when a
// court or the bureau releases the case.
func (s *Store) SetLegalHold(ctx context.Context, sum string, on bool) error {
	k, err := key(sum)
	if err != nil {
		return err
	}
	version, err := s.resolve(ctx, sum, k)
	if err != nil {
		return fmt.Errorf("legal hold %s: %w", sum[:12], err)
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	if err := s.client.PutObjectLegalHold(ctx, s.cfg.EvidenceBucket, k, minio.PutObjectLegalHoldOptions{VersionID: version, Status: &status}); err != nil {
		return fmt.Errorf("legal hold %s: %w", sum[:12], err)
	}
	s.logger.Info("legal hold set", "sha256", sum, "version", version, "on", on)
	return nil
}

// LegalHold reports whether the blob's served version is under legal hold.
func (s *Store) LegalHold(ctx context.Context, sum string) (bool, error) {
	k, err := key(sum)
	if err != nil {
		return false, err
	}
	version, err := s.resolve(ctx, sum, k)
	if err != nil {
		return false, fmt.Errorf("legal hold %s: %w", sum[:12], err)
	}
	st, err := s.client.GetObjectLegalHold(ctx, s.cfg.EvidenceBucket, k, minio.GetObjectLegalHoldOptions{VersionID: version})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchObjectLockConfiguration" {
			return false, nil
		}
		return false, fmt.Errorf("legal hold %s: %w", sum[:12], err)
	}
	return st != nil && *st == minio.LegalHoldEnabled, nil
}

// Retention is the lock on one stored version.
type Retention struct {
	VersionID string
	Mode      Mode
	Until     time.Time
}

// Retention returns the lock on the blob's served version.
func (s *Store) Retention(ctx context.Context, sum string) (Retention, error) {
	k, err := key(sum)
	if err != nil {
		return Retention{}, err
	}
	version, err := s.resolve(ctx, sum, k)
	if err != nil {
		return Retention{}, fmt.Errorf("retention %s: %w", sum[:12], err)
	}
	mode, until, err := s.client.GetObjectRetention(ctx, s.cfg.EvidenceBucket, k, version)
	if err != nil {
		return Retention{}, fmt.Errorf("retention %s: %w", sum[:12], err)
	}
	r := Retention{VersionID: version}
	if mode != nil {
		r.Mode = Mode(strings.ToLower(mode.String()))
	}
	if until != nil {
		r.Until = *until
	}
	return r, nil
}

// PutExport stores an export of pass records (e.g. a CSV for a period)
// under name in the export bucket, where the lifecycle rule deletes it
// after ExportExpiryDays. An export of the same name is replaced.
func (s *Store) PutExport(ctx context.Context, name string, r io.Reader, size int64, contentType string) error {
	if err := validExportName(name); err != nil {
		return err
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	if _, err := s.client.PutObject(ctx, s.cfg.ExportBucket, name, r, size, minio.PutObjectOptions{ContentType: contentType}); err != nil {
		return fmt.Errorf("put export %s: %w", name, err)
	}
	return nil
}

// OpenExport opens an export, or returns central.ErrNotFound.
func (s *Store) OpenExport(ctx context.Context, name string) (io.ReadSeekCloser, error) {
	if err := validExportName(name); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.cfg.ExportBucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("open export %s: %w", name, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if isNotFound(err) {
			err = central.ErrNotFound
		}
		return nil, fmt.Errorf("open export %s: %w", name, err)
	}
	return obj, nil
}

// validExportName accepts slash-separated names of letters, digits, '-',
// '_' and '.', without empty, "." or ".." segments.
func validExportName(name string) error {
	bad := name == "" || len(name) > 512
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			bad = true
		}
	}
	if !bad {
		bad = bytes.ContainsFunc([]byte(name), func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r))
		})
	}
	if bad {
		return plume.Errorf(plume.EINVALID, "invalid export name %q", truncate(name))
	}
	return nil
}

// Env lists the environment variables ConfigFromEnv reads, with what each
// sets. deploy/'s compose file and Kubernetes ConfigMap use these names.
var Env = map[string]string{
	"PLUME_BLOB_ENDPOINT":        "Endpoint: host:port of the S3 API",
	"PLUME_BLOB_ACCESS_KEY":      "AccessKey (a secret)",
	"PLUME_BLOB_SECRET_KEY":      "SecretKey (a secret)",
	"PLUME_BLOB_SECURE":          "Secure: true for HTTPS",
	"PLUME_BLOB_REGION":          "Region",
	"PLUME_BLOB_EVIDENCE_BUCKET": "EvidenceBucket",
	"PLUME_BLOB_EXPORT_BUCKET":   "ExportBucket",
	"PLUME_BLOB_RETENTION_MODE":  "Mode: governance (test, staging) or compliance (production)",
	"PLUME_BLOB_RETENTION_DAYS":  "RetentionDays",
	"PLUME_EXPORT_EXPIRY_DAYS":   "ExportExpiryDays",
}

// ConfigFromEnv returns NewConfig overridden by the variables in Env, read
// through getenv (os.Getenv in a main). It checks the values parse; Open
// checks the rest.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := NewConfig()
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	var errs []error
	num := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive whole number", name, v))
				return
			}
			*dst = n
		}
	}
	str("PLUME_BLOB_ENDPOINT", &cfg.Endpoint)
	str("PLUME_BLOB_ACCESS_KEY", &cfg.AccessKey)
	str("PLUME_BLOB_SECRET_KEY", &cfg.SecretKey)
	str("PLUME_BLOB_REGION", &cfg.Region)
	str("PLUME_BLOB_EVIDENCE_BUCKET", &cfg.EvidenceBucket)
	str("PLUME_BLOB_EXPORT_BUCKET", &cfg.ExportBucket)
	if v := getenv("PLUME_BLOB_SECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("PLUME_BLOB_SECURE=%q: want true or false", v))
		}
		cfg.Secure = b
	}
	if v := getenv("PLUME_BLOB_RETENTION_MODE"); v != "" {
		cfg.Mode = Mode(strings.ToLower(v))
		if cfg.Mode != Governance && cfg.Mode != Compliance {
			errs = append(errs, fmt.Errorf("PLUME_BLOB_RETENTION_MODE=%q: want governance or compliance", v))
		}
	}
	num("PLUME_BLOB_RETENTION_DAYS", &cfg.RetentionDays)
	num("PLUME_EXPORT_EXPIRY_DAYS", &cfg.ExportExpiryDays)
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("object store config: %w", err)
	}
	return cfg, nil
}
