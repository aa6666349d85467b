package spool_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
	"github.com/plume-emissions/plume/edge/spool/spooltest"
)

var (
	ctx = context.Background()
	t0  = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
)

func pendingIDs(tb testing.TB, s *spool.Spool) []plume.EvidenceID {
	tb.Helper()
	ev, err := s.PendingEvidence(ctx, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []plume.EvidenceID
	for _, e := range ev {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestEvidence(t *testing.T) {
	s := spooltest.Open(t, spool.Options{})
	key := spooltest.Key()
	var want []plume.EvidenceID
	for i := range 3 {
		m := spooltest.AddEvidence(t, s, key, t0.Add(time.Duration(i)*time.Second), []byte("scene"), []byte{byte(i)})
		want = append(want, m.ID)
	}
	t.Run("FIFO", func(t *testing.T) {
		if got := pendingIDs(t, s); !equal(got, want) {
			t.Fatalf("pending %v, want %v", got, want)
		}
	})
	t.Run("Idempotent", func(t *testing.T) {
		m, body, sig := spooltest.Evidence(t, s, key, t0, []byte("scene"), []byte{0})
		if err := s.AddEvidence(ctx, m, body, sig); err != nil {
			t.Fatal(err)
		}
		if got := pendingIDs(t, s); len(got) != 3 {
			t.Fatalf("resend queued twice: %v", got)
		}
	})
	t.Run("ManifestAndMediaOnDisk", func(t *testing.T) {
		ev, _ := s.PendingEvidence(ctx, 1)
		body, err := os.ReadFile(filepath.Join(s.Dir(), "evidence", string(ev[0].ID)+".json"))
		if err != nil || !bytes.Equal(body, ev[0].Manifest) {
			t.Fatalf("manifest file: %v", err)
		}
		if !plume.VerifyManifest(spooltest.Key().Public().(ed25519.PublicKey), ev[0].Manifest, ev[0].Signature) {
			t.Fatal("signature does not verify")
		}
		f, n, err := s.OpenMedia(ev[0].Media[0].SHA256)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if n != 5 {
			t.Fatalf("size %d", n)
		}
	})
	t.Run("DeliveredNotRequeued", func(t *testing.T) {
		if err := s.MarkEvidenceDelivered(ctx, want[0]); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkEvidenceDelivered(ctx, want[0]); err != nil {
			t.Fatalf("second mark: %v", err)
		}
		m, body, sig := spooltest.Evidence(t, s, key, t0, []byte("scene"), []byte{0})
		if err := s.AddEvidence(ctx, m, body, sig); err != nil {
			t.Fatal(err)
		}
		if got := pendingIDs(t, s); !equal(got, want[1:]) {
			t.Fatalf("pending %v, want %v", got, want[1:])
		}
		if st := s.Stats(); st.EvidenceDelivered != 1 || st.QueuedEvidence != 2 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestAddEvidence_ErrMediaMissing(t *testing.T) {
	s := spooltest.Open(t, spool.Options{})
	other := spooltest.Open(t, spool.Options{})
	// Media stored in another spool is not in this one.
	m, body, sig := spooltest.Evidence(t, other, spooltest.Key(), t0, []byte("clip"))
	err := s.AddEvidence(ctx, m, body, sig)
	if !errors.Is(err, spool.ErrMediaMissing) {
		t.Fatalf("got %v, want ErrMediaMissing", err)
	}
	if !strings.Contains(err.Error(), m.Media[0].SHA256) {
		t.Fatalf("error does not name the media: %v", err)
	}
	if got := pendingIDs(t, s); len(got) != 0 {
		t.Fatalf("queued without media: %v", got)
	}
}

func TestAddEvidence_ErrInvalid(t *testing.T) {
	s := spooltest.Open(t, spool.Options{})
	m, body, sig := spooltest.Evidence(t, s, spooltest.Key(), t0)
	for name, tc := range map[string]struct{ body, sig []byte }{
		"Garbage":  {[]byte("{"), sig},
		"ShortSig": {body, sig[:10]},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.AddEvidence(ctx, m, tc.body, tc.sig); plume.ErrorCode(err) != plume.EINVALID {
				t.Fatalf("got %v, want invalid", err)
			}
		})
	}
}

func TestRecords(t *testing.T) {
	s := spooltest.Open(t, spool.Options{})
	for i := range 5 {
		if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Duration(i)*time.Second), plume.OutcomePass)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddRecord(ctx, spooltest.Record(t0, plume.OutcomePass)); err != nil {
		t.Fatal(err)
	}
	items, err := s.PendingRecords(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || !items[0].Record.Time.Equal(t0) || !items[2].Record.Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("first batch %+v", items)
	}
	if err := s.MarkRecordsDelivered(ctx, items); err != nil {
		t.Fatal(err)
	}
	rest, _ := s.PendingRecords(ctx, 100)
	if len(rest) != 2 || rest[0].Seq <= items[2].Seq {
		t.Fatalf("rest %+v", rest)
	}
	// A delivered record resent by the analyser is not queued again.
	if err := s.AddRecord(ctx, spooltest.Record(t0, plume.OutcomePass)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.QueuedRecords != 2 || st.RecordsDelivered != 3 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.AddRecord(ctx, plume.Record{Kind: "bogus"}); plume.ErrorCode(err) != plume.EINVALID {
		t.Fatalf("invalid record: %v", err)
	}
}

func TestDeadLetter(t *testing.T) {
	s := spooltest.Open(t, spool.Options{})
	m := spooltest.AddEvidence(t, s, spooltest.Key(), t0, []byte("x"))
	rec := spooltest.Record(t0, plume.OutcomePass)
	if err := s.AddRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, spool.KindEvidence, string(m.ID), "invalid: bad plate"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, spool.KindRecord, rec.ID, "forbidden: nope"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, spool.KindRecord, rec.ID, "again"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("second dead-letter: %v", err)
	}
	dl, err := s.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 2 || dl[0].ID != string(m.ID) || dl[0].Reason != "invalid: bad plate" || dl[1].Kind != spool.KindRecord {
		t.Fatalf("dead letters %+v", dl)
	}
	if len(pendingIDs(t, s)) != 0 {
		t.Fatal("dead letter still queued")
	}
	// A resend of a dead-lettered item does not requeue it silently.
	if err := s.AddRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.DeadLetters != 2 || st.QueuedRecords != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Media of a dead letter is kept.
	if f, _, err := s.OpenMedia(m.Media[0].SHA256); err != nil {
		t.Fatalf("dead letter's media: %v", err)
	} else {
		f.Close()
	}
	t.Run("Requeue", func(t *testing.T) {
		if err := s.Requeue(ctx, spool.KindEvidence, string(m.ID)); err != nil {
			t.Fatal(err)
		}
		if got := pendingIDs(t, s); len(got) != 1 || got[0] != m.ID {
			t.Fatalf("pending %v", got)
		}
		if err := s.Requeue(ctx, spool.KindEvidence, string(m.ID)); !errors.Is(err, spool.ErrNotFound) {
			t.Fatalf("requeue twice: %v", err)
		}
		if err := s.MarkEvidenceDelivered(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		dl, _ := s.DeadLetters(ctx)
		if len(dl) != 1 {
			t.Fatalf("dead letters %+v", dl)
		}
	})
}

func TestReopenResumes(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(ctx, dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m1 := spooltest.AddEvidence(t, s, spooltest.Key(), t0, []byte("a"))
	m2 := spooltest.AddEvidence(t, s, spooltest.Key(), t0.Add(time.Second), []byte("b"))
	if err := s.MarkEvidenceDelivered(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRecord(ctx, spooltest.Record(t0, plume.OutcomePass)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = spooltest.OpenDir(t, dir, spool.Options{Logger: spooltest.Logger(t)})
	if got := pendingIDs(t, s); len(got) != 1 || got[0] != m2.ID {
		t.Fatalf("pending after reopen %v", got)
	}
	if st := s.Stats(); st.QueuedRecords != 1 || st.OrphansQuarantined != 0 || st.MissingMedia != 0 || st.Rebuilt {
		t.Fatalf("stats %+v", st)
	}
}

func TestReconcile(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(ctx, dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := spooltest.Key()
	kept := spooltest.AddEvidence(t, s, key, t0, []byte("kept"))
	lost := spooltest.AddEvidence(t, s, key, t0.Add(time.Second), []byte("lost"))
	// Media stored, evidence never added (crash between the two calls).
	orphan, _, err := s.PutMedia(ctx, strings.NewReader("orphan"))
	if err != nil {
		t.Fatal(err)
	}
	// A manifest written to evidence/ whose commit never happened.
	um, ubody, usig := spooltest.Evidence(t, s, key, t0.Add(2*time.Second), []byte("kept"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "evidence", string(um.ID)+".json"), ubody, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "evidence", string(um.ID)+".sig"), []byte(plume.EncodeKey(usig)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "media", lost.Media[0].SHA256[:2], lost.Media[0].SHA256)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "media", ".tmp-123"), []byte("half a clip"), 0o600); err != nil {
		t.Fatal(err)
	}

	s = spooltest.OpenDir(t, dir, spool.Options{})
	st := s.Stats()
	t.Run("OrphanQuarantined", func(t *testing.T) {
		if st.OrphansQuarantined != 1 {
			t.Fatalf("orphans %d", st.OrphansQuarantined)
		}
		if _, _, err := s.OpenMedia(orphan); !errors.Is(err, spool.ErrMediaMissing) {
			t.Fatalf("orphan still in media/: %v", err)
		}
		q, _ := os.ReadDir(filepath.Join(dir, "quarantine"))
		if len(q) != 1 || !strings.HasSuffix(q[0].Name(), orphan) {
			t.Fatalf("quarantine %v", q)
		}
	})
	t.Run("MissingMediaFlagged", func(t *testing.T) {
		mm := s.MissingMedia()
		if st.MissingMedia != 1 || len(mm) != 1 || mm[0].ID != lost.ID || mm[0].SHA256[0] != lost.Media[0].SHA256 {
			t.Fatalf("missing %+v (stats %d)", mm, st.MissingMedia)
		}
	})
	t.Run("NothingDropped", func(t *testing.T) {
		want := []plume.EvidenceID{kept.ID, lost.ID, um.ID}
		if got := pendingIDs(t, s); !equal(got, want) {
			t.Fatalf("pending %v, want %v", got, want)
		}
	})
	t.Run("TempRemoved", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(dir, "media", ".tmp-123")); !os.IsNotExist(err) {
			t.Fatalf("temp file: %v", err)
		}
	})
}

// corrupt overwrites pages of a bbolt file with garbage.
func corrupt(tb testing.TB, path string, from, to int64) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	page := int64(os.Getpagesize())
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0x42}, int(page)/7+1)[:page]
	for off := from * page; off < to*page && off < st.Size(); off += page {
		if _, err := f.WriteAt(garbage, off); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestCorruptDatabase(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to int64
	}{
		{"MetaPages", 0, 2},
		{"DataPages", 2, 1 << 20},
		{"Everything", 0, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := spool.Open(ctx, dir, spool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			key := spooltest.Key()
			var ms []*plume.Manifest
			for i := range 4 {
				ms = append(ms, spooltest.AddEvidence(t, s, key, t0.Add(time.Duration(i)*time.Second), []byte{byte(i)}, []byte("shared")))
			}
			for i := range 20 {
				if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Duration(i)*time.Minute), plume.OutcomePass)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.MarkEvidenceDelivered(ctx, ms[1].ID); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			corrupt(t, filepath.Join(dir, "spool.db"), tc.from, tc.to)

			s = spooltest.OpenDir(t, dir, spool.Options{Logger: spooltest.Logger(t)})
			st := s.Stats()
			if !st.Rebuilt {
				t.Fatal("not rebuilt")
			}
			want := []plume.EvidenceID{ms[0].ID, ms[2].ID, ms[3].ID}
			if got := pendingIDs(t, s); !equal(got, want) {
				t.Fatalf("pending %v, want %v", got, want)
			}
			if st.OrphansQuarantined != 0 || st.MissingMedia != 0 {
				t.Fatalf("media lost in rebuild: %+v", st)
			}
			aside, _ := filepath.Glob(filepath.Join(dir, "spool.db.corrupt-*"))
			if len(aside) != 1 {
				t.Fatalf("corrupt file not kept aside: %v", aside)
			}
			// The rebuilt spool knows the delivered item: a resend is a no-op.
			m, body, sig := spooltest.Evidence(t, s, key, t0.Add(time.Second), []byte{1}, []byte("shared"))
			if err := s.AddEvidence(ctx, m, body, sig); err != nil {
				t.Fatal(err)
			}
			if got := pendingIDs(t, s); len(got) != 3 {
				t.Fatalf("delivered item requeued: %v", got)
			}
		})
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
