package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Station operations live in buckets of their own, created on first write,
// so a database of schema 2 needs no migration.
var (
	bucketHealth     = []byte("ops_health")         // station → latest StationHealth
	bucketHealthHist = []byte("ops_health_history") // station \x00 received (8-byte ns) → StationHealth
	bucketAlerts     = []byte("ops_alerts")         // alert ID → Alert
	bucketDesired    = []byte("ops_desired_config") // station → DesiredConfig
)

var _ central.OpsStore = (*Store)(nil)

func opsBucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	if tx.Writable() {
		return tx.CreateBucketIfNotExists(name)
	}
	return tx.Bucket(name), nil
}

// PutHealth implements central.OpsStore.
func (s *Store) PutHealth(ctx context.Context, h *central.StationHealth) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		latest, err := opsBucket(tx, bucketHealth)
		if err != nil {
			return err
		}
		hist, err := opsBucket(tx, bucketHealthHist)
		if err != nil {
			return err
		}
		if err := putJSON(latest, []byte(h.Station), h); err != nil {
			return err
		}
		k := append([]byte(string(h.Station)+"\x00"), itob(uint64(h.ReceivedAt.UnixNano()))...)
		return putJSON(hist, k, h)
	})
	if err != nil {
		return fmt.Errorf("put health: %w", err)
	}
	return nil
}

// Health implements central.OpsStore.
func (s *Store) Health(ctx context.Context) ([]*central.StationHealth, error) {
	var out []*central.StationHealth
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHealth)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var h central.StationHealth
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("decode health %s: %w", k, err)
			}
			out = append(out, &h)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	return out, nil
}

// HealthHistory implements central.OpsStore.
func (s *Store) HealthHistory(ctx context.Context, station plume.StationID, from, to time.Time, limit int) ([]*central.StationHealth, error) {
	limit = central.PageLimit(limit)
	prefix := []byte(string(station) + "\x00")
	var out []*central.StationHealth
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHealthHist)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		end := append(bytes.Clone(prefix), itob(uint64(to.UnixNano()))...)
		if to.IsZero() {
			end = append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 8)...)
		}
		var v []byte
		k, _ := c.Seek(end)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Prev() {
			var h central.StationHealth
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("decode health history: %w", err)
			}
			if h.ReceivedAt.Before(from) {
				break
			}
			out = append(out, &h)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("health history: %w", err)
	}
	return out, nil
}

// SetHealthState implements central.OpsStore.
func (s *Store) SetHealthState(ctx context.Context, station plume.StationID, state central.HealthState, reasons []string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := opsBucket(tx, bucketHealth)
		if err != nil {
			return err
		}
		var h central.StationHealth
		ok, err := getJSON(b, []byte(station), &h)
		if err != nil {
			return err
		}
		if !ok {
			return central.ErrNotFound
		}
		h.State, h.Reasons = state, reasons
		return putJSON(b, []byte(station), &h)
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
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := opsBucket(tx, bucketAlerts)
		if err != nil {
			return err
		}
		var old central.Alert
		ok, err := getJSON(b, []byte(a.ID), &old)
		if err != nil {
			return err
		}
		v := *a
		if ok {
			v.State, v.History, v.UpdatedAt = old.State, old.History, old.UpdatedAt
		} else {
			created = true
			if v.State == "" {
				v.State = central.AlertOpen
			}
		}
		return putJSON(b, []byte(a.ID), &v)
	})
	if err != nil {
		return false, fmt.Errorf("put alert: %w", err)
	}
	return created, nil
}

// Alert implements central.OpsStore.
func (s *Store) Alert(ctx context.Context, id string) (*central.Alert, error) {
	var a central.Alert
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		if b == nil {
			return central.ErrNotFound
		}
		ok, err := getJSON(b, []byte(id), &a)
		if err == nil && !ok {
			err = central.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("alert %q: %w", id, err)
	}
	return &a, nil
}

// Alerts implements central.OpsStore. Alerts are few (they are findings,
// not records), so the list is a scan.
func (s *Store) Alerts(ctx context.Context, f central.AlertFilter) ([]*central.Alert, error) {
	limit := central.PageLimit(f.Limit)
	var out []*central.Alert
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var a central.Alert
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("decode alert %s: %w", k, err)
			}
			if f.Match(&a) {
				out = append(out, &a)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	slices.SortStableFunc(out, func(a, b *central.Alert) int { return cmp.Or(b.Raised.Compare(a.Raised), cmp.Compare(a.ID, b.ID)) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// UpdateAlert implements central.OpsStore.
func (s *Store) UpdateAlert(ctx context.Context, id string, fn func(a *central.Alert) error) (*central.Alert, error) {
	var a central.Alert
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := opsBucket(tx, bucketAlerts)
		if err != nil {
			return err
		}
		ok, err := getJSON(b, []byte(id), &a)
		if err != nil {
			return err
		}
		if !ok {
			return central.ErrNotFound
		}
		if err := fn(&a); err != nil {
			return err
		}
		return putJSON(b, []byte(id), &a)
	})
	if err != nil {
		return nil, fmt.Errorf("update alert %q: %w", id, err)
	}
	return &a, nil
}

// StationRecords implements central.OpsStore: a scan of the station's
// records (keyed by station and record ID, not by time).
func (s *Store) StationRecords(ctx context.Context, station plume.StationID, from, to time.Time) ([]plume.Record, error) {
	prefix := []byte(string(station) + "\x00")
	var out []plume.Record
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		n := 0
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			var r plume.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode record %q: %w", k, err)
			}
			if r.Time.Before(from) || (!to.IsZero() && !r.Time.Before(to)) {
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("station records: %w", err)
	}
	return out, nil
}

// PutDesiredConfig implements central.OpsStore.
func (s *Store) PutDesiredConfig(ctx context.Context, c *central.DesiredConfig) error {
	sum := sha256.Sum256(c.Body)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := opsBucket(tx, bucketDesired)
		if err != nil {
			return err
		}
		var old central.DesiredConfig
		ok, err := getJSON(b, []byte(c.Station), &old)
		if err != nil {
			return err
		}
		c.Version = 1
		if ok {
			c.Version = old.Version + 1
		}
		c.Hash = hex.EncodeToString(sum[:])
		return putJSON(b, []byte(c.Station), c)
	})
	if err != nil {
		return fmt.Errorf("put desired config: %w", err)
	}
	return nil
}

// DesiredConfig implements central.OpsStore.
func (s *Store) DesiredConfig(ctx context.Context, station plume.StationID) (*central.DesiredConfig, error) {
	var c central.DesiredConfig
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDesired)
		if b == nil {
			return central.ErrNotFound
		}
		ok, err := getJSON(b, []byte(station), &c)
		if err == nil && !ok {
			err = central.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("desired config of %s: %w", station, err)
	}
	return &c, nil
}

// SetStationLocation implements central.OpsStore.
func (s *Store) SetStationLocation(ctx context.Context, id plume.StationID, lat, lon float64) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStations)
		var st central.Station
		ok, err := getJSON(b, []byte(id), &st)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("station %s: %w", id, central.ErrNotFound)
		}
		st.Latitude, st.Longitude = lat, lon
		return putJSON(b, []byte(id), &st)
	})
	if err != nil {
		return fmt.Errorf("set station location: %w", err)
	}
	return nil
}
