package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// ErrNotEmpty is returned by NewImport when the database already holds
// central data.
var ErrNotEmpty = errors.New("the database already holds central data; import only into an empty one")

// importBatch is how many rows an Import buffers per table before it
// copies them.
const importBatch = 5000

// Import bulk-loads another store's contents into an empty database with
// COPY, keeping IDs, sequence numbers, counters and hash-chained lines
// exactly as they were (plume-central migrate, and seeding benchmarks).
// Rows go in as they come; Finish copies the rest and sets the sequences
// and counters. An Import is not safe for concurrent use, and a failed one
// leaves a partly filled database: drop it and start again.
type Import struct {
	s      *Store
	tables map[string]*copyTable
	order  []string
	counts map[string]int
	seqs   struct{ cases, passes, jobs uint64 }
}

type copyTable struct {
	cols []string
	rows [][]any
}

// NewImport starts an import into s, which must be empty.
func (s *Store) NewImport(ctx context.Context) (*Import, error) {
	var used bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stations) OR EXISTS (SELECT 1 FROM cases)
		OR EXISTS (SELECT 1 FROM records) OR EXISTS (SELECT 1 FROM officers) OR EXISTS (SELECT 1 FROM audit_log)
		OR EXISTS (SELECT 1 FROM jobs) OR EXISTS (SELECT 1 FROM evidence)`).Scan(&used)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if used {
		return nil, fmt.Errorf("import: %w", ErrNotEmpty)
	}
	imp := &Import{s: s, tables: map[string]*copyTable{}, counts: map[string]int{}}
	for _, t := range []struct {
		name string
		cols []string
	}{
		{"stations", []string{"id", "doc"}},
		{"evidence", []string{"station", "id", "case_id", "doc"}},
		{"records", []string{"station", "id", "doc"}},
		{"passes", []string{"seq", "station", "outcome", "doc"}},
		{"cases", []string{"id", "station", "status", "kind", "plate", "grade", "pollutants", "captured_ns", "package_sha", "doc"}},
		{"custody", []string{"case_id", "seq", "line"}},
		{"jobs", []string{"id", "kind", "case_id", "attempts", "created_ns", "not_before_ns", "lease_ns", "last_error"}},
		{"vehicles", []string{"plate", "time_ns", "pass_id", "case_id", "doc"}},
		{"station_audits", []string{"station", "time_ns", "record_id", "doc"}},
		{"daily", []string{"day", "station", "doc"}},
		{"officers", []string{"username", "doc"}},
		{"sessions", []string{"hash", "expires_ns", "doc"}},
		{"audit_log", []string{"seq", "time_ns", "actor", "action", "target", "line"}},
		{"ops_health", []string{"station", "doc"}},
		{"ops_health_history", []string{"station", "received_ns", "doc"}},
		{"ops_alerts", []string{"id", "doc"}},
		{"ops_desired_config", []string{"station", "doc"}},
	} {
		imp.tables[t.name] = &copyTable{cols: t.cols}
		imp.order = append(imp.order, t.name)
	}
	return imp, nil
}

func (imp *Import) add(ctx context.Context, table string, row ...any) error {
	t := imp.tables[table]
	t.rows = append(t.rows, row)
	imp.counts[table]++
	if len(t.rows) >= importBatch {
		return imp.flush(ctx, table)
	}
	return nil
}

func (imp *Import) flush(ctx context.Context, table string) error {
	t := imp.tables[table]
	if len(t.rows) == 0 {
		return nil
	}
	if _, err := imp.s.pool.CopyFrom(ctx, pgx.Identifier{table}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
		return fmt.Errorf("import %s: %w", table, err)
	}
	t.rows = t.rows[:0]
	return nil
}

func (imp *Import) doc(ctx context.Context, table string, v any, row ...any) error {
	b, err := marshal(v)
	if err != nil {
		return fmt.Errorf("import %s: %w", table, err)
	}
	return imp.add(ctx, table, append(row, b)...)
}

// Station adds a station.
func (imp *Import) Station(ctx context.Context, st *central.Station) error {
	return imp.doc(ctx, "stations", st, clean(string(st.ID)))
}

// Evidence adds an evidence item (its vehicle-file entry comes with
// Vehicle).
func (imp *Import) Evidence(ctx context.Context, ev *central.StoredEvidence) error {
	return imp.doc(ctx, "evidence", ev, clean(string(ev.Station)), clean(string(ev.ID)), string(ev.CaseID))
}

// Record adds a record as its stored JSON (its pass row, vehicle entry and
// station audit come with Pass, Vehicle and StationAudit).
func (imp *Import) Record(ctx context.Context, station plume.StationID, raw []byte) error {
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("import record: %w", err)
	}
	return imp.add(ctx, "records", clean(string(station)), clean(r.ID), raw)
}

// Pass adds a pass row under its Seq.
func (imp *Import) Pass(ctx context.Context, p *central.PassRow) error {
	imp.seqs.passes = max(imp.seqs.passes, p.Seq)
	return imp.doc(ctx, "passes", p, int64(p.Seq), clean(string(p.Station)), clean(string(p.Outcome)))
}

// Case adds a case under its ID.
func (imp *Import) Case(ctx context.Context, c *central.Case) error {
	pol := make([]string, len(c.Pollutants))
	for i, p := range c.Pollutants {
		pol[i] = clean(string(p))
	}
	return imp.doc(ctx, "cases", c, string(c.ID), clean(string(c.Station)), clean(string(c.Status)), clean(string(c.Kind)),
		clean(c.Plate), c.SmokeGrade, pol, c.CapturedAt.UnixNano(), c.PackageSHA256)
}

// Custody adds a custody line as stored.
func (imp *Import) Custody(ctx context.Context, id plume.CaseID, seq int64, line []byte) error {
	return imp.add(ctx, "custody", string(id), seq, line)
}

// Job adds a queued job under its ID (a lease it held is kept: it runs out
// as it would have).
func (imp *Import) Job(ctx context.Context, j central.Job) error {
	imp.seqs.jobs = max(imp.seqs.jobs, j.ID)
	return imp.add(ctx, "jobs", int64(j.ID), clean(string(j.Kind)), clean(string(j.CaseID)), j.Attempts,
		ns(j.CreatedAt), ns(j.NotBefore), ns(j.LeaseUntil), clean(j.LastError))
}

// Vehicle adds a vehicle-file entry.
func (imp *Import) Vehicle(ctx context.Context, e *central.VehicleEntry) error {
	return imp.doc(ctx, "vehicles", e, clean(e.Plate), e.Time.UnixNano(), clean(string(e.PassID)), string(e.CaseID))
}

// StationAudit adds a station's calibration or audit record.
func (imp *Import) StationAudit(ctx context.Context, station plume.StationID, recordID string, a *plume.Audit) error {
	return imp.doc(ctx, "station_audits", a, clean(string(station)), a.Time.UnixNano(), clean(recordID))
}

// Day adds a day's counters.
func (imp *Import) Day(ctx context.Context, d *central.DayStats) error {
	return imp.doc(ctx, "daily", d, d.Day, clean(string(d.Station)))
}

// Officer adds an officer.
func (imp *Import) Officer(ctx context.Context, o *central.Officer) error {
	return imp.doc(ctx, "officers", o, clean(o.Username))
}

// Session adds a session (officers stay signed in across the move).
func (imp *Import) Session(ctx context.Context, se *central.Session) error {
	return imp.doc(ctx, "sessions", se, clean(se.Hash), ns(se.ExpiresAt))
}

// Audit adds an audit event as its stored line.
func (imp *Import) Audit(ctx context.Context, seq uint64, line []byte) error {
	var e central.AuditEvent
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("import audit event %d: %w", seq, err)
	}
	return imp.add(ctx, "audit_log", int64(seq), e.Time.UnixNano(), clean(e.Actor), clean(e.Action), clean(e.Target), line)
}

// Health adds a station's latest health.
func (imp *Import) Health(ctx context.Context, h *central.StationHealth) error {
	return imp.doc(ctx, "ops_health", h, clean(string(h.Station)))
}

// HealthHistory adds one judged heartbeat of a station's history.
func (imp *Import) HealthHistory(ctx context.Context, h *central.StationHealth) error {
	return imp.doc(ctx, "ops_health_history", h, clean(string(h.Station)), h.ReceivedAt.UnixNano())
}

// Alert adds an alert with its state and history.
func (imp *Import) Alert(ctx context.Context, a *central.Alert) error {
	return imp.doc(ctx, "ops_alerts", a, clean(a.ID))
}

// DesiredConfig adds a station's current desired configuration (its
// version and hash as they were).
func (imp *Import) DesiredConfig(ctx context.Context, c *central.DesiredConfig) error {
	return imp.doc(ctx, "ops_desired_config", c, clean(string(c.Station)))
}

// Counters sets the sequences the source had reached (so that new cases,
// passes and jobs never reuse a number) and the packages built.
func (imp *Import) Counters(lastCase, lastPass, lastJob uint64, packagesBuilt int) {
	imp.seqs.cases = max(imp.seqs.cases, lastCase)
	imp.seqs.passes = max(imp.seqs.passes, lastPass)
	imp.seqs.jobs = max(imp.seqs.jobs, lastJob)
	imp.counts["packages_built"] = packagesBuilt
}

// Finish copies the buffered rows and sets sequences and counters.
func (imp *Import) Finish(ctx context.Context) error {
	for _, t := range imp.order {
		if err := imp.flush(ctx, t); err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, imp.s.pool, func(tx pgx.Tx) error {
		for _, sq := range []struct {
			name string
			last uint64
		}{
			{"case_seq", imp.seqs.cases},
			{"passes_seq_seq", imp.seqs.passes},
			{"jobs_id_seq", imp.seqs.jobs},
		} {
			if _, err := tx.Exec(ctx, "SELECT setval($1, greatest($2::bigint, 1), $2::bigint > 0)", sq.name, int64(sq.last)); err != nil {
				return fmt.Errorf("import: set %s: %w", sq.name, err)
			}
		}
		if _, err := tx.Exec(ctx, "DELETE FROM counters"); err != nil {
			return err
		}
		return addCounters(ctx, tx, map[string]int{
			"evidence": imp.counts["evidence"], "records": imp.counts["records"],
			"cases": imp.counts["cases"], "packages_built": imp.counts["packages_built"],
		})
	})
}

// Counts returns how many rows of each table the import has taken.
func (imp *Import) Counts() map[string]int {
	out := make(map[string]int, len(imp.counts))
	for k, v := range imp.counts {
		out[k] = v
	}
	return out
}
