package packer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/blob"
	"github.com/plume-emissions/plume/central/evidence"
	"github.com/plume-emissions/plume/central/ingest"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/packer"
	"github.com/plume-emissions/plume/central/store"
)

// tRNSPNG is the 79-byte PNG of the security review (issue 14): 1×1 grey
// with an empty tRNS chunk, which panics fpdf's PNG parser.
func tRNSPNG() []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(append(b, typ...), data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
	}
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, chunk("IHDR", []byte{0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0})...)
	b = append(b, chunk("tRNS", nil)...)
	b = append(b, chunk("IDAT", []byte{0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01})...)
	return append(b, chunk("IEND", nil)...)
}

var fakeJPEG = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00 this is not really a JPEG")

var sheetFont = sync.OnceValues(func() ([]byte, error) { return evidence.LoadSheetFont(evidence.DefaultSheetFont) })

// panicBlobs is a blob store whose Open panics for one digest: a stand-in
// for any library that panics on a station's bytes.
type panicBlobs struct {
	central.BlobStore
	poison string
}

func (b *panicBlobs) Open(ctx context.Context, sum string) (io.ReadSeekCloser, central.BlobInfo, error) {
	if sum == b.poison {
		panic("poison media " + sum)
	}
	return b.BlobStore.Open(ctx, sum)
}

// hostileEnv is a store, blob store and packer (with the PDF sheet) into
// which cases are ingested with chosen scene images.
type hostileEnv struct {
	store  *store.Store
	blobs  central.BlobStore
	ingest *ingest.Service
	packer *packer.Packer
	key    ed25519.PrivateKey
	now    time.Time
	lane   int
}

func newHostileEnv(tb testing.TB, wrap func(central.BlobStore) central.BlobStore) *hostileEnv {
	tb.Helper()
	font, err := sheetFont()
	if err != nil {
		tb.Skipf("no sheet font, the PDF sheet is not built: %v", err)
	}
	dir := tb.TempDir()
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	bs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	e := &hostileEnv{store: st, blobs: bs, key: fixture.Key("central"), now: fixture.Epoch.Add(time.Hour)}
	if wrap != nil {
		e.blobs = wrap(bs)
	}
	now := func() time.Time { return e.now }
	st.PutStation(ctx, &central.Station{ID: stationID, PublicKey: fixture.Key(string(stationID)).Public().(ed25519.PublicKey)})
	e.ingest = ingest.New(ingest.Config{Store: st, Blobs: bs, Now: now})
	e.packer = packer.New(packer.Config{Store: st, Blobs: e.blobs, Key: e.key, TempDir: tb.TempDir(), Now: now, SheetFont: font})
	return e
}

// add ingests a case whose scene images are images and returns it.
func (e *hostileEnv) add(tb testing.TB, images ...[]byte) plume.CaseID {
	tb.Helper()
	e.lane++
	at := fixture.Epoch.Add(time.Duration(e.lane) * time.Second)
	var media []fixture.Media
	for i, b := range images {
		media = append(media, fixture.NewMedia("scene-"+string(rune('1'+i))+".jpg", plume.MediaScene, b, at))
	}
	fx := fixture.NewEvidenceMedia(tb, fixture.Key(string(stationID)), stationID, at, 1, true, media)
	station, _ := e.store.Station(ctx, stationID)
	for _, m := range fx.Media {
		if _, err := e.ingest.PutBlob(ctx, station, m.Ref.SHA256, bytes.NewReader(m.Data), m.Ref.Size); err != nil {
			tb.Fatal(err)
		}
	}
	ev, _, err := e.ingest.PutEvidence(ctx, station, fx.Manifest.ID, fx.Body, fx.Sig)
	if err != nil {
		tb.Fatal(err)
	}
	return ev.CaseID
}

