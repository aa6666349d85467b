package objectstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/blob/blobtest"
	"github.com/plume-emissions/plume/central/internal/testservers"
	"github.com/plume-emissions/plume/central/objectstore"
)

var ctx = context.Background()

// bucketSeq names each store's buckets: one MinIO server serves every
// subtest of TestObjectStore, each store with buckets of its own.
var bucketSeq atomic.Int64

func newConfig(m *testservers.MinIO, mode objectstore.Mode) objectstore.Config {
	n := bucketSeq.Add(1)
	cfg := objectstore.NewConfig()
	cfg.Endpoint, cfg.AccessKey, cfg.SecretKey = m.Endpoint, m.AccessKey, m.SecretKey
	cfg.EvidenceBucket = fmt.Sprintf("evidence-%d", n)
	cfg.ExportBucket = fmt.Sprintf("exports-%d", n)
	cfg.Mode = mode
	cfg.RetentionDays = 1
	cfg.ExportExpiryDays = 30
	return cfg
}

func mustOpen(tb testing.TB, cfg objectstore.Config) *objectstore.Store {
	tb.Helper()
	s, err := objectstore.Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func put(tb testing.TB, s *objectstore.Store, data []byte) string {
	tb.Helper()
	sum := blobtest.Sum(data)
	if created, err := s.Put(ctx, sum, bytes.NewReader(data), int64(len(data))); err != nil || !created {
		tb.Fatalf("put: created=%v err=%v", created, err)
	}
	return sum
}

func readAll(tb testing.TB, s *objectstore.Store, sum string) []byte {
	tb.Helper()
	rc, _, err := s.Open(ctx, sum)
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func objectKey(sum string) string { return sum[:2] + "/" + sum }

func TestObjectStore(t *testing.T) {
	m := testservers.StartMinIO(t)

	t.Run("Contract", func(t *testing.T) {
		blobtest.Run(t, func(tb testing.TB) central.BlobStore { return mustOpen(tb, newConfig(m, objectstore.Governance)) })
	})
	t.Run("BucketLockedWithConfiguredRetention", func(t *testing.T) { testBucketLock(t, m) })
	t.Run("LockedEvidenceCannotBeDeleted", func(t *testing.T) { testCannotDelete(t, m) })
	t.Run("LockedEvidenceCannotBeOverwritten", func(t *testing.T) { testCannotOverwrite(t, m) })
	t.Run("LegalHoldBlocksDeletion", func(t *testing.T) { testLegalHold(t, m) })
	t.Run("ComplianceModeBlocksBypass", func(t *testing.T) { testCompliance(t, m) })
	t.Run("ServerVerifiesChecksum", func(t *testing.T) { testServerChecksum(t, m) })
	t.Run("StreamsWithoutBuffering", func(t *testing.T) { testStreaming(t, m) })
	t.Run("ExportsAgeOutEvidenceNever", func(t *testing.T) { testLifecycle(t, m) })
	t.Run("ErrUnknownSize", func(t *testing.T) {
		s := mustOpen(t, newConfig(m, objectstore.Governance))
		if _, err := s.Put(ctx, blobtest.Sum([]byte("x")), strings.NewReader("x"), -1); plume.ErrorCode(err) != plume.EINVALID {
			t.Fatalf("got %v, want invalid", err)
		}
	})
	t.Run("ReopenIsIdempotent", func(t *testing.T) {
		cfg := newConfig(m, objectstore.Governance)
		s := mustOpen(t, cfg)
		sum := put(t, s, []byte("kept across restarts"))
		s2 := mustOpen(t, cfg) // another replica, or a restart
		if ok, err := s2.Exists(ctx, sum); !ok || err != nil {
			t.Fatalf("exists after reopen: %v %v", ok, err)
		}
	})
}

func testBucketLock(t *testing.T, m *testservers.MinIO) {
	cfg := newConfig(m, objectstore.Governance)
	s := mustOpen(t, cfg)
	enabled, mode, validity, unit, err := s.Client().GetObjectLockConfig(ctx, cfg.EvidenceBucket)
	if err != nil {
		t.Fatal(err)
	}
	if enabled != "Enabled" || mode == nil || *mode != minio.Governance || validity == nil || *validity != 1 || unit == nil || *unit != minio.Days {
		t.Fatalf("bucket lock: enabled=%q mode=%v validity=%v unit=%v", enabled, mode, validity, unit)
	}
	now := time.Now()
	sum := put(t, s, []byte("scene-1.jpg bytes"))
	r, err := s.Retention(ctx, sum)
	if err != nil {
		t.Fatal(err)
	}
	want := now.Add(24 * time.Hour)
	if r.Mode != objectstore.Governance || r.Until.Before(want.Add(-time.Minute)) || r.Until.After(want.Add(time.Minute)) {
		t.Fatalf("retention %+v, want governance until about %s", r, want)
	}

	// A bucket made elsewhere without locking is refused, not used.
	plain := newConfig(m, objectstore.Governance)
	if err := s.Client().MakeBucket(ctx, plain.EvidenceBucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := objectstore.Open(ctx, plain); err == nil || !strings.Contains(err.Error(), "without object lock") {
		t.Fatalf("open on an unlocked bucket: %v", err)
	}
}

// removeVersion deletes one version, as an administrator would try to.
func removeVersion(s *objectstore.Store, sum, version string, bypass bool) error {
	return s.Client().RemoveObject(ctx, s.EvidenceBucket(), objectKey(sum), minio.RemoveObjectOptions{VersionID: version, GovernanceBypass: bypass})
}

func testCannotDelete(t *testing.T, m *testservers.MinIO) {
	s := mustOpen(t, newConfig(m, objectstore.Governance))
	data := []byte("plate close-up, locked")
	sum := put(t, s, data)
	r, err := s.Retention(ctx, sum)
	if err != nil {
		t.Fatal(err)
	}
	if err := removeVersion(s, sum, r.VersionID, false); err == nil {
		t.Fatal("deleted a locked evidence version within its retention")
	} else {
		t.Logf("delete of the locked version refused: %v", err)
	}
	// A delete without a version only stacks a delete marker on top;
	// the locked version stays and is still served.
	if err := s.Client().RemoveObject(ctx, s.EvidenceBucket(), objectKey(sum), minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("delete marker: %v", err)
	}
	if got := readAll(t, s, sum); !bytes.Equal(got, data) {
		t.Fatalf("after a delete marker read %q", got)
	}
	if created, err := s.Put(ctx, sum, bytes.NewReader(data), int64(len(data))); err != nil || created {
		t.Fatalf("put after a delete marker: created=%v err=%v", created, err)
	}
	// Governance mode (test, staging) lets a privileged bypass through;
	// that is what tells it apart from compliance.
	if err := removeVersion(s, sum, r.VersionID, true); err != nil {
		t.Fatalf("governance bypass: %v", err)
	}
	if ok, err := s.Exists(ctx, sum); ok || err != nil {
		t.Fatalf("exists after bypass delete: %v %v", ok, err)
	}
}

func testCannotOverwrite(t *testing.T, m *testservers.MinIO) {
	s := mustOpen(t, newConfig(m, objectstore.Governance))
	data := []byte("the real clip")
	sum := put(t, s, data)
	orig, err := s.Retention(ctx, sum)
	if err != nil {
		t.Fatal(err)
	}
	// Somebody with write access PUTs other bytes under the same key.
	forged := []byte("a forged clip!")
	info, err := s.Client().PutObject(ctx, s.EvidenceBucket(), objectKey(sum), bytes.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("raw put: %v", err)
	}
	if info.VersionID == orig.VersionID {
		t.Fatal("the raw put replaced the locked version in place")
	}
	// The locked version is untouched and still served.
	obj, err := s.Client().GetObject(ctx, s.EvidenceBucket(), objectKey(sum), minio.GetObjectOptions{VersionID: orig.VersionID})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("original version reads %q, %v", got, err)
	}
	if got := readAll(t, s, sum); !bytes.Equal(got, data) {
		t.Fatalf("store serves %q after an overwrite, want the locked original", got)
	}
	if st, err := s.Stat(ctx, sum); err != nil || st.Size != int64(len(data)) {
		t.Fatalf("stat %+v %v", st, err)
	}
	// Its lock cannot be shortened either.
	past := time.Now().Add(time.Hour)
	gov := minio.Governance
	if err := s.Client().PutObjectRetention(ctx, s.EvidenceBucket(), objectKey(sum), minio.PutObjectRetentionOptions{
		VersionID: orig.VersionID, Mode: &gov, RetainUntilDate: &past,
	}); err == nil {
		t.Fatal("shortened the retention of a locked version without bypass")
	} else {
		t.Logf("shortening the retention refused: %v", err)
	}
	if err := removeVersion(s, sum, orig.VersionID, false); err == nil {
		t.Fatal("deleted the original after an overwrite")
	}
}

func testLegalHold(t *testing.T, m *testservers.MinIO) {
	s := mustOpen(t, newConfig(m, objectstore.Governance))
	sum := put(t, s, []byte("evidence package of an approved case"))
	if on, err := s.LegalHold(ctx, sum); err != nil || on {
		t.Fatalf("hold before: %v %v", on, err)
	}
	if err := s.SetLegalHold(ctx, sum, true); err != nil {
		t.Fatal(err)
	}
	if on, err := s.LegalHold(ctx, sum); err != nil || !on {
		t.Fatalf("hold after: %v %v", on, err)
	}
	r, err := s.Retention(ctx, sum)
	if err != nil {
		t.Fatal(err)
	}
	// Even the governance bypass cannot remove a held version.
	if err := removeVersion(s, sum, r.VersionID, true); err == nil {
		t.Fatal("deleted a version under legal hold")
	} else {
		t.Logf("delete with governance bypass of a held version refused: %v", err)
	}
	if ok, err := s.Exists(ctx, sum); !ok || err != nil {
		t.Fatalf("held blob gone: %v %v", ok, err)
	}
	if err := s.SetLegalHold(ctx, sum, false); err != nil {
		t.Fatal(err)
	}
	if err := removeVersion(s, sum, r.VersionID, true); err != nil {
		t.Fatalf("bypass delete once the hold was lifted: %v", err)
	}
	if err := s.SetLegalHold(ctx, blobtest.Sum([]byte("absent")), true); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("hold on a missing blob: %v", err)
	}
}

func testCompliance(t *testing.T, m *testservers.MinIO) {
	s := mustOpen(t, newConfig(m, objectstore.Compliance))
	sum := put(t, s, []byte("production evidence"))
	r, err := s.Retention(ctx, sum)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != objectstore.Compliance {
		t.Fatalf("mode %q", r.Mode)
	}
	if err := removeVersion(s, sum, r.VersionID, true); err == nil {
		t.Fatal("compliance-mode version deleted with the governance bypass")
	} else {
		t.Logf("compliance delete with bypass refused: %v", err)
	}
}

func testServerChecksum(t *testing.T, m *testservers.MinIO) {
	s := mustOpen(t, newConfig(m, objectstore.Governance))
	// Bypass Put's own check: send bytes whose x-amz-checksum-sha256
	// names other content, as a corrupting proxy would. The server
	// refuses them.
	data := []byte("bytes on the wire")
	other := sha256.Sum256([]byte("bytes the edge hashed"))
	_, err := s.Client().PutObject(ctx, s.EvidenceBucket(), "xx/probe", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		DisableMultipart: true,
		UserMetadata:     map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(other[:])},
	})
	if err == nil {
		t.Fatal("server stored bytes that do not match x-amz-checksum-sha256")
	} else {
		t.Logf("server refused a wrong checksum: %v", err)
	}
	if _, err := s.Client().StatObject(ctx, s.EvidenceBucket(), "xx/probe", minio.StatObjectOptions{}); err == nil {
		t.Fatal("mismatched object became visible")
	}
	// And the stored checksum of a good Put is the key's digest.
	sum := put(t, s, data)
	info, err := s.Client().StatObject(ctx, s.EvidenceBucket(), objectKey(sum), minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if info.ChecksumSHA256 != base64.StdEncoding.EncodeToString(want[:]) {
		t.Fatalf("stored checksum %q", info.ChecksumSHA256)
	}
}

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func testStreaming(t *testing.T, m *testservers.MinIO) {
	s := mustOpen(t, newConfig(m, objectstore.Governance))
	const size = 48 << 20 // larger than a multipart part, so buffering would show
	h := sha256.New()
	io.Copy(h, &patternReader{n: size})
	sum := fmt.Sprintf("%x", h.Sum(nil))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	created, err := s.Put(ctx, sum, &patternReader{n: size}, size)
	runtime.ReadMemStats(&after)
	if err != nil || !created {
		t.Fatalf("put: %v %v", created, err)
	}
	if grew := int64(after.TotalAlloc - before.TotalAlloc); grew > size/4 {
		t.Fatalf("put of %d MiB allocated %d MiB: the clip was buffered", size>>20, grew>>20)
	}
	if st, err := s.Stat(ctx, sum); err != nil || st.Size != size {
		t.Fatalf("stat %+v %v", st, err)
	}
}

