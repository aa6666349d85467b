package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Dump receives everything a store holds, for copying it into another
// store (plume-central migrate). Lines are the stored bytes of hash-chained
// entries, so that chains copy exactly. A nil func skips that kind.
type Dump struct {
	Station  func(*central.Station) error
	Evidence func(*central.StoredEvidence) error
	Record   func(station plume.StationID, raw []byte) error
	Pass     func(*central.PassRow) error // Seq set
	Case     func(*central.Case) error
	Custody  func(id plume.CaseID, seq int64, line []byte) error
	Job      func(central.Job) error
	Vehicle  func(*central.VehicleEntry) error
	// StationAudit gets the audit with the station and record ID of its
	// record.
	StationAudit func(station plume.StationID, recordID string, a *plume.Audit) error
	Day          func(*central.DayStats) error
	Officer      func(*central.Officer) error
	Session      func(*central.Session) error
	Audit        func(seq uint64, line []byte) error
	// Station operations (central.OpsStore): the latest health of each
	// station, the health history, alerts and desired configurations.
	Health        func(*central.StationHealth) error
	HealthHistory func(*central.StationHealth) error
	Alert         func(*central.Alert) error
	DesiredConfig func(*central.DesiredConfig) error
	// Counters gets the sequences and counts that are not rows: the last
	// case, pass and job sequence numbers and the packages built.
	Counters func(lastCase, lastPass, lastJob uint64, packagesBuilt int) error
}

// Dump walks the whole store in one read transaction, so the copy is
// consistent. Central must be stopped (it holds the file) or d given a
// backup made by deploy/backup-central.
func (s *Store) Dump(ctx context.Context, d Dump) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		each := func(bucket []byte, fn func(k, v []byte) error) error {
			c := tx.Bucket(bucket).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := fn(k, v); err != nil {
					return fmt.Errorf("dump %s %q: %w", bucket, k, err)
				}
			}
			return nil
		}
		decode := func(v []byte, dst any) error { return json.Unmarshal(v, dst) }
		if d.Station != nil {
			if err := each(bucketStations, func(k, v []byte) error {
				var st central.Station
				if err := decode(v, &st); err != nil {
					return err
				}
				return d.Station(&st)
			}); err != nil {
				return err
			}
		}
		if d.Evidence != nil {
			if err := each(bucketEvidence, func(k, v []byte) error {
				var ev central.StoredEvidence
				if err := decode(v, &ev); err != nil {
					return err
				}
				return d.Evidence(&ev)
			}); err != nil {
				return err
			}
		}
		if d.Record != nil {
			if err := each(bucketRecords, func(k, v []byte) error {
				station, _, _ := bytes.Cut(k, []byte{0})
				return d.Record(plume.StationID(station), bytes.Clone(v))
			}); err != nil {
				return err
			}
		}
		if d.Pass != nil {
			if err := each(bucketPasses, func(k, v []byte) error {
				var row central.PassRow
				if err := decode(v, &row); err != nil {
					return err
				}
				row.Seq = binary.BigEndian.Uint64(k)
				return d.Pass(&row)
			}); err != nil {
				return err
			}
		}
		if d.Case != nil {
			if err := each(bucketCases, func(k, v []byte) error {
				var c central.Case
				if err := decode(v, &c); err != nil {
					return err
				}
				return d.Case(&c)
			}); err != nil {
				return err
			}
		}
		if d.Custody != nil {
			if err := each(bucketCustody, func(k, v []byte) error {
				id, rest, ok := bytes.Cut(k, []byte{0})
				if !ok || len(rest) != 8 {
					return fmt.Errorf("bad custody key")
				}
				return d.Custody(plume.CaseID(id), int64(binary.BigEndian.Uint64(rest)), bytes.Clone(v))
			}); err != nil {
				return err
			}
		}
		if d.Job != nil {
			if err := each(bucketJobs, func(k, v []byte) error {
				var j central.Job
				if err := decode(v, &j); err != nil {
					return err
				}
				return d.Job(j)
			}); err != nil {
				return err
			}
		}
		if d.Vehicle != nil {
			if err := each(bucketVehicles, func(k, v []byte) error {
				var e central.VehicleEntry
				if err := decode(v, &e); err != nil {
					return err
				}
				return d.Vehicle(&e)
			}); err != nil {
				return err
			}
		}
		if d.StationAudit != nil {
			if err := each(bucketStationAudit, func(k, v []byte) error {
				var a plume.Audit
				if err := decode(v, &a); err != nil {
					return err
				}
				station, rest, ok := bytes.Cut(k, []byte{0})
				if !ok || len(rest) < 9 {
					return fmt.Errorf("bad station audit key")
				}
				return d.StationAudit(plume.StationID(station), string(rest[9:]), &a)
			}); err != nil {
				return err
			}
		}
		if d.Day != nil {
			if err := each(bucketDaily, func(k, v []byte) error {
				var ds central.DayStats
				if err := decode(v, &ds); err != nil {
					return err
				}
				return d.Day(&ds)
			}); err != nil {
				return err
			}
		}
		if d.Officer != nil {
			if err := each(bucketOfficers, func(k, v []byte) error {
				var o central.Officer
				if err := decode(v, &o); err != nil {
					return err
				}
				return d.Officer(&o)
			}); err != nil {
				return err
			}
		}
		if d.Session != nil {
			if err := each(bucketSessions, func(k, v []byte) error {
				var se central.Session
				if err := decode(v, &se); err != nil {
					return err
				}
				return d.Session(&se)
			}); err != nil {
				return err
			}
		}
		if d.Audit != nil {
			if err := each(bucketAudit, func(k, v []byte) error {
				return d.Audit(binary.BigEndian.Uint64(k), bytes.Clone(v))
			}); err != nil {
				return err
			}
		}
		// Operations buckets exist once something was written to them.
		for _, o := range []struct {
			bucket []byte
			fn     func(v []byte) error
		}{
			{bucketHealth, opsDump(d.Health)},
			{bucketHealthHist, opsDump(d.HealthHistory)},
			{bucketAlerts, opsDump(d.Alert)},
			{bucketDesired, opsDump(d.DesiredConfig)},
		} {
			if o.fn == nil || tx.Bucket(o.bucket) == nil {
				continue
			}
			if err := each(o.bucket, func(_, v []byte) error { return o.fn(v) }); err != nil {
				return err
			}
		}
		if d.Counters != nil {
			packages := 0
			if v := tx.Bucket(bucketMeta).Get(keyPackages); len(v) == 8 {
				packages = int(binary.BigEndian.Uint64(v))
			}
			return d.Counters(tx.Bucket(bucketCases).Sequence(), tx.Bucket(bucketPasses).Sequence(), tx.Bucket(bucketJobs).Sequence(), packages)
		}
		return nil
	})
}

// opsDump decodes a stored T for fn; nil when fn is nil.
func opsDump[T any](fn func(*T) error) func(v []byte) error {
	if fn == nil {
		return nil
	}
	return func(v []byte) error {
		x := new(T)
		if err := json.Unmarshal(v, x); err != nil {
			return err
		}
		return fn(x)
	}
}
