package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/export/policetest"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
)

// rig is a real central with a police receiver that follows the contract,
// two stations and three officers.
type rig struct {
	s       *server.Server
	police  *policetest.Receiver
	psrv    *httptest.Server
	a, b    *fixture.Client // stations GD-SZ-0001 and GD-SZ-0002
	secret  []byte
	dataDir string
}

const pw = "correct horse battery"

func newRig(tb testing.TB, mutate ...func(*server.Config)) *rig {
	tb.Helper()
	r := &rig{secret: []byte("police shared secret, 32 bytes!!")}
	r.police = policetest.New(r.secret)
	r.psrv = httptest.NewServer(r.police)
	tb.Cleanup(r.psrv.Close)
	r.dataDir = tb.TempDir()
	r.s = mustOpen(tb, r.dataDir, append([]func(*server.Config){func(c *server.Config) {
		c.PoliceURL, c.PoliceSecret, c.ExportPoll = r.psrv.URL, r.secret, 100*time.Millisecond
	}}, mutate...)...)
	r.a = enrollClient(tb, r.s, "GD-SZ-0001")
	r.b = enrollClient(tb, r.s, "GD-SZ-0002")
	ctx := context.Background()
	for _, o := range []*central.Officer{
		{Username: "li.wei", Name: "李伟", Role: central.RoleReviewer},
		{Username: "zhang.min", Name: "张敏", Role: central.RoleSupervisor},
		{Username: "wang.fang", Name: "王芳", Role: central.RoleReviewer, Stations: []plume.StationID{"GD-SZ-0002"}},
		{Username: "audit", Name: "审计员", Role: central.RoleAuditor},
		{Username: "admin", Name: "管理员", Role: central.RoleAdmin},
	} {
		if err := r.s.CreateOfficer(ctx, o, pw); err != nil {
			tb.Fatal(err)
		}
	}
	return r
}

