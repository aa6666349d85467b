package sim

// Scheduled passes: the simulator driven by a camera scene's ground truth,
// so the analyser's passes line up with the vehicles in a clip (the demo
// and the camera end-to-end test).

import (
	"time"

	"github.com/plume-emissions/plume"
)

// Scheduled is one pass the Player sends at a fixed time, lane and fuel.
// Its measurement is valid (normal device state, good plume, mild
// weather, speed and acceleration inside every profile's window); Exceed
// makes it exceed its fuel's gas limits (diesel NO, petrol CO).
type Scheduled struct {
	At     time.Time
	Lane   int
	Fuel   plume.Fuel
	Exceed bool
}

// apply rewrites a generated pass to follow s.
func (s Scheduled) apply(ev Event) Event {
	r := *ev.Reading
	r.Time, r.Lane, r.Fuel = s.At, s.Lane, s.Fuel
	r.Flag = plume.FlagNormal
	r.SpeedKmh, r.AccelMS2, r.SlopePct = 45, 0.3, 0
	r.PlumeCO2 = 35
	r.Ambient = plume.Ambient{TempC: 18, HumidityPct: 55, WindMS: 1.2, PressureKPa: 101.3}
	r.Gases = plume.Gases{CO2: 13.5, CO: 0.05, HC: 40, NO: 300}
	r.Opacity, r.Ringelmann = 2, 0
	ev.Vehicle = "car"
	if s.Fuel == plume.FuelDiesel {
		ev.Vehicle = "truck"
		r.Gases = plume.Gases{CO2: 11.5, CO: 0.02, HC: 20, NO: 600}
		r.Opacity = 8
	}
	if s.Exceed {
		if s.Fuel == plume.FuelDiesel {
			r.Gases.NO = 2400
		} else {
			r.Gases.CO = 2.5
		}
	}
	ev.Reading = &r
	return ev
}
