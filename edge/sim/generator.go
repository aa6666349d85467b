package sim

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/plume-emissions/plume"
)

// GeneratorConfig shapes the simulated traffic. Zero fields take the
// defaults in brackets.
type GeneratorConfig struct {
	Seed        uint64
	Lanes       int           // lanes under the gantry [2]
	DieselShare float64       // share of diesel trucks and buses [0.25]
	SlopePct    float64       // road grade at the gantry, % [1.5]
	StatusEvery int           // a device status record after every N passes [50]
	AuditEvery  int           // a calibration/audit record after every N passes [500]
	MeanHeadway time.Duration // mean gap between vehicles on the simulated clock [2 s]
	// Now is the clock that stamps records (time.Now for live runs). When
	// nil the generator keeps its own simulated clock, starting at Start
	// and advancing by random headways, so a seed alone fixes the stream.
	Now   func() time.Time
	Start time.Time // [2026-11-28T00:00:00Z]
	// Tamper, when set, falsifies the stream the way a cheating station
	// would (tamper.go); the rules at central must catch it.
	Tamper *Tamper
	// FailAudits makes every calibration and standard-gas audit fail (an
	// analyser drifted out of tolerance).
	FailAudits bool
}

// Event is one record the analyser would send. Exactly one of Reading,
// Status and Audit is set, as Kind says.
type Event struct {
	Kind    plume.RecordKind
	Vehicle string // "car", "truck" or "bus" for passes: the generator's own knowledge
	Reading *plume.Reading
	Status  *plume.DeviceStatus
	Audit   *plume.Audit
}

// Generator produces a seeded, realistic stream of analyser records:
// petrol cars and diesel trucks and buses in several lanes, speeds and
// accelerations around a gantry on a slight grade, log-normal emissions
// whose tails put a few percent of vehicles over the limits, weak plumes,
// wind and rain spells, maintenance and calibration periods, periodic
// device status and calibration/standard-gas audits (mostly passing).
// It is not safe for concurrent use.
type Generator struct {
	cfg    GeneratorConfig
	rng    *rand.Rand
	clock  time.Time
	last   map[int]time.Time // last pass time per lane
	passes int
	queue  []Event

	tempC                      float64
	windy, rainy, maint, calib int // passes left in each spell
	audits                     int
	laserPower                 float64
}

// NewGenerator returns a generator for cfg.
func NewGenerator(cfg GeneratorConfig) *Generator {
	if cfg.Lanes <= 0 {
		cfg.Lanes = 2
	}
	if cfg.DieselShare <= 0 || cfg.DieselShare > 1 {
		cfg.DieselShare = 0.25
	}
	if cfg.SlopePct == 0 {
		cfg.SlopePct = 1.5
	}
	if cfg.StatusEvery <= 0 {
		cfg.StatusEvery = 50
	}
	if cfg.AuditEvery <= 0 {
		cfg.AuditEvery = 500
	}
	if cfg.MeanHeadway <= 0 {
		cfg.MeanHeadway = 2 * time.Second
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	}
	return &Generator{
		cfg:        cfg,
		rng:        rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		clock:      cfg.Start,
		last:       map[int]time.Time{},
		tempC:      18,
		laserPower: 0.97,
	}
}

// Passes returns how many passes the generator has produced.
func (g *Generator) Passes() int { return g.passes }

// Next returns the next record.
func (g *Generator) Next() Event {
	if len(g.queue) > 0 {
		ev := g.queue[0]
		g.queue = g.queue[1:]
		return ev
	}
	ev := g.tamperedPass()
	if g.passes%g.cfg.StatusEvery == 0 {
		g.queue = append(g.queue, g.status())
	}
	if g.passes%g.cfg.AuditEvery == 0 {
		g.queue = append(g.queue, g.audit())
	}
	return ev
}

// now returns the record time, truncated to the millisecond.
func (g *Generator) now() time.Time {
	if g.cfg.Now != nil {
		return g.cfg.Now().Truncate(time.Millisecond)
	}
	return g.clock
}

func (g *Generator) normal(mean, sd float64) float64 { return mean + sd*g.rng.NormFloat64() }

// logNormal returns a log-normal value with the given median; sigma is the
// standard deviation of its logarithm.
func (g *Generator) logNormal(median, sigma float64) float64 {
	return median * math.Exp(sigma*g.rng.NormFloat64())
}

func (g *Generator) chance(p float64) bool { return g.rng.Float64() < p }

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// spells advances the weather and device-state spells by one pass.
func (g *Generator) spells() {
	tick := func(n *int, start float64, min, spread int) {
		if *n > 0 {
			*n--
		} else if g.chance(start) {
			*n = min + g.rng.IntN(spread)
		}
	}
	tick(&g.windy, 0.002, 20, 40)
	tick(&g.rainy, 0.001, 30, 60)
	tick(&g.maint, 0.002, 5, 10)
	tick(&g.calib, 0.001, 2, 3)
	g.tempC = clamp(g.tempC+g.normal(0, 0.05), -5, 38)
	g.laserPower = clamp(g.laserPower+g.normal(0, 0.002), 0.85, 1)
}

func (g *Generator) deviceFlag() plume.StatusFlag {
	switch {
	case g.maint > 0:
		return plume.FlagMaintenance
	case g.calib > 0:
		return plume.FlagCalibration
	}
	return plume.FlagNormal
}

