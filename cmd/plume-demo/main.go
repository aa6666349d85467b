// Command plume-demo runs Plume end to end on one machine, on embedded
// defaults and loopback: a central service, one enrolled roadside station
// (the edge agent with its spool and uplink) and the analyser simulator
// playing traffic to it over HJ 212. It shows passes flowing and cases
// appearing, then downloads every evidence package, verifies it offline, and
// prints where to look.
//
// The camera plays the clip in a loop: its vehicles' passes are sent in
// step with it for -loops rounds, so those cases carry images, a plate and
// a clip. Then the simulator sends -passes more from earlier in the day,
// analyser-only, to show screening at volume; the few violations among
// them have no plate and wait, set aside, in the queue's unlinked view.
//
//	plume-demo [-dir demo-data] [-addr 127.0.0.1:8080] [-loops 2] [-passes 120] [-rate 40] [-seed 1] [-exit]
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/client"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/edge/agent"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/sim"
	"github.com/plume-emissions/plume/edge/vision"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "plume-demo:", err)
		os.Exit(1)
	}
}

// Options are the demo's flags.
type Options struct {
	Dir      string
	Addr     string
	Passes   int
	Loops    int
	Rate     float64
	Seed     uint64
	Protocol string
	Exit     bool
	Verbose  bool
	Clip     string // camera clip instead of the station's (camera.go)
	NoCamera bool
}