// sceneJPEG draws a 1280×720 road scene: sky, road, a truck with a
// yellow plate and a smoke cloud, so the pages show real images.
func sceneJPEG(tb testing.TB, seed int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 1280, 720))
	fill := func(r image.Rectangle, c color.RGBA) {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				img.SetRGBA(x, y, c)
			}
		}
	}
	fill(img.Rect, color.RGBA{150, 185, 220, 255})
	fill(image.Rect(0, 380, 1280, 720), color.RGBA{70, 72, 76, 255})
	for x := 0; x < 1280; x += 160 {
		fill(image.Rect(x, 545, x+80, 555), color.RGBA{235, 235, 235, 255})
	}
	off := seed * 90
	fill(image.Rect(380+off, 250, 820+off, 560), color.RGBA{30, 90, 160, 255})   // cab
	fill(image.Rect(430+off, 280, 770+off, 380), color.RGBA{180, 210, 235, 255}) // windscreen
	fill(image.Rect(545+off, 470, 655+off, 505), color.RGBA{245, 200, 20, 255})  // yellow plate
	for i := 0; i < 60; i++ {
		fill(image.Rect(830+off+i*3, 470-i, 880+off+i*4, 520-i/2), color.RGBA{40, 40, 40, 255}) // smoke
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// clipMP4 makes a 2 s H.264 MP4 with ffmpeg, or returns nil when ffmpeg
// is not installed (deploy/bootstrap installs it).
func clipMP4(tb testing.TB) []byte {
	tb.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		tb.Log("ffmpeg not installed: the case carries no clip (install ffmpeg, see deploy/bootstrap)")
		return nil
	}
	out := filepath.Join(tb.TempDir(), "clip.mp4")
	cmd := exec.Command(ff, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=15", "-t", "2",
		"-c:v", "libx264", "-profile:v", "high", "-pix_fmt", "yuv420p", "-movflags", "+faststart", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Logf("ffmpeg failed, no clip: %v %s", err, b)
		return nil
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// putCase uploads an exceeding pass of station at t with real media and
// returns its case ID. plate "" means no plate was read.
func (r *rig) putCase(tb testing.TB, c *fixture.Client, t time.Time, plate string, clip []byte) plume.CaseID {
	tb.Helper()
	p := fixture.Pass(c.Station, t, 1, true)
	if plate == "" {
		p.Plate = nil
	} else {
		p.Plate.Text = plate
	}
	return r.putPass(tb, c, p, clip)
}

// putPass uploads pass p of station c with real media and returns its
// case ID.
func (r *rig) putPass(tb testing.TB, c *fixture.Client, p plume.Pass, clip []byte) plume.CaseID {
	tb.Helper()
	at := p.ReceivedAt
	media := []fixture.Media{
		fixture.NewMedia("scene-1.jpg", plume.MediaScene, sceneJPEG(tb, 0), at),
		fixture.NewMedia("scene-2.jpg", plume.MediaScene, sceneJPEG(tb, 1), at.Add(400*time.Millisecond)),
		fixture.NewMedia("analyser.txt", plume.MediaAnalyserRaw, []byte("##0102QN=20261128093000000;ST=31;CN=2011;...\r\n"), at),
	}
	media[0].Ref.ContentType, media[1].Ref.ContentType, media[2].Ref.ContentType = "image/jpeg", "image/jpeg", "text/plain"
	if clip != nil {
		m := fixture.NewMedia("clip.mp4", plume.MediaClip, clip, at)
		m.Ref.ContentType = "video/mp4"
		media = append(media, m)
	}
	return putSigned(tb, c, p, at, "rig", media)
}

// putSigned signs, as station c, a manifest of pass p captured at with its
// media, uploads it, and returns the case it opened.
func putSigned(tb testing.TB, c *fixture.Client, p plume.Pass, at time.Time, software string, media []fixture.Media) plume.CaseID {
	tb.Helper()
	m := &plume.Manifest{Schema: plume.ManifestSchema, ID: plume.EvidenceID(p.ID), Station: c.Station, CapturedAt: at, Software: software, Pass: p}
	for _, md := range media {
		m.Media = append(m.Media, md.Ref)
	}
	body, sig, err := plume.SignManifest(c.Key, m)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := c.PutEvidence(&fixture.Evidence{Manifest: m, Body: body, Sig: sig, Media: media})
	if err != nil || resp.Status != http.StatusCreated {
		tb.Fatalf("put evidence: %v %v", resp, err)
	}
	var out struct{ Case plume.CaseID }
	resp.JSON(&out)
	if out.Case == "" {
		tb.Fatalf("no case opened: %s", resp)
	}
	return out.Case
}

// browser is an HTTP client with a cookie jar, signed in as one officer.
type browser struct {
	tb   testing.TB
	base string
	c    *http.Client
	csrf string
}

func (r *rig) login(tb testing.TB, user string) *browser {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{tb: tb, base: r.s.URL(), c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	resp := b.post("/login", url.Values{"username": {user}, "password": {pw}})
	if resp.StatusCode != http.StatusSeeOther {
		tb.Fatalf("login %s: %d", user, resp.StatusCode)
	}
	b.refreshCSRF()
	return b
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) refreshCSRF() {
	_, body := b.get("/queue")
	if m := csrfPattern.FindStringSubmatch(body); m != nil {
		b.csrf = m[1]
	}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.tb.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(path string, form url.Values) *http.Response {
	b.tb.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// action posts a review form with the CSRF token.
func (b *browser) action(id plume.CaseID, action string, form url.Values) *http.Response {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	return b.post(fmt.Sprintf("/cases/%s/%s", id, action), form)
}

// waitCase polls the store until cond holds for the case.
func (r *rig) waitCase(tb testing.TB, id plume.CaseID, what string, cond func(*central.Case) bool) *central.Case {
	tb.Helper()
	// Generous: under a loaded CI machine a package rebuild (PDF sheet
	// included) can take seconds before the export may leave.
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := r.s.Store().Case(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(c, "", " ")
			tb.Fatalf("case %s never %s: %s", id, what, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *rig) dispose(tb testing.TB, c *central.Case, outcome string) (int, string) {
	tb.Helper()
	st, body, err := r.police.Dispose(context.Background(), r.s.URL()+"/api/v1/police/dispositions", policetest.Disposition{
		CaseNumber: c.Number, Receipt: c.Export.Receipt, Outcome: outcome, Reference: "4403-2026-000123", DecidedAt: time.Now().UTC(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return st, strings.TrimSpace(string(body))
}
