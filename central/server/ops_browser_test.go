package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserOpsPages drives headless Chromium through the station
// operations pages of a real central with real data: the stations list,
// one station with its heartbeats, the alerts, an integrity alert whose
// SVG chart must be drawn at a real size, acknowledging it through the
// page's form, a cloned-plate alert with both sightings side by side, and a
// backtest. Screenshots go to $PLUME_SCREENSHOT_DIR.
func TestBrowserOpsPages(t *testing.T) {
	bin := chromium(t)
	r := newRig(t)
	seed := seedOps(t, r)
	dir := shotDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	do := func(step string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	u := r.s.URL()

	do("sign in", chromedp.Navigate(u+"/queue"), chromedp.WaitVisible("#username"),
		chromedp.SendKeys("#username", "li.wei"), chromedp.SendKeys("#password", pw),
		chromedp.Click("#login-button"), chromedp.WaitVisible("#queue"))
	do("stations page", chromedp.Navigate(u+"/stations"), chromedp.WaitVisible("#stations"))
	stations := text("#stations")
	shot("ops-stations.png")
	if !strings.Contains(stations, "GD-SZ-0001") || !strings.Contains(stations, "降级 degraded") || !strings.Contains(stations, "camera rear frozen") {
		t.Fatalf("stations page: %.400s", stations)
	}

	do("station page", chromedp.Navigate(u+"/stations/GD-SZ-0001"), chromedp.WaitVisible("#history"))
	if s := text("#station-state"); !strings.Contains(s, "degraded") {
		t.Fatalf("station state %q", s)
	}
	shot("ops-station.png")

	do("alerts page", chromedp.Navigate(u+"/alerts"), chromedp.WaitVisible("#alerts"))
	if s := text("#alerts"); !strings.Contains(s, "constant-value@v1") || !strings.Contains(s, "cloned-plate") {
		t.Fatalf("alerts page: %.400s", s)
	}
	shot("ops-alerts.png")

	// The integrity alert: the chart is drawn, wide enough to read.
	do("integrity alert", chromedp.Navigate(u+"/alerts/"+seed.integrity.ID), chromedp.WaitVisible("#chart svg"))
	width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector('#chart svg').getBoundingClientRect().width`))
	if err != nil || width < 400 {
		t.Fatalf("chart width %.0f px (%v), want a drawn chart", width, err)
	}
	shot("ops-alert-integrity.png")
	do("acknowledge", chromedp.SendKeys(`input[name=comment]`, "checking the analyser"),
		chromedp.Click(`button[value=acknowledge]`), chromedp.WaitVisible(`#alert-state[data-state=acknowledged]`))

	do("cloned alert", chromedp.Navigate(u+"/alerts/"+seed.cloned.ID), chromedp.WaitVisible("#sightings"))
	// Both sightings side by side: two panels on one row.
	tops, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`Array.from(document.querySelectorAll('#sightings .cols > .panel')).map(p => p.getBoundingClientRect().top)`))
	if err != nil || len(tops) != 2 || tops[0] != tops[1] {
		t.Fatalf("sightings not side by side: %v %v", tops, err)
	}
	shot("ops-alert-cloned.png")

	do("backtest", chromedp.Navigate(u+"/backtest?station=GD-SZ-0001&rule=constant-value"), chromedp.WaitVisible("#backtest-stats"))
	shot("ops-backtest.png")
}
