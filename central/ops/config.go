package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// MaxConfigSize bounds a station's desired configuration document.
const MaxConfigSize = 256 << 10

// DesiredConfig returns a station's desired configuration (ErrNotFound
// when central holds none).
func (s *Service) DesiredConfig(ctx context.Context, station plume.StationID) (*central.DesiredConfig, error) {
	dc, err := s.cfg.Ops.DesiredConfig(ctx, station)
	if errors.Is(err, central.ErrNotFound) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no desired configuration for station %s", station)
	}
	return dc, err
}

// SetDesiredConfig stores a new desired configuration for a station (the
// edge validates it when it fetches it: central does not read edge
// configuration). The change is written to the audit log.
func (s *Service) SetDesiredConfig(ctx context.Context, actor string, station plume.StationID, body []byte) (*central.DesiredConfig, error) {
	if _, err := s.cfg.Store.Station(ctx, station); errors.Is(err, central.ErrNotFound) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no station %s", station)
	} else if err != nil {
		return nil, err
	}
	if len(body) == 0 || len(body) > MaxConfigSize {
		return nil, plume.Errorf(plume.EINVALID, "a configuration must be 1 byte to %d KiB", MaxConfigSize>>10)
	}
	now := s.cfg.Now().UTC()
	dc := &central.DesiredConfig{Station: station, Body: body, SetBy: actor, SetAt: now}
	if old, err := s.cfg.Ops.DesiredConfig(ctx, station); err == nil {
		dc.Previous = old.Body
	} else if !errors.Is(err, central.ErrNotFound) {
		return nil, err
	}
	if err := s.cfg.Ops.PutDesiredConfig(ctx, dc); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.AppendAudit(ctx, central.AuditEvent{Time: now, Actor: actor, Action: "station.config", Target: string(station), Station: station,
		After: fmt.Sprintf("version %d sha256 %s", dc.Version, dc.Hash)}); err != nil {
		return nil, fmt.Errorf("audit config of %s: %w", station, err)
	}
	s.logger.Info("desired configuration set", "station", station, "version", dc.Version, "hash", dc.Hash, "by", actor, "at", now.Format(time.RFC3339))
	return dc, nil
}

// SetLocation places an enrolled station (WGS 84 degrees) for an
// administrator: the cloned-plate check needs both stations' coordinates to
// judge a speed. The change is written to the audit log.
func (s *Service) SetLocation(ctx context.Context, o *central.Officer, ip string, station plume.StationID, lat, lon float64) (*central.Station, error) {
	if !o.Can(central.PermAdmin) {
		return nil, plume.Errorf(plume.EFORBIDDEN, "your role (%s) may not place stations", o.Role)
	}
	if err := central.ValidateLocation(lat, lon); err != nil {
		return nil, err
	}
	before, err := s.cfg.Store.Station(ctx, station)
	if errors.Is(err, central.ErrNotFound) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no station %s", station)
	} else if err != nil {
		return nil, err
	}
	if err := s.cfg.Ops.SetStationLocation(ctx, station, lat, lon); err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	if _, err := s.cfg.Store.AppendAudit(ctx, central.AuditEvent{Time: now, Actor: o.Username, Role: o.Role, IP: ip, Action: "station.location",
		Target: string(station), Station: station,
		Before: fmt.Sprintf("%g, %g", before.Latitude, before.Longitude), After: fmt.Sprintf("%g, %g", lat, lon)}); err != nil {
		return nil, fmt.Errorf("audit location of %s: %w", station, err)
	}
	before.Latitude, before.Longitude = lat, lon
	return before, nil
}