func (g *Generator) pass() Event {
	g.passes++
	if g.cfg.Now == nil {
		gap := time.Duration(g.rng.ExpFloat64() * float64(g.cfg.MeanHeadway))
		g.clock = g.clock.Add(max(gap, time.Millisecond)).Truncate(time.Millisecond)
	}
	g.spells()

	lane := 1 + g.rng.IntN(g.cfg.Lanes)
	t := g.now()
	if last, ok := g.last[lane]; ok && !t.After(last) {
		t = last.Add(time.Millisecond) // each pass gets its own millisecond per lane
	}
	g.last[lane] = t

	r := &plume.Reading{Time: t, Lane: lane, Seq: int64(g.passes), SlopePct: g.cfg.SlopePct, Flag: g.deviceFlag()}
	vehicle := "car"
	if g.chance(g.cfg.DieselShare) {
		vehicle = "truck"
		if g.chance(0.3) {
			vehicle = "bus"
		}
	}
	switch vehicle {
	case "car":
		r.Fuel = plume.FuelPetrol
		r.SpeedKmh = clamp(g.normal(50, 10), 3, 110)
		r.AccelMS2 = clamp(g.normal(0.35, 0.35), -2, 3)
		r.Gases = plume.Gases{
			CO2: clamp(g.normal(14.2, 0.4), 10, 16),
			CO:  clamp(g.logNormal(0.06, 1.1), 0, 10),
			HC:  clamp(g.logNormal(40, 0.9), 0, 5000),
			NO:  clamp(g.logNormal(150, 1.0), 0, 5000),
		}
		r.Opacity = clamp(g.logNormal(1, 0.6), 0, 100)
		r.Ringelmann = -1 // not measured for petrol cars
	default:
		r.Fuel = plume.FuelDiesel
		mean := 40.0
		if vehicle == "bus" {
			mean = 35
		}
		r.SpeedKmh = clamp(g.normal(mean, 8), 3, 100)
		r.AccelMS2 = clamp(g.normal(0.25, 0.25), -2, 2)
		r.Gases = plume.Gases{
			CO2: clamp(g.normal(11.5, 0.8), 7, 15),
			CO:  clamp(g.logNormal(0.02, 0.8), 0, 5),
			HC:  clamp(g.logNormal(20, 0.7), 0, 3000),
			NO:  clamp(g.logNormal(420, 0.75), 0, 6000),
		}
		r.Opacity = clamp(g.logNormal(5, 1.0), 0, 100)
		r.Ringelmann = clamp(math.Floor(r.Opacity/20+g.normal(0, 0.15)), 0, 5)
	}
	r.PlumeCO2 = g.logNormal(35, 0.4)
	if g.chance(0.03) {
		r.PlumeCO2 = 2 + 7*g.rng.Float64() // weak plume: too little exhaust in the beam
	}
	r.Ambient = plume.Ambient{
		TempC:       g.tempC,
		HumidityPct: clamp(g.normal(60, 8), 5, 100),
		WindMS:      clamp(g.logNormal(1.8, 0.4), 0, 40),
		PressureKPa: g.normal(101.3, 0.15),
	}
	if g.windy > 0 {
		r.Ambient.WindMS = 5.5 + 3.5*g.rng.Float64()
	}
	if g.rainy > 0 {
		r.Ambient.Rain, r.Ambient.HumidityPct = true, clamp(g.normal(95, 2), 85, 100)
	}
	if g.chance(0.0005) {
		r.Flag = plume.FlagFault
	}

	r.Gases.CO2, r.Gases.CO = round(r.Gases.CO2, 2), round(r.Gases.CO, 3)
	r.Gases.HC, r.Gases.NO = round(r.Gases.HC, 0), round(r.Gases.NO, 0)
	r.Opacity, r.PlumeCO2 = round(r.Opacity, 1), round(r.PlumeCO2, 1)
	r.SpeedKmh, r.AccelMS2 = round(r.SpeedKmh, 1), round(r.AccelMS2, 2)
	r.Ambient.TempC, r.Ambient.HumidityPct = round(r.Ambient.TempC, 1), round(r.Ambient.HumidityPct, 0)
	r.Ambient.WindMS, r.Ambient.PressureKPa = round(r.Ambient.WindMS, 1), round(r.Ambient.PressureKPa, 2)
	return Event{Kind: plume.RecordPass, Vehicle: vehicle, Reading: r}
}

func (g *Generator) status() Event {
	s := &plume.DeviceStatus{
		Time: g.now(),
		Flag: g.deviceFlag(),
		Values: map[string]float64{
			"laser_power":        round(g.laserPower, 3),
			"detector_temp_c":    round(g.normal(35, 0.5), 1),
			"passes_since_start": float64(g.passes),
		},
	}
	return Event{Kind: plume.RecordStatus, Status: s}
}

// auditGas is a reference gas with its certified value.
var auditGasRefs = []struct {
	gas, unit string
	ref       float64
}{
	{"co2", "%", 15}, {"co", "%", 4}, {"hc", "ppm", 1000}, {"no", "ppm", 1500},
}

func (g *Generator) audit() Event {
	ref := auditGasRefs[g.audits%len(auditGasRefs)]
	kind := plume.AuditStandardGas
	if g.audits%2 == 1 {
		kind = plume.AuditCalibration
	}
	g.audits++
	errFrac := g.normal(0, 0.015)
	if g.chance(0.05) || g.cfg.FailAudits {
		errFrac = (0.08 + 0.04*g.rng.Float64()) * float64(1-2*g.rng.IntN(2)) // a drifting analyser
	}
	a := &plume.Audit{
		Time: g.now(), Kind: kind, Gas: ref.gas, Unit: ref.unit,
		Reference: ref.ref, Measured: round(ref.ref*(1+errFrac), 3),
		Passed: math.Abs(errFrac) <= 0.05,
	}
	return Event{Kind: plume.RecordAudit, Audit: a}
}
