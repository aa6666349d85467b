package spool_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
	"github.com/plume-emissions/plume/edge/spool/spooltest"
)

// fsckSpool builds a closed spool with evidence and records to damage.
func fsckSpool(tb testing.TB) (dir string, media []string) {
	tb.Helper()
	dir = tb.TempDir()
	s, err := spool.Open(ctx, dir, spool.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 3 {
		m := spooltest.AddEvidence(tb, s, spooltest.Key(), t0.Add(time.Duration(i)*time.Second), []byte{byte(i), 1, 2, 3})
		media = append(media, m.Media[0].SHA256)
	}
	for i := range 10 {
		if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Duration(i)*time.Minute), plume.OutcomePass)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return dir, media
}

func TestFsck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(tb testing.TB, dir string, media []string)
		want  string // in a problem; "" for none
	}{
		{"OK", func(testing.TB, string, []string) {}, ""},
		{"ManifestValue", func(tb testing.TB, dir string, _ []string) {
			rewriteValue(tb, dir, "evidence", func(k, v []byte) []byte { return changeChar(v) })
		}, "checksum mismatch"},
		{"MediaFile", func(tb testing.TB, dir string, media []string) {
			p := filepath.Join(dir, "media", media[1][:2], media[1])
			if err := os.WriteFile(p, []byte{9, 9, 9, 9}, 0o600); err != nil {
				tb.Fatal(err)
			}
		}, "content hashes to"},
		{"ManifestFile", func(tb testing.TB, dir string, _ []string) {
			files, _ := filepath.Glob(filepath.Join(dir, "evidence", "*.json"))
			data, _ := os.ReadFile(files[0])
			if err := os.WriteFile(files[0], bytes.Replace(data, []byte("spooltest"), []byte("spooltesx"), 1), 0o600); err != nil {
				tb.Fatal(err)
			}
		}, "differs from evidence/"},
		{"Pages", func(tb testing.TB, dir string, _ []string) { corrupt(tb, filepath.Join(dir, "spool.db"), 0, 1<<20) }, "spool.db"},
		{"Segment", func(tb testing.TB, dir string, _ []string) {
			segs, _ := filepath.Glob(filepath.Join(dir, "records", "seg-*.log"))
			data, _ := os.ReadFile(segs[0])
			data[len(data)/3] ^= 0x40
			if err := os.WriteFile(segs[0], data, 0o600); err != nil {
				tb.Fatal(err)
			}
		}, "damaged stretch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, media := fsckSpool(t)
			tc.spoil(t, dir, media)
			rep, err := spool.Fsck(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if !rep.OK() || rep.Media != 3 || rep.Manifests != 3 || rep.Records != 10 || rep.QueuedRecords != 10 {
					t.Fatalf("sound spool: %+v", rep)
				}
				return
			}
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), tc.want) {
				t.Fatalf("want a problem with %q, got %q", tc.want, rep.Problems)
			}
		})
	}
}

func TestScrub_MediaDamaged(t *testing.T) {
	dir, media := fsckSpool(t)
	s := spooltest.OpenDir(t, dir, spool.Options{})
	p := filepath.Join(dir, "media", media[2][:2], media[2])
	if err := os.WriteFile(p, []byte{2, 1, 2, 4}, 0o600); err != nil {
		t.Fatal(err)
	}
	// Two light passes of 8 bytes each cover the three 4-byte files.
	r1, err := s.Scrub(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Scrub(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	if r1.MediaChecked+r2.MediaChecked != 3 || len(r1.MediaDamaged)+len(r2.MediaDamaged) != 1 {
		t.Fatalf("scrub passes %+v %+v", r1, r2)
	}
	if st := s.Stats(); st.MediaDamaged != 1 || st.LastScrub.IsZero() {
		t.Fatalf("stats %+v", st)
	}
}
