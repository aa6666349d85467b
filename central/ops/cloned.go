package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Sighting is one pass of a plate, as a cloned-plate alert shows it.
type Sighting struct {
	Station     plume.StationID   `json:"station"`
	StationName string            `json:"station_name,omitempty"`
	Latitude    float64           `json:"latitude,omitempty"`
	Longitude   float64           `json:"longitude,omitempty"`
	Pass        plume.PassID      `json:"pass"`
	Time        time.Time         `json:"time"`
	Plate       string            `json:"plate"`
	Colour      plume.PlateColour `json:"colour,omitempty"`
	Fuel        plume.Fuel        `json:"fuel,omitempty"`
	Confidence  float64           `json:"confidence"`
	Lane        int               `json:"lane"`
}

// ClonedDetail is the evidence of a cloned-plate alert: both sightings
// and why they cannot be one vehicle.
type ClonedDetail struct {
	A           Sighting `json:"a"` // the earlier sighting
	B           Sighting `json:"b"`
	Reason      string   `json:"reason"`
	DistanceKm  float64  `json:"distance_km,omitempty"`
	SpeedKmh    float64  `json:"speed_kmh,omitempty"` // the speed the two sightings would need
	MaxSpeedKmh float64  `json:"max_speed_kmh,omitempty"`
}

// minPlateConfidence is the plate read confidence below which a sighting
// is not used: a misread plate is not a cloned one.
const minPlateConfidence = 0.8

// clonedWindow is how long sightings are kept per plate.
const clonedWindow = 24 * time.Hour

// clonedPlates finds one plate at two stations too far apart for the
// time between, or on two different vehicles (plate colour or fuel).
type clonedPlates struct {
	s  *Service
	mu sync.Mutex
	by map[string][]Sighting
	n  int
}

func newClonedPlates(s *Service) *clonedPlates {
	return &clonedPlates{s: s, by: map[string][]Sighting{}}
}

// haversineKm is the great-circle distance.
func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}

func (c *clonedPlates) add(ctx context.Context, station plume.StationID, recs []plume.Record) {
	var st *central.Station
	for i := range recs {
		p := recs[i].Pass
		if recs[i].Kind != plume.RecordPass || p == nil || p.Plate == nil || p.Plate.Text == "" || p.Plate.Confidence < minPlateConfidence {
			continue
		}
		if st == nil {
			var err error
			if st, err = c.s.cfg.Store.Station(ctx, station); err != nil {
				c.s.logger.Error("cloned plates: station", "station", station, "err", err)
				return
			}
		}
		sg := Sighting{Station: station, StationName: st.Name, Latitude: st.Latitude, Longitude: st.Longitude, Pass: p.ID,
			Time: p.Reading.Time, Plate: p.Plate.Text, Colour: p.Plate.Colour, Fuel: p.Reading.Fuel, Confidence: p.Plate.Confidence, Lane: p.Reading.Lane}
		c.check(ctx, sg, st)
	}
}

