package sqlstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

var _ central.OpsStore = (*Store)(nil)

// PutHealth implements central.OpsStore.
func (s *Store) PutHealth(ctx context.Context, h *central.StationHealth) error {
	doc, err := marshal(h)
	if err != nil {
		return fmt.Errorf("put health: %w", err)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		st := clean(string(h.Station))
		if _, err := tx.Exec(ctx, `INSERT INTO ops_health (station, doc) VALUES ($1, $2)
			ON CONFLICT (station) DO UPDATE SET doc = excluded.doc`, st, doc); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO ops_health_history (station, received_ns, doc) VALUES ($1, $2, $3)
			ON CONFLICT (station, received_ns) DO UPDATE SET doc = excluded.doc`, st, h.ReceivedAt.UnixNano(), doc)
		return err
	})
	if err != nil {
		return fmt.Errorf("put health: %w", err)
	}
	return nil
}

// Health implements central.OpsStore.
func (s *Store) Health(ctx context.Context) ([]*central.StationHealth, error) {
	out, err := queryDocs[central.StationHealth](ctx, s.pool, "SELECT doc FROM ops_health ORDER BY station")
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	return out, nil
}

// HealthHistory implements central.OpsStore.
func (s *Store) HealthHistory(ctx context.Context, station plume.StationID, from, to time.Time, limit int) ([]*central.StationHealth, error) {
	var q query
	if !q.eq("station", string(station)) || station == "" {
		return nil, nil
	}
	if !from.IsZero() {
		q.where("received_ns >= ?", from.UnixNano())
	}
	if !to.IsZero() {
		q.where("received_ns < ?", to.UnixNano())
	}
	q.args = append(q.args, central.PageLimit(limit))
	out, err := queryDocs[central.StationHealth](ctx, s.pool, fmt.Sprintf("SELECT doc FROM ops_health_history%s ORDER BY received_ns DESC LIMIT $%d", q.sql(), len(q.args)), q.args...)
	if err != nil {
		return nil, fmt.Errorf("health history: %w", err)
	}
	return out, nil
}

// SetHealthState implements central.OpsStore.
func (s *Store) SetHealthState(ctx context.Context, station plume.StationID, state central.HealthState, reasons []string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if !usable(string(station)) {
			return central.ErrNotFound
		}
		var raw []byte
		err := tx.QueryRow(ctx, "SELECT doc FROM ops_health WHERE station = $1 FOR UPDATE", string(station)).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return central.ErrNotFound
		} else if err != nil {
			return err
		}
		var h central.StationHealth
		if err := json.Unmarshal(raw, &h); err != nil {
			return fmt.Errorf("decode health: %w", err)
		}
		h.State, h.Reasons = state, reasons
		doc, err := marshal(&h)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE ops_health SET doc = $2 WHERE station = $1", string(station), doc)
		return err
	})
	if err != nil {
		return fmt.Errorf("set health state of %s: %w", station, err)
	}
	return nil
}

// PutAlert implements central.OpsStore.
func (s *Store) PutAlert(ctx context.Context, a *central.Alert) (bool, error) {
	if a.ID == "" || len(a.ID) > 256 {
		return false, plume.Errorf(plume.EINVALID, "alert ID must be 1–256 bytes")
	}
	created := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		created = false
		v := *a
		if v.State == "" {
			v.State = central.AlertOpen
		}
		doc, err := marshal(&v)
		if err != nil {
			return err
		}
		id := clean(a.ID)
		tag, err := tx.Exec(ctx, "INSERT INTO ops_alerts (id, doc) VALUES ($1, $2) ON CONFLICT DO NOTHING", id, doc)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			created = true
			return nil
		}
		var raw []byte
		if err := tx.QueryRow(ctx, "SELECT doc FROM ops_alerts WHERE id = $1 FOR UPDATE", id).Scan(&raw); err != nil {
			return err
		}
		var old central.Alert
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("decode alert: %w", err)
		}
		v = *a
		v.State, v.History, v.UpdatedAt = old.State, old.History, old.UpdatedAt
		if doc, err = marshal(&v); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE ops_alerts SET doc = $2 WHERE id = $1", id, doc)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("put alert: %w", err)
	}
	return created, nil
}

// Alert implements central.OpsStore.
func (s *Store) Alert(ctx context.Context, id string) (*central.Alert, error) {
	var a central.Alert
	if err := s.getDoc(ctx, &a, "SELECT doc FROM ops_alerts WHERE id = $1", id); err != nil {
		return nil, fmt.Errorf("alert %q: %w", id, err)
	}
	return &a, nil
}

// Alerts implements central.OpsStore. Alerts are findings, not records, so
// they are few: the filter runs on all of them, as in the bbolt store.
func (s *Store) Alerts(ctx context.Context, f central.AlertFilter) ([]*central.Alert, error) {
	all, err := queryDocs[central.Alert](ctx, s.pool, "SELECT doc FROM ops_alerts")
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	out := all[:0]
	for _, a := range all {
		if f.Match(a) {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b *central.Alert) int { return cmp.Or(b.Raised.Compare(a.Raised), cmp.Compare(a.ID, b.ID)) })
	if limit := central.PageLimit(f.Limit); len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// UpdateAlert implements central.OpsStore.
func (s *Store) UpdateAlert(ctx context.Context, id string, fn func(a *central.Alert) error) (*central.Alert, error) {
	var a central.Alert
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if !usable(id) {
			return central.ErrNotFound
		}
		var raw []byte
		err := tx.QueryRow(ctx, "SELECT doc FROM ops_alerts WHERE id = $1 FOR UPDATE", id).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return central.ErrNotFound
		} else if err != nil {
			return err
		}
		a = central.Alert{}
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode alert: %w", err)
		}
		if err := fn(&a); err != nil {
			return err
		}
		doc, err := marshal(&a)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE ops_alerts SET doc = $2 WHERE id = $1", id, doc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update alert %q: %w", id, err)
	}
	return &a, nil
}

// StationRecords implements central.OpsStore: a scan of the station's
// records, as in the bbolt store (it runs at start-up only).
func (s *Store) StationRecords(ctx context.Context, station plume.StationID, from, to time.Time) ([]plume.Record, error) {
	if !usable(string(station)) {
		return nil, nil
	}
	rs, err := queryDocs[plume.Record](ctx, s.pool, "SELECT doc FROM records WHERE station = $1", string(station))
	if err != nil {
		return nil, fmt.Errorf("station records: %w", err)
	}
	var out []plume.Record
	for _, r := range rs {
		if r.Time.Before(from) || (!to.IsZero() && !r.Time.Before(to)) {
			continue
		}
		out = append(out, *r)
	}
	return out, nil
}

// PutDesiredConfig implements central.OpsStore.
func (s *Store) PutDesiredConfig(ctx context.Context, c *central.DesiredConfig) error {
	sum := sha256.Sum256(c.Body)
	in := *c
	err := s.tx(ctx, func(tx pgx.Tx) error {
		*c = in
		st := clean(string(c.Station))
		if _, err := tx.Exec(ctx, "INSERT INTO ops_desired_config (station, doc) VALUES ($1, 'null') ON CONFLICT DO NOTHING", st); err != nil {
			return err
		}
		var raw []byte
		if err := tx.QueryRow(ctx, "SELECT doc FROM ops_desired_config WHERE station = $1 FOR UPDATE", st).Scan(&raw); err != nil {
			return err
		}
		var old *central.DesiredConfig
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("decode desired config: %w", err)
		}
		c.Version = 1
		if old != nil {
			c.Version = old.Version + 1
		}
		c.Hash = hex.EncodeToString(sum[:])
		doc, err := marshal(c)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE ops_desired_config SET doc = $2 WHERE station = $1", st, doc)
		return err
	})
	if err != nil {
		return fmt.Errorf("put desired config: %w", err)
	}
	return nil
}

// DesiredConfig implements central.OpsStore.
func (s *Store) DesiredConfig(ctx context.Context, station plume.StationID) (*central.DesiredConfig, error) {
	var c *central.DesiredConfig
	err := s.getDoc(ctx, &c, "SELECT doc FROM ops_desired_config WHERE station = $1", string(station))
	if err == nil && c == nil {
		err = central.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("desired config of %s: %w", station, err)
	}
	return c, nil
}

// SetStationLocation implements central.OpsStore.
func (s *Store) SetStationLocation(ctx context.Context, id plume.StationID, lat, lon float64) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if !usable(string(id)) {
			return fmt.Errorf("station %s: %w", id, central.ErrNotFound)
		}
		var raw []byte
		err := tx.QueryRow(ctx, "SELECT doc FROM stations WHERE id = $1 FOR UPDATE", string(id)).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("station %s: %w", id, central.ErrNotFound)
		} else if err != nil {
			return err
		}
		var st central.Station
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("decode station: %w", err)
		}
		st.Latitude, st.Longitude = lat, lon
		doc, err := marshal(&st)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE stations SET doc = $2 WHERE id = $1", string(id), doc)
		return err
	})
	if err != nil {
		return fmt.Errorf("set station location: %w", err)
	}
	return nil
}