func parseFlags(args []string, stderr io.Writer) (Options, error) {
	o := Options{}
	fs := flag.NewFlagSet("plume-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Dir, "dir", "demo-data", "working directory for central's and the edge's data (emptied first)")
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "central's listen address (a free port is used if it is taken)")
	fs.IntVar(&o.Passes, "passes", 120, "analyser-only passes to simulate after the camera rounds")
	fs.IntVar(&o.Loops, "loops", 2, "rounds of the camera clip, each with its vehicles' passes")
	fs.Float64Var(&o.Rate, "rate", 40, "passes per second")
	fs.Uint64Var(&o.Seed, "seed", 1, "simulator seed (same seed, same traffic)")
	fs.StringVar(&o.Protocol, "protocol", analyser.ProtocolHJ212, "analyser protocol: hj212 or ndjson")
	fs.BoolVar(&o.Exit, "exit", false, "exit after the summary instead of serving until Ctrl-C")
	fs.BoolVar(&o.Verbose, "v", false, "log every component to stderr")
	fs.StringVar(&o.Clip, "clip", "", "generated clip (with its .json ground truth) the camera plays [the station's camera source]")
	fs.BoolVar(&o.NoCamera, "no-camera", false, "run analyser-only, without the camera clip")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.Passes < 1 || o.Rate <= 0 || o.Loops < 1 {
		return o, errors.New("-passes, -loops and -rate must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if o.Verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	out := &printer{w: stdout, start: time.Now()}

	// A fresh working directory each run, so the figures are this run's.
	if err := os.RemoveAll(o.Dir); err != nil {
		return err
	}
	centralDir, edgeDir, pkgDir := filepath.Join(o.Dir, "central"), filepath.Join(o.Dir, "edge"), filepath.Join(o.Dir, "packages")
	for _, d := range []string{centralDir, edgeDir, pkgDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}

	// 1. Central.
	ccfg := server.NewConfig()
	ccfg.Addr, ccfg.DataDir, ccfg.Logger = o.Addr, centralDir, logger.With("side", "central")
	ccfg.MinSmokeGrade = 2 // camera black smoke of grade 2 or more opens a case (the profiles' smoke.min_grade)
	c, err := server.Open(ctx, ccfg)
	if err != nil {
		out.say("central: %s is taken (%v); using a free port", o.Addr, err)
		ccfg.Addr = "127.0.0.1:0"
		if c, err = server.Open(ctx, ccfg); err != nil {
			return fmt.Errorf("start central: %w", err)
		}
	}
	defer c.Close()
	out.say("central   listening on %s (data in %s)", c.URL(), centralDir)

	// The officers, first, so the web app can be watched while cases
	// arrive. Passwords are random each run; never derived from anything
	// public.
	logins := []struct {
		o    central.Officer
		pass string
		role string
	}{
		{central.Officer{Username: "reviewer", Name: "演示审核员 Demo reviewer", Role: central.RoleReviewer}, "demo-" + rand.Text()[:12], "审核员 reviewer: reviews and decides cases"},
		{central.Officer{Username: "admin", Name: "演示管理员 Demo administrator", Role: central.RoleAdmin}, "demo-" + rand.Text()[:12], "管理员 administrator: officers, stations, settings; decides no cases"},
	}
	for _, l := range logins {
		if err := c.CreateOfficer(ctx, &l.o, l.pass); err != nil {
			return fmt.Errorf("create the demo's %s: %w", l.o.Username, err)
		}
	}
	// The demo's own reads (package downloads) go through the API with the
	// administrator's token.
	tok, err := c.IssueToken(ctx, "admin", "plume-demo: download and verify the evidence packages")
	if err != nil {
		return err
	}
	api := client.New(c.URL(), tok, nil)
	out.blank()
	out.plain("Sign in at %s/login — cases appear as the station sends them:", c.URL())
	for _, l := range logins {
		out.plain("  %-9s password %s   (%s)", l.o.Username, l.pass, l.role)
	}
	out.blank()

	// 2. Enrol the station.
	st, err := config.LoadEmbedded(config.Embedded)
	if err != nil {
		return err
	}
	st.DataDir = edgeDir
	st.Analyser.Protocol = o.Protocol
	// The station file's coordinates reach central, for the cloned-plate speed check.
	enr, err := c.Enroll(ctx, st.Station.Station, st.Name, nil, server.AtLocation(st.Station.Latitude, st.Station.Longitude))
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	b, err := server.EncodeEnrollment(enr)
	if err != nil {
		return err
	}
	if err := os.WriteFile(st.EnrollmentPath(), b, 0o600); err != nil {
		return err
	}
	out.say("enrolled  station %s (%s) with an Ed25519 key → %s", st.Station.Station, st.Name, st.EnrollmentPath())

	// 3. The edge agent, its camera playing a generated clip when there is one.
	clip, truth, haveClip, err := demoClip(st, o.Clip)
	if err != nil {
		return err
	}
	if o.NoCamera || !haveClip {
		if len(st.Cameras) > 0 && !o.NoCamera {
			out.say("camera    clip %s not found (run from the repository root); analyser-only", clip)
		}
		st.Cameras = nil
	} else {
		st.Cameras[0].Source = clip
	}
	// The clip loops, so the camera keeps playing: the loops' passes match
	// it, and the live view shows it while central serves.
	camOpts := agent.CameraOptions{Realtime: true, Loop: true}
	if len(st.Cameras) > 0 {
		plates, err := vision.Open(vision.FindPlateModel(""), vision.Options{}, logger.With("side", "edge", "component", "plates"))
		if err != nil {
			out.say("plates    reader unavailable (%v); the camera runs without plate reading", err)
		} else {
			defer plates.Close()
			camOpts.Plates = plates
			out.say("plates    reading with %s", vision.FindPlateModel(""))
		}
	}
	clipStart := time.Now().Add(2 * time.Second).Truncate(100 * time.Millisecond)
	camOpts.Start = clipStart
	acfg := agent.Config{
		Station: st, Enrollment: enr, Logger: logger.With("side", "edge"),
		AnalyserAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", UplinkPoll: 200 * time.Millisecond,
		Cameras: camOpts,
	}
	// Live view as the station file asks (plume-edge does the same), so
	// the officers can watch the camera the demo plays.
	if l := st.Live; l.Enabled {
		acfg.Live = agent.LiveConfig{Enabled: true, UDPPort: l.UDPPort, RelayOnly: l.RelayOnly, BitrateKbps: l.BitrateKbps}
		if len(l.STUN) > 0 {
			acfg.Live.ICEServers = []plume.LiveICEServer{{URLs: l.STUN}}
		}
	}
	a, err := agent.Open(ctx, acfg)
	if err != nil {
		return fmt.Errorf("start edge: %w", err)
	}
	defer a.Close()
	out.say("edge      agent for %s listening for the analyser (%s) on %s", st.Station.Station, o.Protocol, a.AnalyserAddr())
	for _, fuel := range []plume.Fuel{plume.FuelDiesel, plume.FuelPetrol} {
		if p := st.Profiles.For(fuel); p != nil {
			prov := ""
			if p.Provisional {
				prov = ", provisional"
			}
			out.say("          %s vehicles judged by %s (%s%s)", fuel, p.Standard, p.Ref(), prov)
		}
	}

	// 4. The analyser simulator: first the clip's vehicles, in step with
	// the camera, then random traffic.
	device, err := analyserDevice(st)
	if err != nil {
		return err
	}
	if len(st.Cameras) > 0 {
		var sched []sim.Scheduled
		for i := range o.Loops {
			sched = append(sched, clipSchedule(truth, clipStart.Add(time.Duration(i)*clipLength(truth)), st.Cameras[0].Lanes)...)
		}
		out.say("camera    %s plays %s (%.0f s, %d vehicles) in a loop; the simulator sends the passes of %d round(s) in step (%d passes)",
			st.Cameras[0].Name, filepath.Base(clip), truth.Spec.Seconds, len(truth.Vehicles), o.Loops, len(sched))
		out.say("          the edge judges each pass once the camera has reported its vehicle, a few seconds after it crosses")
		if _, err := playClipPasses(ctx, sim.Config{
			Addr: a.AnalyserAddr(), Protocol: o.Protocol, Station: st.Station.Station, Profile: device,
			Generator: sim.GeneratorConfig{Seed: o.Seed}, Schedule: sched, AckTimeout: 20 * time.Second,
			Logger: logger.With("side", "simulator"),
		}, out, sched, func() string {
			as := a.Stats()
			cs, _ := a.CameraStats()
			return fmt.Sprintf("%d matched a vehicle on camera, %d violation candidates", cs.Matched, as.Violations)
		}); err != nil {
			return fmt.Errorf("simulator (clip): %w", err)
		}
		if cs, ok := a.CameraStats(); ok {
			out.say("camera    %d passes matched a vehicle on camera, %d did not (kept, without images)", cs.Matched, cs.Unmatched)
		}
	}
	// Then screening at volume: passes from earlier in the day on the
	// simulator's own clock, analyser-only (their times are before the
	// camera's, so the edge does not wait for it).
	offset := -2 * time.Hour
	earlier := time.Now().Add(offset)
	// One tampering episode for the integrity rules to find: for about 20
	// passes the analyser sends one constant NO value (恒值).
	tamperFrom := earlier.Add(time.Second)
	tamper := &sim.Tamper{Kind: sim.TamperConstant, Field: "no", Value: 312, From: tamperFrom, To: tamperFrom.Add(time.Duration(20 / o.Rate * float64(time.Second)))}
	player := sim.NewPlayer(sim.Config{
		Addr: a.AnalyserAddr(), Protocol: o.Protocol, Station: st.Station.Station, Profile: device,
		Generator: sim.GeneratorConfig{Seed: o.Seed, Now: func() time.Time { return time.Now().Add(offset) }, Tamper: tamper},
		Rate:      o.Rate, Count: o.Passes, Malformed: 3, Logger: logger.With("side", "simulator"),
	})
	out.say("simulator sends %d analyser-only passes from %s on at %.0f/s (seed %d): petrol cars and diesel trucks, a few high emitters, some invalid readings",
		o.Passes, plume.FormatTime(earlier, st.Location()), o.Rate, o.Seed)
	out.say("          with one tampering episode: for about 20 passes the analyser reports NO as a constant 312 ppm (恒值), for the integrity rules")
	out.blank()

	simDone := make(chan error, 1)
	go func() { simDone <- player.Run(ctx) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// Progress: one line a second while something changes. Central counts
	// records (passes, device status and audits) until the summary.
	last := ""
	progress := func(always bool) {
		ps, as := player.Stats(), a.Stats()
		cs, _ := c.Stats(ctx)
		line := fmt.Sprintf("analyser %4d/%d passes acknowledged │ edge %3d violation candidates, %3d invalid, %3d queued │ central %4d records, %3d cases, %3d packages",
			len(ps.AckedPasses), o.Passes, as.Violations, as.Invalid, as.Spool.QueuedEvidence+as.Spool.QueuedRecords,
			cs.Records, cs.Cases, cs.PackagesBuilt)
		if always || line != last {
			out.say("%s", line)
		}
		last = line
	}
wait:
	for {
		select {
		case err := <-simDone:
			if err != nil {
				return fmt.Errorf("simulator: %w", err)
			}
			break wait
		case <-tick.C:
			progress(false)
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// 5. Let the edge deliver its backlog and central build the packages.
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := a.Spool().Stats()
		if s.QueuedEvidence == 0 && s.QueuedRecords == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("edge spool did not drain within a minute: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = c.WaitIdle(wctx)
	cancel()
	if err != nil {
		return err
	}
	progress(true)
	out.blank()

	// 6. Download every package and verify it offline, pinned to central's
	// key, signed in: central's API serves no anonymous reads.
	cases, err := api.Cases(ctx)
	if err != nil {
		return err
	}
	passes, err := api.Passes(ctx)
	if err != nil {
		return err
	}
	var paths []string
	withPlate := 0
	for _, k := range cases {
		p, rep, err := api.DownloadPackage(ctx, k, pkgDir, c.PublicKey())
		if err != nil {
			return fmt.Errorf("case %s: %w", k.Number, err)
		}
		if !rep.OK() {
			return fmt.Errorf("case %s: package failed verification", k.Number)
		}
		paths = append(paths, p)
		if k.Kind != central.KindUnlinked {
			withPlate++
		}
	}

	as := a.Stats()
	out.say("Done in %s.", time.Since(out.start).Round(100*time.Millisecond))
	out.plain("  station %s screened %d passes: %d violation candidates, %d readings invalid (weak plume, VSP, weather, device), %d malformed frames quarantined.",
		st.Station.Station, as.Passes, as.Violations, as.Invalid, as.Analyser.MalformedTotal())
	out.plain("  central holds those %d passes and %d cases: %d with a plate (the reviewer's queue), %d unlinked (no plate read; set aside in the queue).",
		len(passes), len(cases), withPlate, len(cases)-withPlate)
	out.plain("  %d evidence packages built, downloaded and verified offline.", len(paths))
	out.blank()
	out.plain("Where to look")
	out.plain("  web app       %s/login   (%s / %s, or %s / %s: see above)", c.URL(), logins[0].o.Username, logins[0].pass, logins[1].o.Username, logins[1].pass)
	out.plain("  live camera   %s/live/%s", c.URL(), st.Station.Station)
	out.plain("  cases         %s/api/v1/cases   (signed in)", c.URL())
	if len(cases) > 0 {
		out.plain("  one case      %s/api/v1/cases/%s", c.URL(), cases[0].ID)
	}
	out.plain("  passes        %s/api/v1/passes?outcome=exceed", c.URL())
	out.plain("  stations      %s/api/v1/stations", c.URL())
	out.plain("  metrics       %s/metrics   (edge: http://%s/metrics)", c.URL(), a.MetricsAddr())
	out.plain("  quarantine    %s", filepath.Join(edgeDir, "analyser-quarantine.jsonl"))
	out.blank()
	out.plain("Evidence packages (%s)", pkgDir)
	for i, k := range cases {
		if i == 8 {
			out.plain("  … and %d more", len(cases)-i)
			break
		}
		plate := k.Plate
		if plate == "" {
			plate = "未识别 no plate"
		}
		out.plain("  %s  %s %s", filepath.Base(paths[i]), padCells(plate, 16), shorten(withoutCitation(k.Summary), 90))
	}
	if len(paths) > 0 {
		out.blank()
		out.plain("Verify one yourself:  go run ./central/cmd/plume-central verify -central-key %s %s", plume.EncodeKey(c.PublicKey()), paths[0])
	}
	if o.Exit {
		return nil
	}
	out.blank()
	out.plain("Central and the station keep running; press Ctrl-C to stop.")
	if len(st.Cameras) > 0 {
		// The analyser stays connected and the station healthy: it keeps
		// sending the passes of the clip's clean cars, in step with the
		// looping camera (new passes for the dashboard, no new cases).
		from := clipStart.Add(time.Duration(o.Loops) * clipLength(truth))
		for from.Before(time.Now()) {
			from = from.Add(clipLength(truth))
		}
		var keep []sim.Scheduled
		for i := range int(24 * time.Hour / max(clipLength(truth), time.Second)) {
			for _, p := range clipSchedule(truth, from.Add(time.Duration(i)*clipLength(truth)), st.Cameras[0].Lanes) {
				if p.Fuel == plume.FuelPetrol && !p.Exceed {
					keep = append(keep, p)
				}
			}
		}
		out.plain("The analyser keeps sending the passes of the clip's clean cars in step with the camera (no new cases), so the station stays healthy.")
		err := sim.NewPlayer(sim.Config{
			Addr: a.AnalyserAddr(), Protocol: o.Protocol, Station: st.Station.Station, Profile: device,
			Generator: sim.GeneratorConfig{Seed: o.Seed + 1}, Schedule: keep, AckTimeout: 20 * time.Second,
			Logger: logger.With("side", "simulator"),
		}).Run(ctx)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("simulator (keep-alive): %w", err)
		}
	}
	<-ctx.Done()
	return nil
}

// withoutCitation drops a verdict summary's closing citation of standard
// and profile ("… (HJ 845-2017, profile …)"), which the package holds.
func withoutCitation(s string) string {
	if i := strings.LastIndex(s, " ("); i > 0 && strings.HasSuffix(s, ")") && strings.Contains(s[i:], "profile ") {
		return s[:i]
	}
	return s
}

// padCells pads s with spaces to n terminal cells: a CJK character takes
// two, so columns line up after Chinese plates.
func padCells(s string, n int) string {
	w := 0
	for _, r := range s {
		w++
		if r >= 0x2e80 {
			w++
		}
	}
	return s + strings.Repeat(" ", max(0, n-w))
}

// shorten cuts s to at most n runes at a word boundary, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	cut := n - 1
	for i := cut; i > n/2; i-- {
		if r[i] == ' ' {
			cut = i
			break
		}
	}
	return strings.TrimRight(string(r[:cut]), " ,;:(") + " …"
}

// printer writes progress lines stamped with the time since start.
type printer struct {
	w     io.Writer
	start time.Time
}

func (p *printer) say(format string, args ...any) {
	fmt.Fprintf(p.w, "[%5.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func (p *printer) plain(format string, args ...any) {
	fmt.Fprintln(p.w, strings.TrimRight(fmt.Sprintf(format, args...), " "))
}

func (p *printer) blank() { fmt.Fprintln(p.w) }
