package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/plume-emissions/plume"
)

// HistoryConfig shapes a simulated station history: weeks of traffic on a
// fast simulated clock, judged as the edge would judge it, as the records
// central receives. Zero fields take the defaults in brackets.
type HistoryConfig struct {
	Station   plume.StationID  // [GD-SZ-0001]
	Generator GeneratorConfig  // seed, lanes, start, tamper; Now must be nil
	Profiles  plume.ProfileSet // judges each pass (required)
	Duration  time.Duration    // [30 days]
	// Traffic is the relative traffic at t (1 = Generator.MeanHeadway).
	// [DiurnalTraffic]
	Traffic func(t time.Time) float64
	// CameraEvery is the length of the camera count intervals [5 min].
	CameraEvery time.Duration
	// CameraMiss is the share of vehicles the cameras fail to count [0.01].
	CameraMiss float64
}

// CameraCount is the number of vehicles the station's cameras counted in
// [From, To).
type CameraCount struct {
	From, To time.Time
	Vehicles int
}

// DiurnalTraffic is a city road's day: quiet nights (about a twelfth of
// the day's mean traffic), morning and evening peaks, weekends at three
// quarters. Hours are those of t's location.
func DiurnalTraffic(t time.Time) float64 {
	shape := [24]float64{0.12, 0.08, 0.06, 0.05, 0.07, 0.2, 0.6, 1.6, 1.9, 1.4, 1.2, 1.2,
		1.2, 1.15, 1.2, 1.3, 1.5, 1.8, 1.7, 1.2, 0.9, 0.7, 0.45, 0.25}
	f := shape[t.Hour()]
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		f *= 0.75
	}
	return f
}

// History generates the history and hands each record (passes with their
// verdicts, device status, audits) to record and each camera count to
// camera, in time order. Either callback may be nil; an error from one
// stops the run and is returned.
func History(ctx context.Context, cfg HistoryConfig, record func(plume.Record) error, camera func(CameraCount) error) error {
	if cfg.Station == "" {
		cfg.Station = "GD-SZ-0001"
	}
	if err := cfg.Station.Validate(); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if cfg.Profiles == nil {
		return fmt.Errorf("history: limit profiles are required")
	}
	if cfg.Generator.Now != nil {
		return fmt.Errorf("history: the generator must run on its simulated clock")
	}
	if t := cfg.Generator.Tamper; t != nil {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("history: %w", err)
		}
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * 24 * time.Hour
	}
	if cfg.Traffic == nil {
		cfg.Traffic = DiurnalTraffic
	}
	if cfg.CameraEvery <= 0 {
		cfg.CameraEvery = 5 * time.Minute
	}
	if cfg.CameraMiss <= 0 {
		cfg.CameraMiss = 0.01
	}
	g := NewGenerator(cfg.Generator)
	mean := g.cfg.MeanHeadway
	end := g.cfg.Start.Add(cfg.Duration)
	camRNG := rand.New(rand.NewPCG(cfg.Generator.Seed+1, 0x5eed))
	camFrom := g.cfg.Start
	vehicles := 0
	see := func(t time.Time) error {
		for camera != nil && !t.Before(camFrom.Add(cfg.CameraEvery)) {
			if err := camera(CameraCount{From: camFrom, To: camFrom.Add(cfg.CameraEvery), Vehicles: vehicles}); err != nil {
				return err
			}
			camFrom, vehicles = camFrom.Add(cfg.CameraEvery), 0
		}
		if camRNG.Float64() >= cfg.CameraMiss {
			vehicles++
		}
		return nil
	}
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
		}
		f := cfg.Traffic(g.clock)
		g.cfg.MeanHeadway = time.Duration(float64(mean) / max(f, 0.01))
		ev := g.Next()
		var rec plume.Record
		switch ev.Kind {
		case plume.RecordPass:
			r := ev.Reading
			if g.cfg.Tamper != nil {
				for _, t := range g.cfg.Tamper.TakeDropped() {
					if err := see(t); err != nil {
						return err
					}
				}
			}
			if !r.Time.Before(end) {
				return nil
			}
			if err := see(r.Time); err != nil {
				return err
			}
			p := &plume.Pass{ID: plume.NewPassID(cfg.Station, r.Time, r.Lane), Station: cfg.Station, Reading: *r, ReceivedAt: r.Time}
			p.Verdict = plume.Assess(&p.Reading, cfg.Profiles.For(r.Fuel))
			rec = plume.Record{Kind: plume.RecordPass, ID: string(p.ID), Station: cfg.Station, Time: r.Time, Pass: p}
		case plume.RecordStatus:
			rec = plume.Record{Kind: plume.RecordStatus, ID: fmt.Sprintf("status-%d", n), Station: cfg.Station, Time: ev.Status.Time, Status: ev.Status}
		case plume.RecordAudit:
			rec = plume.Record{Kind: plume.RecordAudit, ID: fmt.Sprintf("audit-%d", n), Station: cfg.Station, Time: ev.Audit.Time, Audit: ev.Audit}
		default:
			continue
		}
		if record != nil {
			if err := record(rec); err != nil {
				return err
			}
		}
	}
}
