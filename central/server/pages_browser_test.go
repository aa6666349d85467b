package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

// pageSite is what the page tests browse: a rig of their own, or a running
// central named by $PLUME_SCREENSHOT_URL (deploy/screenshots points it at
// a fresh demo) with $PLUME_SCREENSHOT_USER and $PLUME_SCREENSHOT_PASSWORD.
type pageSite struct {
	url, user, pass string
	cases           []plume.CaseID // cases to open
	stations        []plume.StationID
}

func newPageSite(t *testing.T) pageSite {
	if u := os.Getenv("PLUME_SCREENSHOT_URL"); u != "" {
		return pageSite{url: strings.TrimRight(u, "/"), user: os.Getenv("PLUME_SCREENSHOT_USER"), pass: os.Getenv("PLUME_SCREENSHOT_PASSWORD"), stations: []plume.StationID{"DEMO-0001"}}
	}
	r := newRig(t)
	seedOps(t, r)
	at := time.Now().Add(-3 * time.Hour)
	p := fixture.Pass(r.a.Station, at, 1, false)
	p.SmokeSeen = &plume.Smoke{Smoky: true, Grade: 4, Confidence: 0.93}
	p.Verdict = plume.Judge(&p.Reading, p.SmokeSeen, fixture.DieselProfile())
	smoke := r.putPass(t, r.a, p, clipMP4(t))
	plated := r.putCase(t, r.a, at.Add(time.Minute), "粤B54321", nil)
	r.putCase(t, r.a, at.Add(2*time.Minute), "", nil)
	return pageSite{url: r.s.URL(), user: "admin", pass: pw, cases: []plume.CaseID{smoke, plated}, stations: []plume.StationID{r.a.Station, r.b.Station}}
}

// caseIDs returns the site's cases to open: the rig's, or the first two
// the queue of a running central lists.
func (s pageSite) caseIDs(t *testing.T, ctx context.Context) []plume.CaseID {
	if len(s.cases) > 0 {
		return s.cases
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/queue"), chromedp.WaitVisible("#queue")); err != nil {
		t.Fatalf("queue: %v", err)
	}
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...new Set([...document.querySelectorAll('#queue a[href^="/cases/"]')].map(a => a.getAttribute('href').split('?')[0].slice(7)))].slice(0, 3)`))
	if err != nil {
		t.Fatalf("queue links: %v", err)
	}
	var out []plume.CaseID
	for _, id := range ids {
		out = append(out, plume.CaseID(id))
	}
	return out
}

// browserCtx starts headless Chromium at the given window width.
func browserCtx(t *testing.T, width int) context.Context {
	bin := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// navLayout measures the header's navigation: every link's box, the
// header's box and main's top, in CSS pixels.
const navLayout = `(() => {
  const r = e => { const b = e.getBoundingClientRect(); return {l: b.left, t: b.top, r: b.right, b: b.bottom}; };
  const h = document.querySelector('header.top');
  return JSON.stringify({
    header: r(h), main: r(document.querySelector('main')),
    links: [...document.querySelectorAll('header.top nav a')].map(a => Object.assign(r(a), {text: a.textContent.trim()})),
    who: r(h.querySelector('.who')), brand: r(h.querySelector('.brand')),
    scroll: document.documentElement.scrollWidth, width: window.innerWidth,
  });
})()`

type box struct {
	L, T, R, B float64
	Text       string
}

func (a box) overlaps(b box) bool {
	return a.L < b.R-0.5 && b.L < a.R-0.5 && a.T < b.B-0.5 && b.T < a.B-0.5
}

// TestBrowserNavFits: at 1280, 1400 and 1920 px the administrator's
// navigation (every tab) sits in one row inside the header, no tab
// overlapping another or the signed-in box, and the page starts below the
// header; at 1024 px (a tablet) every tab is still visible and clickable
// above the page. Each page is screenshotted at every width into
// $PLUME_SCREENSHOT_DIR.
func TestBrowserNavFits(t *testing.T) {
	site := newPageSite(t)
	dir := shotDir(t)
	for _, width := range []int{1024, 1280, 1400, 1920} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			ctx := browserCtx(t, width)
			if err := chromedp.Do(ctx, chromedp.Navigate(site.url+"/login"), chromedp.WaitVisible("#username"),
				chromedp.SendKeys("#username", site.user), chromedp.SendKeys("#password", site.pass),
				chromedp.Click("#login-button"), chromedp.WaitVisible("main")); err != nil {
				t.Fatalf("sign in: %v", err)
			}
			pages := []string{"/queue", "/queue?kind=unlinked", "/vehicles", "/dashboard", "/stations", "/alerts", "/audit", "/admin/officers"}
			for _, id := range site.caseIDs(t, ctx) {
				pages = append(pages, "/cases/"+string(id))
			}
			pages = append(pages, "/stations/"+string(site.stations[0]))
			if width != 1400 { // the header is the same on every page
				pages = []string{"/queue", pages[len(pages)-2]}
			}
			for _, pg := range pages {
				if err := chromedp.Do(ctx, chromedp.Navigate(site.url+pg), chromedp.WaitVisible("body")); err != nil {
					t.Fatalf("%s: %v", pg, err)
				}
				time.Sleep(300 * time.Millisecond)
				name := strings.NewReplacer("/", "_", "?", "_", "=", "-").Replace(strings.TrimPrefix(pg, "/"))
				if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(90)); err == nil {
					os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d-%s.jpg", width, name)), buf, 0o644)
				}
				raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](navLayout))
				if err != nil {
					t.Fatalf("%s: layout: %v", pg, err)
				}
				var l struct {
					Header, Main, Who, Brand box
					Links                    []box
					Scroll, Width            float64
				}
				if err := json.Unmarshal([]byte(raw), &l); err != nil {
					t.Fatal(err)
				}
				if len(l.Links) < 7 {
					t.Fatalf("%s: %d navigation links, want the administrator's 7", pg, len(l.Links))
				}
				for i, a := range l.Links {
					if a.T < l.Header.T-0.5 || a.B > l.Header.B+0.5 || a.L < 0 || a.R > float64(width) {
						t.Errorf("%d px %s: tab %q at %+v outside the header %+v", width, pg, a.Text, a, l.Header)
					}
					if a.overlaps(l.Who) || a.overlaps(l.Brand) {
						t.Errorf("%d px %s: tab %q overlaps the header's other parts", width, pg, a.Text)
					}
					for _, b := range l.Links[i+1:] {
						if a.overlaps(b) {
							t.Errorf("%d px %s: tabs %q and %q overlap", width, pg, a.Text, b.Text)
						}
					}
					if width >= 1280 && (a.T-l.Links[0].T > 3 || l.Links[0].T-a.T > 3) {
						t.Errorf("%d px %s: tab %q wraps to a second row", width, pg, a.Text)
					}
				}
				if l.Main.T < l.Header.B-0.5 {
					t.Errorf("%d px %s: the page starts at %.0f, under the header ending at %.0f", width, pg, l.Main.T, l.Header.B)
				}
				if width >= 1280 && pg == "/queue" && l.Scroll > l.Width+1 {
					t.Errorf("%d px %s: the page scrolls sideways (%.0f > %.0f)", width, pg, l.Scroll, l.Width)
				}
			}
		})
	}
}

// TestBrowserQueueNewCases: a queue left open notices a case that arrived
// after it was drawn and says so, without moving its rows.
func TestBrowserQueueNewCases(t *testing.T) {
	r := newRig(t)
	r.putCase(t, r.a, time.Now().Add(-time.Hour), "粤B20001", nil)
	ctx := browserCtx(t, 1400)
	if err := chromedp.Do(ctx, chromedp.Navigate(r.s.URL()+"/login"), chromedp.WaitVisible("#username"),
		chromedp.SendKeys("#username", "li.wei"), chromedp.SendKeys("#password", pw),
		chromedp.Click("#login-button"), chromedp.WaitVisible("#queue")); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('new-cases').hidden`))
	if err != nil || !hidden {
		t.Fatalf("new-cases notice shown before any new case (%v)", err)
	}
	r.putCase(t, r.a, time.Now().Add(-30*time.Minute), "粤B20002", nil)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(window.plumeQueueCheck(), true)`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.getElementById('new-cases').hidden`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Fatalf("no new-cases notice: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#queue tbody tr[data-href]').length`))
	if err != nil || rows != 1 {
		t.Errorf("the queue redrew itself: %d rows (%v)", rows, err)
	}
}

