// Command plume-simhistory writes a simulated station history — passes
// judged as the edge would, device status, audits — as one plume.Record
// (JSON) a line, and optionally the cameras' vehicle counts, for
// central/cmd/plume-integrity to backtest. It can inject tampering.
//
//	plume-simhistory -days 30 -tamper replay -camera cam.ndjson > history.ndjson
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "plume-simhistory:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-simhistory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	station := fs.String("station", "GD-SZ-0001", "station ID")
	seed := fs.Uint64("seed", 1, "random seed")
	days := fs.Float64("days", 30, "days of history")
	headway := fs.Duration("headway", 10*time.Second, "mean gap between vehicles at average traffic")
	startS := fs.String("start", "2026-11-02T00:00:00Z", "start of the history (RFC 3339)")
	camFile := fs.String("camera", "", "also write camera counts to this file")
	kind := fs.String("tamper", "", "inject tampering: constant, limit_hug, replay or dropout")
	field := fs.String("field", "no", "tampered field (constant, limit_hug)")
	value := fs.Float64("value", 1500, "constant value, or the limit hugged")
	tFrom := fs.Duration("tamper-from", 96*time.Hour, "tampering starts this long after the start")
	tFor := fs.Duration("tamper-for", 6*time.Hour, "and lasts this long")
	lag := fs.Duration("lag", 24*time.Hour, "replay: age of the replayed data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start, err := time.Parse(time.RFC3339, *startS)
	if err != nil {
		return fmt.Errorf("bad -start: %w", err)
	}
	l, err := config.LoadEmbedded(config.Embedded)
	if err != nil {
		return err
	}
	cfg := sim.HistoryConfig{
		Station:   plume.StationID(*station),
		Generator: sim.GeneratorConfig{Seed: *seed, Start: start, MeanHeadway: *headway},
		Profiles:  l.Profiles,
		Duration:  time.Duration(*days * float64(24*time.Hour)),
	}
	var tamp *sim.Tamper
	if *kind != "" {
		tamp = &sim.Tamper{Kind: sim.TamperKind(*kind), Field: *field, Value: *value, Lag: *lag,
			From: start.Add(*tFrom), To: start.Add(*tFrom + *tFor)}
		cfg.Generator.Tamper = tamp
	}
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	var camera func(sim.CameraCount) error
	if *camFile != "" {
		f, err := os.Create(*camFile)
		if err != nil {
			return fmt.Errorf("create camera file: %w", err)
		}
		defer f.Close()
		cw := bufio.NewWriter(f)
		defer cw.Flush()
		cenc := json.NewEncoder(cw)
		camera = func(c sim.CameraCount) error {
			return cenc.Encode(map[string]any{"station": *station, "from": c.From, "to": c.To, "vehicles": c.Vehicles})
		}
	}
	n := 0
	if err := sim.History(ctx, cfg, func(r plume.Record) error { n++; return enc.Encode(r) }, camera); err != nil {
		return err
	}
	if tamp != nil {
		fmt.Fprintf(stderr, "%d records; %d passes tampered (%s) from %s to %s\n", n, tamp.Tampered, tamp.Kind, tamp.From.Format(time.RFC3339), tamp.To.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stderr, "%d records\n", n)
	}
	return w.Flush()
}
