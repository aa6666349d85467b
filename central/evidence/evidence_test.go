package evidence

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

var centralKey = fixture.Key("central")

// testInput returns the input for a package of a fixture case with three
// media items, and the media bytes by digest.
func testInput(tb testing.TB) (*Input, map[string][]byte) {
	tb.Helper()
	station := plume.StationID("GD-SZ-0001")
	return testInputFor(tb, fixture.NewEvidence(tb, fixture.Key(string(station)), station, fixture.Epoch, 2, true, 3))
}

// testInputFor returns the input for a package of fx, signed by the
// fixture key of station GD-SZ-0001.
func testInputFor(tb testing.TB, fx *fixture.Evidence) (*Input, map[string][]byte) {
	tb.Helper()
	station := plume.StationID("GD-SZ-0001")
	skey := fixture.Key(string(station))
	media := map[string][]byte{}
	for _, md := range fx.Media {
		media[md.Ref.SHA256] = md.Data
	}
	received := fixture.Epoch.Add(3 * time.Second)
	c := central.NewCase(fx.Manifest)
	c.ID, c.Number, c.CreatedAt = central.FormatCaseID(42), central.FormatCaseNumber(received, 42), received
	var log []central.CustodyEntry
	var last *central.CustodyEntry
	for _, e := range []central.CustodyEntry{
		{Time: fx.Manifest.CapturedAt, Actor: "station:" + string(station), Action: central.ActionCaptured},
		{Time: received, Actor: "central", Action: central.ActionReceived},
		{Time: received, Actor: "central", Action: central.ActionCaseOpened, Detail: c.Number},
		{Time: received.Add(time.Second), Actor: "central", Action: central.ActionPackageBuilt},
	} {
		e = central.ChainCustody(last, e)
		log = append(log, e)
		last = &e
	}
	return &Input{
		Case:    c,
		Station: &central.Station{ID: station, Name: "深南大道 gantry", PublicKey: skey.Public().(ed25519.PublicKey)},
		Evidence: &central.StoredEvidence{
			ID: fx.Manifest.ID, Station: station, Manifest: fx.Body, StationSig: fx.Sig,
			StationKey: skey.Public().(ed25519.PublicKey), ReceivedAt: received, CaseID: c.ID,
		},
		Custody:      log,
		Organization: "Shenzhen Ecology and Environment Bureau",
		Key:          centralKey,
		BuiltAt:      received.Add(time.Second),
		OpenMedia: func(_ context.Context, sum string) (io.ReadCloser, error) {
			b, ok := media[sum]
			if !ok {
				return nil, central.ErrNotFound
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		},
	}, media
}

func buildPackage(tb testing.TB) []byte {
	tb.Helper()
	in, _ := testInput(tb)
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, in); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func verify(b []byte, opts VerifyOptions) (*Report, error) {
	return Verify(bytes.NewReader(b), int64(len(b)), opts)
}

func TestWriteVerify(t *testing.T) {
	pkg := buildPackage(t)
	rep, err := verify(pkg, VerifyOptions{CentralKey: centralKey.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	if !rep.OK() || rep.CaseNumber != "PLM-20261128-000042" {
		t.Fatalf("report:\n%s", rep)
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	want := "zip structure,bagit.txt,tag manifest,central signature,payload manifest,bag-info,station signature,media,case.json,custody chain"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("checks %s, want %s", got, want)
	}

	files := unzip(t, pkg)
	for _, name := range []string{"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt", "custody.jsonl", "central.pub", "signature-central.sig",
		"data/case.json", "data/manifest.json", "data/manifest.sig", "data/station.pub", "data/evidence-sheet.html",
		"data/media/scene-1.jpg", "data/media/scene-2.jpg", "data/media/scene-3.jpg"} {
		if _, ok := files.get(name); !ok {
			t.Errorf("package lacks %s", name)
		}
	}
	info, _ := files.get("bag-info.txt")
	for _, want := range []string{"External-Identifier: PLM-20261128-000042\n", "Plume-Station: GD-SZ-0001\n", "Source-Organization: Shenzhen Ecology and Environment Bureau\n", "Payload-Oxum: "} {
		if !strings.Contains(string(info), want) {
			t.Errorf("bag-info lacks %q:\n%s", want, info)
		}
	}
	sheet, _ := files.get("data/evidence-sheet.html")
	for _, want := range []string{"PLM-20261128-000042", "6063", ViolationText, "粤B12345", "1834 ppm", "1500 ppm", "EXCEEDED", "HJ 845-2017", "hj845-2017-diesel@2026.11-1", "GD-SZ-0001", "深南大道 gantry", "2026-11-28 17:30:00 UTC+8", "scene-2.jpg"} {
		if !strings.Contains(html.UnescapeString(string(sheet)), want) {
			t.Errorf("evidence sheet lacks %q", want)
		}
	}
	in, _ := testInput(t)
	if m, _ := files.get("data/manifest.json"); !bytes.Equal(m, in.Evidence.Manifest) {
		t.Error("manifest.json is not the station-signed bytes verbatim")
	}
}

func TestWriteMediaMismatch(t *testing.T) {
	in, media := testInput(t)
	for sum := range media {
		media[sum] = append([]byte("X"), media[sum][1:]...)
		break
	}
	err := Write(context.Background(), io.Discard, in)
	if !errors.Is(err, ErrMediaMismatch) {
		t.Fatalf("got %v, want ErrMediaMismatch", err)
	}
}

// bag is an unzipped package in entry order.
type bag struct {
	root  string
	names []string
	body  map[string][]byte
}

func unzip(tb testing.TB, pkg []byte) *bag {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		tb.Fatal(err)
	}
	b := &bag{body: map[string][]byte{}}
	for _, f := range zr.File {
		root, rest, _ := strings.Cut(f.Name, "/")
		b.root = root
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			tb.Fatal(err)
		}
		b.names = append(b.names, rest)
		b.body[rest] = body
	}
	return b
}

func (b *bag) get(name string) ([]byte, bool) { v, ok := b.body[name]; return v, ok }

func (b *bag) set(name string, body []byte) {
	if _, ok := b.body[name]; !ok {
		b.names = append(b.names, name)
	}
	b.body[name] = body
}

func (b *bag) remove(name string) {
	delete(b.body, name)
	for i, n := range b.names {
		if n == name {
			b.names = append(b.names[:i], b.names[i+1:]...)
			return
		}
	}
}

// reseal recomputes both manifests and signs the tag manifest with key, as
// someone holding that key would after tampering.
func (b *bag) reseal(key ed25519.PrivateKey) {
	var lines []string
	for _, n := range b.names {
		if strings.HasPrefix(n, "data/") {
			lines = append(lines, fmt.Sprintf("%s  %s\n", sum(b.body[n]), n))
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	b.set(fileManifest, []byte(strings.Join(lines, "")))
	b.set(fileCentralPub, []byte(base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))+"\n"))
	var tags []file
	for _, n := range b.names {
		if isTagFile(n) {
			tags = append(tags, file{n, b.body[n]})
		}
	}
	tm := tagManifestOf(tags)
	b.set(fileTagManifest, tm)
	b.set(fileCentralSig, []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(key, tm))+"\n"))
}