// drain runs every ready job, moving the clock past each backoff, until
// none is left to run.
func (e *hostileEnv) drain(tb testing.TB) {
	tb.Helper()
	for range 100 {
		ran, err := e.packer.RunOne(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if !ran {
			e.now = e.now.Add(2 * time.Hour) // past any backoff
			if ran, err = e.packer.RunOne(ctx); err != nil {
				tb.Fatal(err)
			} else if !ran {
				return
			}
		}
	}
	tb.Fatal("the queue never drained")
}

func (e *hostileEnv) built(tb testing.TB, id plume.CaseID) bool {
	tb.Helper()
	c, err := e.store.Case(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	return c.PackageSHA256 != ""
}

// TestHostileMediaBuilds: the review's media (a PNG with an empty tRNS
// chunk, which crashed central; a not-really-JPEG, whose build failed
// forever) go through the real builder into verified packages.
func TestHostileMediaBuilds(t *testing.T) {
	e := newHostileEnv(t, nil)
	trns := e.add(t, tRNSPNG())
	fake := e.add(t, fakeJPEG)
	if ran, err := e.packer.RunOne(ctx); !ran || err != nil {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
	if ran, err := e.packer.RunOne(ctx); !ran || err != nil {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
	for _, id := range []plume.CaseID{trns, fake} {
		if !e.built(t, id) {
			jobs, _ := e.store.Jobs(ctx)
			t.Fatalf("case %s has no package; jobs %+v", id, jobs)
		}
	}
}

// TestPoisonCaseParked: a build that panics every time is recovered, is
// retried with backoff up to the cap, then parked as failed with its
// reason; the other cases are built; an administrator's retry queues it
// afresh.
func TestPoisonCaseParked(t *testing.T) {
	poison := fixture.NewMedia("x", plume.MediaScene, []byte("poison scene"), fixture.Epoch)
	e := newHostileEnv(t, func(b central.BlobStore) central.BlobStore {
		return &panicBlobs{BlobStore: b, poison: poison.Ref.SHA256}
	})
	bad := e.add(t, poison.Data)
	good := e.add(t, fakeJPEG)

	// The poison job is first in the queue; the good case is built all
	// the same, right after the first failure.
	if ran, err := e.packer.RunOne(ctx); !ran || err != nil {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
	if ran, err := e.packer.RunOne(ctx); !ran || err != nil || !e.built(t, good) {
		t.Fatalf("the good case waits behind the poison one: ran=%v err=%v", ran, err)
	}
	e.drain(t)
	jobs, _ := e.store.Jobs(ctx)
	if len(jobs) != 1 || !jobs[0].Failed() || jobs[0].Attempts != packer.DefaultMaxAttempts || !strings.Contains(jobs[0].LastError, "panic") || !strings.Contains(jobs[0].LastError, "gave up") {
		t.Fatalf("jobs %+v", jobs)
	}
	if e.built(t, bad) {
		t.Fatal("poison case built")
	}
	// Parked: time passing does not run it again.
	e.now = e.now.Add(365 * 24 * time.Hour)
	if ran, _ := e.packer.RunOne(ctx); ran {
		t.Fatal("a failed job ran again on its own")
	}
	if _, err := packer.RetryFailed(ctx, e.store, jobs[0].ID+1000, e.now); plume.ErrorCode(err) != plume.ENOTFOUND {
		t.Fatalf("retry of no job: %v", err)
	}
	j, err := packer.RetryFailed(ctx, e.store, jobs[0].ID, e.now)
	if err != nil || j.Attempts != 0 || j.CaseID != bad || j.Failed() {
		t.Fatalf("retry: %+v %v", j, err)
	}
	if ran, _ := e.packer.RunOne(ctx); !ran {
		t.Fatal("the retried job did not run")
	}
}

// FuzzPackageBuild builds a case whose scene image is arbitrary bytes:
// the package must be built and verify, whatever the station sent.
func FuzzPackageBuild(f *testing.F) {
	f.Add(tRNSPNG())
	f.Add(fakeJPEG)
	f.Add([]byte{})
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	e := newHostileEnv(f, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			b = []byte{0} // a blob must have bytes
		}
		id := e.add(t, b)
		if ran, err := e.packer.RunOne(ctx); !ran || err != nil {
			t.Fatalf("ran=%v err=%v", ran, err)
		}
		if !e.built(t, id) {
			jobs, _ := e.store.Jobs(ctx)
			t.Fatalf("no package for %q: %+v", b, jobs)
		}
	})
}

// Finding 8: the custody log says "package built … signed" only after the
// package is built, verified and stored.
func TestCustodyBuiltOnlyAfterSuccess(t *testing.T) {
	e, id, fx := newEnv(t)
	lost := filepath.Join(e.dir, "blobs", fx.Media[1].Ref.SHA256[:2], fx.Media[1].Ref.SHA256)
	data, _ := os.ReadFile(lost)
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	if ran, err := e.packer.RunOne(ctx); !ran || err != nil {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
	log, _ := e.store.Custody(ctx, id)
	for _, l := range log {
		if l.Action == central.ActionPackageBuilt {
			t.Fatalf("a failed build logged %q: %+v", l.Action, l)
		}
	}
	if _, err := e.blobs.Put(ctx, fx.Media[1].Ref.SHA256, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := e.packer.Build(ctx, id); err != nil {
		t.Fatal(err)
	}
	log, _ = e.store.Custody(ctx, id)
	c, pkg := e.pkg(t, id)
	last := log[len(log)-1]
	if last.Action != central.ActionPackageBuilt || !c.PackageBuiltAt.Equal(last.Time) {
		t.Fatalf("after success, last entry %+v", last)
	}
	// The package carries the same entry as the store.
	rep, err := evidence.Verify(bytes.NewReader(pkg), int64(len(pkg)), evidence.VerifyOptions{CentralKey: e.key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
}
