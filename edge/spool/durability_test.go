package spool_test

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
	"github.com/plume-emissions/plume/edge/spool/spooltest"
	bolt "go.etcd.io/bbolt"
)

// fillRecords adds n pass records, delivers the first delivered of them
// and dead-letters one more, closes the spool and returns the IDs that
// must still be queued afterwards (the dead letter included: a rebuild
// cannot know central refused it, and queues it again).
func fillRecords(tb testing.TB, dir string, n, delivered int) (undelivered []string) {
	tb.Helper()
	s, err := spool.Open(ctx, dir, spool.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for i := range n {
		outcome := plume.OutcomePass
		if i%7 == 0 {
			outcome = plume.OutcomeExceed
		}
		r := spooltest.Record(t0.Add(time.Duration(i)*time.Second), outcome)
		if err := s.AddRecord(ctx, r); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	items, err := s.PendingRecords(ctx, delivered)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.MarkRecordsDelivered(ctx, items); err != nil {
		tb.Fatal(err)
	}
	if err := s.DeadLetter(ctx, spool.KindRecord, ids[delivered], "test refusal"); err != nil {
		tb.Fatal(err)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return ids[delivered:]
}

// queuedRecordIDs returns the IDs of the queued and dead-lettered records.
func queuedRecordIDs(tb testing.TB, s *spool.Spool) []string {
	tb.Helper()
	items, err := s.PendingRecords(ctx, 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.Record.ID)
	}
	dl, err := s.DeadLetters(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range dl {
		if d.Kind == spool.KindRecord {
			out = append(out, d.ID)
		}
	}
	return out
}

// sameOnce fails unless got holds every ID of want exactly once and nothing
// else.
func sameOnce(tb testing.TB, got, want []string) {
	tb.Helper()
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	missing, dup := 0, 0
	for _, id := range want {
		switch count[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
		delete(count, id)
	}
	if missing != 0 || dup != 0 || len(count) != 0 {
		tb.Fatalf("records: %d of %d missing, %d duplicated, %d that should not be queued (got %d)", missing, len(want), dup, len(count), len(got))
	}
}

// flipBits flips n random bits of the file, away from its first page when
// skipMeta is set.
func flipBits(tb testing.TB, path string, n int, seed uint64) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	for range n {
		i := rng.IntN(len(data))
		data[i] ^= 1 << rng.IntN(8)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// TestRecordsOutliveCorruptDatabase is the issue-18 case: the records
// waiting for central survive a spool.db that bbolt rejects or that lies.
func TestRecordsOutliveCorruptDatabase(t *testing.T) {
	const n, delivered = 300, 120
	cases := []struct {
		name  string
		spoil func(tb testing.TB, db string)
	}{
		{"MetaPages", func(tb testing.TB, db string) { corrupt(tb, db, 0, 2) }},
		{"DataPages", func(tb testing.TB, db string) { corrupt(tb, db, 2, 1<<20) }},
		{"FreelistAndBranches", func(tb testing.TB, db string) { corrupt(tb, db, 2, 6) }},
		{"Everything", func(tb testing.TB, db string) { corrupt(tb, db, 0, 1<<20) }},
		{"Deleted", func(tb testing.TB, db string) {
			if err := os.Remove(db); err != nil {
				tb.Fatal(err)
			}
		}},
		{"Truncated", func(tb testing.TB, db string) {
			if err := os.Truncate(db, 3*int64(os.Getpagesize())); err != nil {
				tb.Fatal(err)
			}
		}},
	}
	for seed := range uint64(6) {
		cases = append(cases, struct {
			name  string
			spoil func(tb testing.TB, db string)
		}{"BitFlips40/" + string(rune('a'+seed)), func(tb testing.TB, db string) { flipBits(tb, db, 40, seed) }})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := fillRecords(t, dir, n, delivered)
			tc.spoil(t, filepath.Join(dir, "spool.db"))
			s := spooltest.OpenDir(t, dir, spool.Options{Logger: spooltest.Logger(t)})
			got := queuedRecordIDs(t, s)
			sameOnce(t, got, want)
			// A resend of an undelivered record stays a no-op.
			if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Duration(n-1)*time.Second), plume.OutcomePass)); err != nil {
				t.Fatal(err)
			}
			sameOnce(t, queuedRecordIDs(t, s), want)
		})
	}
}