func (b *bag) zip(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range b.names {
		w, err := zw.Create(b.root + "/" + n)
		if err != nil {
			tb.Fatal(err)
		}
		w.Write(b.body[n])
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerifyTampered(t *testing.T) {
	pinned := VerifyOptions{CentralKey: centralKey.Public().(ed25519.PublicKey)}
	attacker := fixture.Key("attacker")
	for _, tc := range []struct {
		name     string
		tamper   func(b *bag)
		reseal   ed25519.PrivateKey // nil: leave manifests and signature as they are
		opts     VerifyOptions
		failedAt string
		detail   string
	}{
		{name: "OK", tamper: func(*bag) {}, reseal: centralKey, opts: pinned},
		{name: "ErrMediaByteChanged", tamper: func(b *bag) {
			m := b.body["data/media/scene-2.jpg"]
			m[3] ^= 1
		}, failedAt: "payload manifest", detail: "data/media/scene-2.jpg has sha256"},
		{name: "ErrMediaRemoved", tamper: func(b *bag) { b.remove("data/media/scene-1.jpg") },
			failedAt: "payload manifest", detail: "data/media/scene-1.jpg, which is missing"},
		{name: "ErrMediaRemovedAndResealed", tamper: func(b *bag) { b.remove("data/media/scene-1.jpg") }, reseal: centralKey,
			failedAt: "bag-info", detail: "Payload-Oxum"},
		{name: "ErrMediaSwappedAndResealed", tamper: func(b *bag) {
			old := b.body["data/media/scene-1.jpg"]
			b.set("data/media/scene-1.jpg", bytes.Repeat([]byte("X"), len(old))) // same size: Payload-Oxum holds
		}, reseal: centralKey, failedAt: "media", detail: "the signed manifest lists"},
		{name: "ErrExtraPayloadFile", tamper: func(b *bag) { b.set("data/extra.txt", []byte("hi")) },
			failedAt: "payload manifest", detail: "data/extra.txt is not listed"},
		{name: "ErrCaseJSONChanged", tamper: func(b *bag) {
			b.set(fileCase, bytes.Replace(b.body[fileCase], []byte("粤B12345"), []byte("粤B99999"), 1))
		}, failedAt: "payload manifest", detail: "data/case.json has sha256"},
		{name: "ErrBadCentralSignature", tamper: func(b *bag) {
			tm, _ := b.get(fileTagManifest)
			b.set(fileCentralSig, []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(attacker, tm))+"\n"))
		}, failedAt: "central signature", detail: "does not verify"},
		{name: "ErrResignedByAnotherKey", tamper: func(b *bag) {}, reseal: attacker, opts: pinned,
			failedAt: "central signature", detail: "is not a pinned central key: the signer is unknown"},
		{name: "ErrForgedStationSignature", tamper: func(b *bag) {
			m, _ := b.get(fileEvidence)
			b.set(fileEvidence, bytes.Replace(m, []byte(`"no_ppm":1834`), []byte(`"no_ppm":1934`), 1))
		}, reseal: centralKey, opts: pinned, failedAt: "station signature", detail: "is not signed by station key"},
		{name: "ErrStationKeySwapped", tamper: func(b *bag) {
			b.set(fileStationPub, []byte(base64.StdEncoding.EncodeToString(attacker.Public().(ed25519.PublicKey))+"\n"))
		}, reseal: centralKey, opts: pinned, failedAt: "station signature", detail: "is not signed by station key"},
		{name: "ErrCustodyChainBroken", tamper: func(b *bag) {
			lines := strings.SplitAfter(string(b.body[fileCustody]), "\n")
			b.set(fileCustody, []byte(lines[0]+lines[2]+lines[3]))
		}, reseal: centralKey, opts: pinned, failedAt: "custody chain", detail: "entry 2 has seq 3"},
		{name: "ErrCustodyEntryEdited", tamper: func(b *bag) {
			b.set(fileCustody, bytes.Replace(b.body[fileCustody], []byte(`"actor":"central","action":"received`), []byte(`"actor":"someone","action":"received`), 1))
		}, reseal: centralKey, opts: pinned, failedAt: "custody chain", detail: "entry 3 (case opened) does not chain"},
		{name: "ErrCustodyChanged", tamper: func(b *bag) {
			b.set(fileCustody, []byte("{}\n"))
		}, failedAt: "tag manifest", detail: "custody.jsonl has sha256"},
		{name: "ErrZipSlip", tamper: func(b *bag) { b.set("../../etc/cron.d/evil", []byte("* * * * * root sh")) },
			failedAt: "zip structure", detail: "unsafe entry name"},
		{name: "ErrBagItMissing", tamper: func(b *bag) { b.remove(fileBagIt) },
			failedAt: "bagit.txt", detail: "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := unzip(t, buildPackage(t))
			tc.tamper(b)
			if tc.reseal != nil {
				b.reseal(tc.reseal)
			}
			rep, err := verify(b.zip(t), tc.opts)
			if tc.failedAt == "" {
				if err != nil {
					t.Fatalf("%v\n%s", err, rep)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPackage) {
				t.Fatalf("got %v, want ErrInvalidPackage\n%s", err, rep)
			}
			last := rep.Checks[len(rep.Checks)-1]
			if last.OK || last.Name != tc.failedAt || !strings.Contains(last.Detail, tc.detail) {
				t.Fatalf("failed at %q (%s), want %q containing %q\n%s", last.Name, last.Detail, tc.failedAt, tc.detail, rep)
			}
			if rep.OK() {
				t.Fatal("report says OK")
			}
		})
	}
}