func (c *clonedPlates) check(ctx context.Context, sg Sighting, st *central.Station) {
	c.mu.Lock()
	prev := c.by[sg.Plate]
	keep := prev[:0]
	for _, o := range prev {
		if sg.Time.Sub(o.Time).Abs() <= clonedWindow {
			keep = append(keep, o)
		}
	}
	var found []ClonedDetail
	for _, o := range keep {
		if o.Pass == sg.Pass {
			c.mu.Unlock()
			return
		}
		if d, ok := c.judge(o, sg, st); ok {
			found = append(found, d)
		}
	}
	c.by[sg.Plate] = append(keep, sg)
	if c.n++; c.n%10000 == 0 {
		for k, v := range c.by {
			if len(v) > 0 && sg.Time.Sub(v[len(v)-1].Time) > clonedWindow {
				delete(c.by, k)
			}
		}
	}
	c.mu.Unlock()
	// A plate seen many times at one station and then elsewhere conflicts
	// with every earlier sighting; one alert, against the latest of them
	// (the least time to cover the distance), tells the officer as much
	// without flooding the list.
	if len(found) > 1 {
		found = found[len(found)-1:]
	}
	for _, d := range found {
		detail, _ := json.Marshal(d)
		from, to := d.A.Time, d.B.Time
		c.s.raise(ctx, &central.Alert{
			ID: fmt.Sprintf("cloned/%s/%s/%s", sg.Plate, d.A.Pass, d.B.Pass), Source: central.AlertCloned,
			Station: d.B.Station, Stations: []plume.StationID{d.A.Station, d.B.Station}, Rule: "cloned-plate",
			Severity: "warning", Title: "疑似套牌 Suspected cloned plate " + sg.Plate, Explanation: d.Reason,
			From: from, To: to, Raised: to, Records: []string{string(d.A.Pass), string(d.B.Pass)}, Detail: detail,
		})
	}
}

// judge reports whether sightings a (earlier) and b cannot be one vehicle.
func (c *clonedPlates) judge(a, b Sighting, _ *central.Station) (ClonedDetail, bool) {
	if b.Time.Before(a.Time) {
		a, b = b, a
	}
	d := ClonedDetail{A: a, B: b}
	if a.Colour != "" && b.Colour != "" && a.Colour != b.Colour {
		d.Reason = fmt.Sprintf("plate %s was read as %s at %s and as %s at %s: two different vehicles carry it", a.Plate, a.Colour, a.Station, b.Colour, b.Station)
		return d, true
	}
	if a.Fuel != "" && b.Fuel != "" && a.Fuel != b.Fuel {
		d.Reason = fmt.Sprintf("plate %s was on a %s vehicle at %s and a %s vehicle at %s: two different vehicles carry it", a.Plate, a.Fuel, a.Station, b.Fuel, b.Station)
		return d, true
	}
	if a.Station == b.Station || (a.Latitude == 0 && a.Longitude == 0) || (b.Latitude == 0 && b.Longitude == 0) {
		return d, false
	}
	d.DistanceKm = haversineKm(a.Latitude, a.Longitude, b.Latitude, b.Longitude)
	dt := b.Time.Sub(a.Time).Hours()
	d.MaxSpeedKmh = c.s.cfg.MaxSpeedKmh
	if d.DistanceKm < 1 {
		return d, false
	}
	if dt <= 0 {
		d.SpeedKmh = math.Inf(1)
	} else {
		d.SpeedKmh = d.DistanceKm / dt
	}
	if d.SpeedKmh <= d.MaxSpeedKmh {
		return d, false
	}
	if math.IsInf(d.SpeedKmh, 1) {
		d.SpeedKmh = 0 // JSON cannot hold +Inf; the reason says it
		d.Reason = fmt.Sprintf("plate %s was at %s and %s (%.1f km apart) at the same time", a.Plate, a.Station, b.Station, d.DistanceKm)
	} else {
		d.Reason = fmt.Sprintf("plate %s was at %s and %.1f km away at %s %s later: %.0f km/h, above the %.0f km/h a vehicle can keep", a.Plate, a.Station, d.DistanceKm, b.Station, b.Time.Sub(a.Time).Round(time.Second), d.SpeedKmh, d.MaxSpeedKmh)
	}
	return d, true
}

// ClonedEvidence decodes a cloned-plate alert's two sightings.
func ClonedEvidence(a *central.Alert) (*ClonedDetail, error) {
	if a.Source != central.AlertCloned {
		return nil, plume.Errorf(plume.EINVALID, "alert %s is not a cloned-plate alert", a.ID)
	}
	var d ClonedDetail
	if err := json.Unmarshal(a.Detail, &d); err != nil {
		return nil, fmt.Errorf("decode cloned-plate alert %s: %w", a.ID, err)
	}
	return &d, nil
}
