// Command plume-sim plays a simulated remote-sensing analyser to an edge
// agent: a seeded stream of vehicle passes, device status and audits, sent
// over TCP as HJ 212-2017 frames or NDJSON lines, each acknowledged before
// the next, resent after the edge restarts.
//
//	plume-sim -addr 127.0.0.1:9212 -protocol hj212 -station GD-SZ-0001 -rate 5 -count 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "plume-sim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9212", "the edge's analyser port")
	protocol := fs.String("protocol", analyser.ProtocolHJ212, "hj212 or ndjson")
	station := fs.String("station", "GD-SZ-0001", "station ID (NDJSON station field, pass IDs)")
	seed := fs.Uint64("seed", 1, "random seed of the traffic")
	rate := fs.Float64("rate", 2, "passes per second (0: as fast as the edge acknowledges)")
	count := fs.Int("count", 0, "stop after this many acknowledged passes (0: run until interrupted)")
	malformed := fs.Int("malformed", 0, "malformed frames to inject")
	mn := fs.String("mn", "PLUMESIM0001", "HJ 212 device code (MN)")
	profile := fs.String("profile", "firmware-config/devices/generic-rsd.yaml", "device profile to encode with")
	lanes := fs.Int("lanes", 2, "lanes under the gantry")
	verbose := fs.Bool("v", false, "log every connection and resend")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	prof, err := analyser.LoadProfile(*profile)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	p := sim.NewPlayer(sim.Config{
		Addr: *addr, Protocol: *protocol, Station: plume.StationID(*station), MN: *mn, Profile: prof,
		Generator: sim.GeneratorConfig{Seed: *seed, Lanes: *lanes},
		Rate:      *rate, Count: *count, Malformed: *malformed,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	})

	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case err := <-done:
			progress(stderr, p.Stats(), start)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-tick.C:
			progress(stderr, p.Stats(), start)
		}
	}
}

func progress(w io.Writer, s sim.Stats, start time.Time) {
	fmt.Fprintf(w, "plume-sim: %s: passes acked %d (sent %d), status %d, audits %d, malformed %d, resends %d, connects %d\n",
		time.Since(start).Round(time.Second), s.Acked[plume.RecordPass], s.Sent[plume.RecordPass],
		s.Acked[plume.RecordStatus], s.Acked[plume.RecordAudit], s.Malformed, s.Resends, s.Connects)
}