// rawZip builds a zip from name/body pairs exactly as given.
func rawZip(tb testing.TB, entries ...string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < len(entries); i += 2 {
		w, err := zw.Create(entries[i])
		if err != nil {
			tb.Fatal(err)
		}
		io.WriteString(w, entries[i+1])
	}
	zw.Close()
	return buf.Bytes()
}

func TestVerifyHostileZips(t *testing.T) {
	bomb := func() []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("PLM-1/data/media/scene-1.jpg")
		zeros := make([]byte, 1<<20)
		for range 64 { // 64 MiB of zeros, about 64 KiB compressed
			w.Write(zeros)
		}
		zw.Close()
		return buf.Bytes()
	}()
	for _, tc := range []struct {
		name   string
		pkg    []byte
		opts   VerifyOptions
		detail string
	}{
		{"ErrNotZip", []byte("this is not a zip"), VerifyOptions{}, "not a readable zip"},
		{"ErrEmpty", nil, VerifyOptions{}, "not a readable zip"},
		{"ErrDuplicateEntry", rawZip(t, "PLM-1/bagit.txt", "a", "PLM-1/bagit.txt", "b"), VerifyOptions{}, "duplicate entry"},
		{"ErrAbsolutePath", rawZip(t, "/etc/passwd", "x"), VerifyOptions{}, "unsafe entry name"},
		{"ErrDotDot", rawZip(t, "PLM-1/data/../../x", "x"), VerifyOptions{}, "unsafe entry name"},
		{"ErrBackslash", rawZip(t, "PLM-1\\..\\x", "x"), VerifyOptions{}, "unsafe entry name"},
		{"ErrTwoRoots", rawZip(t, "A/bagit.txt", "x", "B/bagit.txt", "x"), VerifyOptions{}, "one top-level directory"},
		{"ErrZipBomb", bomb, VerifyOptions{MaxEntrySize: 8 << 20}, "limit"},
		{"ErrTotalTooLarge", bomb, VerifyOptions{MaxTotalSize: 1 << 20}, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := verify(tc.pkg, tc.opts)
			if !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("got %v, want ErrInvalidPackage with %q\n%s", err, tc.detail, rep)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	pkg := buildPackage(f)
	f.Add(pkg)
	f.Add(rawZip(f, "PLM-1/bagit.txt", bagItDeclaration))
	orig := unzip(f, pkg)
	b := unzip(f, pkg)
	b.remove("data/media/scene-3.jpg")
	f.Add(b.zip(f))
	opts := VerifyOptions{CentralKey: centralKey.Public().(ed25519.PublicKey), MaxEntrySize: 1 << 20, MaxTotalSize: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := verify(data, opts)
		if rep == nil {
			t.Fatal("nil report")
		}
		if (err == nil) != rep.OK() {
			t.Fatalf("error %v but report OK=%v", err, rep.OK())
		}
		if err == nil {
			// With central's key pinned, only changes that leave every file
			// byte-identical (zip metadata) may pass.
			got := unzip(t, data)
			if len(got.body) != len(orig.body) {
				t.Fatalf("verified package has %d files, want %d", len(got.body), len(orig.body))
			}
			for name, body := range orig.body {
				if !bytes.Equal(got.body[name], body) {
					t.Fatalf("verified package has a changed %s", name)
				}
			}
		}
	})
}
