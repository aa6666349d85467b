package spool_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
	"github.com/plume-emissions/plume/edge/spool/spooltest"
)

func TestCapacity_EvidenceNeverEvicted(t *testing.T) {
	clock := spooltest.NewClock(t0)
	s := spooltest.Open(t, spool.Options{MaxBytes: 400 << 10, MediaGrace: time.Hour, Now: clock.Now, Logger: spooltest.Logger(t)})
	key := spooltest.Key()
	blob := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100<<10) }
	var ms []*plume.Manifest
	for i := 0; ; i++ {
		m, body, sig := evidenceOrFull(t, s, key, t0.Add(time.Duration(i)*time.Second), blob(i))
		if m == nil {
			break
		}
		if err := s.AddEvidence(ctx, m, body, sig); err != nil {
			if !errors.Is(err, spool.ErrFull) {
				t.Fatal(err)
			}
			break
		}
		ms = append(ms, m)
		if i > 10 {
			t.Fatal("MaxBytes not enforced")
		}
	}
	if len(ms) < 2 {
		t.Fatalf("only %d items fit", len(ms))
	}
	if st := s.Stats(); st.QueuedEvidence != len(ms) || st.FullRefusals == 0 || st.Bytes > 400<<10 {
		t.Fatalf("stats %+v", st)
	}
	for _, m := range ms {
		f, _, err := s.OpenMedia(m.Media[0].SHA256)
		if err != nil {
			t.Fatalf("queued evidence lost its media: %v", err)
		}
		f.Close()
	}

	t.Run("DeliveredMediaMakesRoom", func(t *testing.T) {
		if err := s.MarkEvidenceDelivered(ctx, ms[0].ID); err != nil {
			t.Fatal(err)
		}
		// Within the grace the delivered media still goes under pressure.
		m := spooltest.AddEvidence(t, s, key, t0.Add(time.Hour), blob(99))
		if _, _, err := s.OpenMedia(ms[0].Media[0].SHA256); !errors.Is(err, spool.ErrMediaMissing) {
			t.Fatalf("delivered media kept under pressure: %v", err)
		}
		if st := s.Stats(); st.MediaRemoved != 1 || st.QueuedEvidence != len(ms) {
			t.Fatalf("stats %+v", st)
		}
		_ = m
	})
}

// evidenceOrFull is spooltest.Evidence that returns nil when PutMedia
// reports ErrFull.
func evidenceOrFull(tb testing.TB, s *spool.Spool, key []byte, at time.Time, media []byte) (*plume.Manifest, []byte, []byte) {
	tb.Helper()
	if _, _, err := s.PutMedia(ctx, bytes.NewReader(media)); errors.Is(err, spool.ErrFull) {
		return nil, nil, nil
	} else if err != nil {
		tb.Fatal(err)
	}
	return spooltest.Evidence(tb, s, key, at, media)
}

func TestCapacity_GraceRespected(t *testing.T) {
	clock := spooltest.NewClock(t0)
	s := spooltest.Open(t, spool.Options{MediaGrace: time.Hour, Now: clock.Now})
	m := spooltest.AddEvidence(t, s, spooltest.Key(), t0, []byte("clip"))
	if err := s.MarkEvidenceDelivered(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if f, _, err := s.OpenMedia(m.Media[0].SHA256); err != nil {
		t.Fatalf("removed within grace: %v", err)
	} else {
		f.Close()
	}
	clock.Add(2 * time.Hour)
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenMedia(m.Media[0].SHA256); !errors.Is(err, spool.ErrMediaMissing) {
		t.Fatalf("kept after grace: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "evidence", string(m.ID)+".json")); !os.IsNotExist(err) {
		t.Fatalf("manifest kept after grace: %v", err)
	}
	// Still deduplicated within the seen retention.
	m2, body, sig := spooltest.Evidence(t, s, spooltest.Key(), t0, []byte("clip"))
	if err := s.AddEvidence(ctx, m2, body, sig); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.QueuedEvidence != 0 {
		t.Fatalf("resend after delivery was queued: %+v", st)
	}
}

func TestCapacity_CompactsPassRecords(t *testing.T) {
	s := spooltest.Open(t, spool.Options{MaxBytes: 640 << 10, Logger: spooltest.Logger(t)})
	s.SetCentralReachable(false)
	// About 280 records fit in 640 KiB as they are; folded, with their
	// values kept, 700 do.
	const n = 700
	exceed := 0
	for i := range n {
		outcome := plume.OutcomePass
		if i%100 == 0 {
			outcome = plume.OutcomeExceed
			exceed++
		}
		if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Duration(i)*time.Second), outcome)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	st := s.Stats()
	if st.RecordsCompacted == 0 {
		t.Fatalf("nothing compacted: %+v", st)
	}
	items, err := s.PendingRecords(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	passes, summarised, exceeds := 0, 0, 0
	for _, it := range items {
		r := it.Record
		switch {
		case r.Kind == plume.RecordSummary:
			summarised += r.Summary.Count
			if r.Summary.ByOutcome[plume.OutcomePass] != r.Summary.Count || r.Summary.From.After(r.Summary.To) || r.Summary.Cause == "" {
				t.Fatalf("summary %+v", r.Summary)
			}
			// The integrity rules need every folded pass's values, in order.
			if len(r.Summary.Passes) != r.Summary.Count {
				t.Fatalf("summary of %d passes keeps %d", r.Summary.Count, len(r.Summary.Passes))
			}
			for i, fp := range r.Summary.Passes {
				if fp.Gases.NO != 900 || fp.Opacity != 12 || (i > 0 && fp.Time.Before(r.Summary.Passes[i-1].Time)) {
					t.Fatalf("folded pass %d: %+v", i, fp)
				}
			}
		case r.Pass.Verdict.Outcome == plume.OutcomeExceed:
			exceeds++
		default:
			passes++
		}
	}
	if exceeds != exceed || passes+summarised != n-exceed || int64(summarised) != st.RecordsCompacted {
		t.Fatalf("exceeds %d/%d, passes %d + summarised %d != %d, compacted %d", exceeds, exceed, passes, summarised, n-exceed, st.RecordsCompacted)
	}
	if st.Bytes > 640<<10 {
		t.Fatalf("over the cap: %d", st.Bytes)
	}
	// A compacted record resent by the analyser is not queued again.
	before := s.Stats().QueuedRecords
	if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Second), plume.OutcomePass)); err != nil {
		t.Fatal(err)
	}
	if s.Stats().QueuedRecords != before {
		t.Fatal("compacted record queued again")
	}
}