// TestSegmentsFreedAfterDelivery: once central has every record of a
// segment, the segment is deleted; the rebuild then has nothing to queue.
func TestSegmentsFreedAfterDelivery(t *testing.T) {
	dir := t.TempDir()
	s := spooltest.OpenDir(t, dir, spool.Options{})
	for i := range 50 {
		if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Duration(i)*time.Second), plume.OutcomePass)); err != nil {
			t.Fatal(err)
		}
	}
	segs := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "records", "seg-*.log"))
		return m
	}
	if len(segs()) != 1 {
		t.Fatalf("segments %v", segs())
	}
	items, err := s.PendingRecords(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecordsDelivered(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The segment being appended to stays until the next Open.
	s = spooltest.OpenDir(t, dir, spool.Options{})
	if got := segs(); len(got) != 0 {
		t.Fatalf("delivered segments kept: %v", got)
	}
	if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Hour), plume.OutcomePass)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "spool.db")); err != nil {
		t.Fatal(err)
	}
	s = spooltest.OpenDir(t, dir, spool.Options{})
	if got := queuedRecordIDs(t, s); len(got) != 1 {
		t.Fatalf("after rebuild %d records queued, want the 1 undelivered", len(got))
	}
}

// TestSegmentDamage: a flipped bit in a segment costs only its frame.
func TestSegmentDamage(t *testing.T) {
	dir := t.TempDir()
	want := fillRecords(t, dir, 40, 0)
	segs, _ := filepath.Glob(filepath.Join(dir, "records", "seg-*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	data, _ := os.ReadFile(segs[0])
	data[len(data)/2] ^= 0x10
	if err := os.WriteFile(segs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "spool.db")); err != nil {
		t.Fatal(err)
	}
	s := spooltest.OpenDir(t, dir, spool.Options{})
	got := queuedRecordIDs(t, s)
	if len(got) != len(want)-1 {
		t.Fatalf("%d records recovered, want all but the damaged one (%d)", len(got), len(want)-1)
	}
}

// rewriteValue changes one stored value of spool.db with bbolt itself, so
// the file stays valid and only the value lies.
func rewriteValue(tb testing.TB, dir, bucket string, pick func(k, v []byte) []byte) int {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(dir, "spool.db"), 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		var keys, vals [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			if nv := pick(k, v); nv != nil {
				keys, vals = append(keys, bytes.Clone(k)), append(vals, nv)
			}
			return nil
		})
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// changeChar changes one character inside the value's manifest text: the
// file stays valid bbolt and the value valid JSON.
func changeChar(v []byte) []byte {
	v = bytes.Clone(v)
	i := bytes.Index(v, []byte(`"spooltest`))
	if i < 0 {
		i = bytes.Index(v, []byte(`GD-SZ-0001`))
	}
	if i < 0 {
		return nil
	}
	v[i+2] ^= 0x01
	return v
}

// TestValuesHealFromFiles is the issue-18 case of one character changed in
// every stored manifest and record: nothing is dead-lettered, and the
// uplink sees the bytes the station signed.
func TestValuesHealFromFiles(t *testing.T) {
	dir := t.TempDir()
	s := spooltest.OpenDir(t, dir, spool.Options{})
	key := spooltest.Key()
	var bodies = map[plume.EvidenceID][]byte{}
	for i := range 6 {
		m, body, sig := spooltest.Evidence(t, s, key, t0.Add(time.Duration(i)*time.Second), []byte{byte(i)}, []byte("shared"))
		if err := s.AddEvidence(ctx, m, body, sig); err != nil {
			t.Fatal(err)
		}
		bodies[m.ID] = body
	}
	var recs []string
	for i := range 20 {
		r := spooltest.Record(t0.Add(time.Duration(i)*time.Minute), plume.OutcomePass)
		if err := s.AddRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r.ID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := rewriteValue(t, dir, "evidence", func(k, v []byte) []byte { return changeChar(v) }); n != 6 {
		t.Fatalf("changed %d manifests", n)
	}
	if n := rewriteValue(t, dir, "records", func(k, v []byte) []byte { return changeChar(v) }); n != 20 {
		t.Fatalf("changed %d records", n)
	}

	s = spooltest.OpenDir(t, dir, spool.Options{Logger: spooltest.Logger(t)})
	st := s.Stats()
	if st.Rebuilt || st.ValuesHealed != 26 {
		t.Fatalf("want 26 values healed in place: %+v", st)
	}
	ev, err := s.PendingEvidence(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 6 {
		t.Fatalf("%d evidence items pending, want 6", len(ev))
	}
	pub := key.Public().(ed25519.PublicKey)
	for _, e := range ev {
		if !bytes.Equal(e.Manifest, bodies[e.ID]) || !plume.VerifyManifest(pub, e.Manifest, e.Signature) {
			t.Fatalf("evidence %s not healed to the signed bytes", e.ID)
		}
	}
	sameOnce(t, queuedRecordIDs(t, s), recs)
	items, err := s.PendingRecords(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Record.Station != spooltest.Station || it.Record.Pass == nil || string(it.Record.Pass.Station) != string(spooltest.Station) {
			t.Fatalf("record not healed: %+v", it.Record)
		}
	}
	if dl, _ := s.DeadLetters(ctx); len(dl) != 0 {
		t.Fatalf("dead letters %v", dl)
	}
}