func testLifecycle(t *testing.T, m *testservers.MinIO) {
	cfg := newConfig(m, objectstore.Governance)
	s := mustOpen(t, cfg)
	lc, err := s.Client().GetBucketLifecycle(ctx, cfg.ExportBucket)
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.Rules) != 1 || int(lc.Rules[0].Expiration.Days) != cfg.ExportExpiryDays || lc.Rules[0].Status != "Enabled" {
		t.Fatalf("export lifecycle %+v", lc.Rules)
	}
	if _, err := s.Client().GetBucketLifecycle(ctx, cfg.EvidenceBucket); minio.ToErrorResponse(err).Code != "NoSuchLifecycleConfiguration" {
		t.Fatalf("evidence bucket lifecycle: %v", err)
	}

	csv := []byte("pass_id,station,outcome\nP1,S1,pass\n")
	if err := s.PutExport(ctx, "passes/2026-11.csv", bytes.NewReader(csv), int64(len(csv)), "text/csv"); err != nil {
		t.Fatal(err)
	}
	rc, err := s.OpenExport(ctx, "passes/2026-11.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, csv) {
		t.Fatalf("export reads %q", got)
	}
	if _, err := s.OpenExport(ctx, "passes/none.csv"); !errors.Is(err, central.ErrNotFound) {
		t.Fatalf("missing export: %v", err)
	}
	for _, bad := range []string{"", "../x", "a//b", "a/./b", "sp ace"} {
		if err := s.PutExport(ctx, bad, strings.NewReader("x"), 1, ""); plume.ErrorCode(err) != plume.EINVALID {
			t.Errorf("export name %q: %v", bad, err)
		}
	}

	// Somebody adds an expiry rule to the evidence bucket: either the
	// server refuses it, or central refuses to start on it.
	rule := lifecycle.NewConfiguration()
	rule.Rules = []lifecycle.Rule{{ID: "oops", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 30}}}
	if err := s.Client().SetBucketLifecycle(ctx, cfg.EvidenceBucket, rule); err != nil {
		t.Logf("server refused an expiry rule on the locked bucket: %v", err)
		return
	}
	if _, err := objectstore.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "never age out") {
		t.Fatalf("open with an expiry rule on evidence: %v", err)
	}
}