// TestDiskFull_Tmpfs fills a real 2 MiB file system. It needs root (or
// CAP_SYS_ADMIN) and is skipped without it.
func TestDiskFull_Tmpfs(t *testing.T) {
	dir := t.TempDir()
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).Run(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	key := spooltest.Key()

	run := func(t *testing.T, sub string, opts spool.Options) {
		s := spooltest.OpenDir(t, filepath.Join(dir, sub), opts)
		var ms []*plume.Manifest
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			var sha string
			var size int64
			sha, size, err = s.PutMedia(ctx, bytes.NewReader(bytes.Repeat([]byte{byte(i), 1}, 64<<10)))
			if err != nil {
				break
			}
			p := spooltest.Pass(t0.Add(time.Duration(i)*time.Second), plume.OutcomeExceed)
			m := &plume.Manifest{Schema: plume.ManifestSchema, ID: plume.EvidenceID(p.ID), Station: spooltest.Station, CapturedAt: p.Reading.Time,
				Pass: *p, Media: []plume.MediaRef{{Name: "clip.mp4", Kind: plume.MediaClip, SHA256: sha, Size: size, CapturedAt: p.Reading.Time}}}
			body, sig, _ := plume.SignManifest(key, m)
			if err = s.AddEvidence(ctx, m, body, sig); err == nil {
				ms = append(ms, m)
			}
		}
		if !errors.Is(err, spool.ErrFull) {
			t.Fatalf("filling the disk: got %v, want ErrFull", err)
		}
		if len(ms) == 0 {
			t.Fatal("nothing fitted")
		}
		t.Logf("%d evidence items fitted before: %v", len(ms), err)
		// The spool still works and holds everything it accepted.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = spooltest.OpenDir(t, filepath.Join(dir, sub), opts)
		if st := s.Stats(); st.QueuedEvidence != len(ms) || st.MissingMedia != 0 || st.Rebuilt {
			t.Fatalf("after reopen: %+v, want %d queued", st, len(ms))
		}
		for _, m := range ms {
			if err := s.MarkEvidenceDelivered(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := s.PutMedia(ctx, bytes.NewReader(bytes.Repeat([]byte{9}, 64<<10))); err != nil {
			t.Fatalf("no room after delivery: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("MinFreeBytes", func(t *testing.T) { run(t, "a", spool.Options{MinFreeBytes: 512 << 10}) })
	t.Run("ENOSPC", func(t *testing.T) { run(t, "b", spool.Options{}) })
}

// TestCapacity_NoFoldWhileReachable is the issue-18 case: with central up, a
// full spool refuses new records (the analyser resends them) and folds
// none of the acknowledged ones into counts.
func TestCapacity_NoFoldWhileReachable(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts spool.Options
	}{
		{"MaxBytes", spool.Options{MaxBytes: 400 << 10}},
		{"RecordsMaxBytes", spool.Options{RecordsMaxBytes: 200 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spooltest.Open(t, tc.opts)
			acked := 0
			var err error
			for i := 0; i < 3000 && err == nil; i++ {
				if err = s.AddRecord(ctx, spooltest.Record(t0.Add(time.Duration(i)*time.Second), plume.OutcomePass)); err == nil {
					acked++
				}
			}
			if !errors.Is(err, spool.ErrFull) {
				t.Fatalf("filling: %v, want ErrFull", err)
			}
			st := s.Stats()
			if st.RecordsCompacted != 0 || st.QueuedRecords != acked {
				t.Fatalf("folded while central was reachable: %d acknowledged, %+v", acked, st)
			}
			// Central goes away: now the spool may fold to take more.
			s.SetCentralReachable(false)
			if err := s.AddRecord(ctx, spooltest.Record(t0.Add(-time.Hour), plume.OutcomePass)); err != nil {
				t.Fatalf("unreachable central, full budget: %v", err)
			}
			if s.Stats().RecordsCompacted == 0 {
				t.Fatal("nothing folded")
			}
		})
	}
}