// TestBrowserLiveLinked: the live view is reached by links (the station
// page's, then the case page's) and wears the app's header; against a
// running demo ($PLUME_SCREENSHOT_URL) it must also decode frames of the
// camera the demo plays.
func TestBrowserLiveLinked(t *testing.T) {
	site := newPageSite(t)
	ctx := browserCtx(t, 1400)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.url+"/login"), chromedp.WaitVisible("#username"),
		chromedp.SendKeys("#username", site.user), chromedp.SendKeys("#password", site.pass),
		chromedp.Click("#login-button"), chromedp.WaitVisible("main")); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	st := string(site.stations[0])
	// Follow each page's live-view link (its href, as a click would).
	follow := func(from string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(site.url+from), chromedp.WaitVisible("#live-link")); err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('live-link').getAttribute('href')`))
		if err != nil || href != "/live/"+st {
			t.Fatalf("%s links the live view as %q (%v)", from, href, err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(site.url+href), chromedp.WaitVisible("#video")); err != nil {
			t.Fatalf("%s → live view: %v", from, err)
		}
	}
	follow("/stations/" + st)
	if ids := site.caseIDs(t, ctx); len(ids) > 0 {
		follow("/cases/" + string(ids[0]))
	}
	state, err := chromedp.Run(ctx, chromedp.Text("#state"))
	if err != nil {
		t.Fatal(err)
	}
	header, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector('header.top nav a.on')`))
	if err != nil || !header || !strings.ContainsAny(state, "连已站重") {
		t.Errorf("live page: app header %v, state %q (want Chinese)", header, state)
	}
	// The app's stylesheet applies (the page's CSP once blocked it).
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('header.top')).backgroundColor`))
	if err != nil || bg != "rgb(22, 52, 96)" {
		t.Errorf("live page header background %q (%v), want the app's navy", bg, err)
	}
	if os.Getenv("PLUME_SCREENSHOT_URL") != "" {
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.plumeLive.framesDecoded > 10`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.plumeLive)`))
			t.Fatalf("live view decoded no frames of the demo's camera: %v; %s", err, st)
		}
	}
	if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(90)); err == nil {
		os.WriteFile(filepath.Join(shotDir(t), "1400-live.jpg"), buf, 0o644)
	}
}
