package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

const jobColumns = "id, kind, case_id, attempts, created_ns, not_before_ns, lease_ns, last_error"

func scanJob(row pgx.Row) (*central.Job, error) {
	var (
		j                        central.Job
		id                       int64
		kind, caseID             string
		created, notBefore, leas int64
	)
	if err := row.Scan(&id, &kind, &caseID, &j.Attempts, &created, &notBefore, &leas, &j.LastError); err != nil {
		return nil, err
	}
	j.ID, j.Kind, j.CaseID = uint64(id), central.JobKind(kind), plume.CaseID(caseID)
	j.CreatedAt, j.NotBefore, j.LeaseUntil = fromNS(created), fromNS(notBefore), fromNS(leas)
	return &j, nil
}

func enqueue(ctx context.Context, tx pgx.Tx, j central.Job) (central.Job, error) {
	j.CreatedAt = j.CreatedAt.UTC()
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO jobs (kind, case_id, attempts, created_ns, not_before_ns, lease_ns, last_error)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		clean(string(j.Kind)), clean(string(j.CaseID)), j.Attempts, ns(j.CreatedAt), ns(j.NotBefore), ns(j.LeaseUntil), clean(j.LastError)).Scan(&id)
	j.ID = uint64(id)
	return j, err
}

// EnqueueJob implements central.Store.
func (s *Store) EnqueueJob(ctx context.Context, j central.Job) (central.Job, error) {
	if j.CreatedAt.IsZero() {
		j.CreatedAt = s.now()
	}
	in := j
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		j, err = enqueue(ctx, tx, in)
		return err
	})
	if err != nil {
		return j, fmt.Errorf("enqueue job: %w", err)
	}
	return j, nil
}

// ClaimJob implements central.Store. The oldest ready job is locked with
// SKIP LOCKED, so replicas claiming at the same moment take different
// jobs instead of waiting for each other.
func (s *Store) ClaimJob(ctx context.Context, now time.Time, lease time.Duration, kinds ...central.JobKind) (*central.Job, error) {
	var q query
	q.where("not_before_ns <= ?", now.UnixNano())
	q.where("lease_ns <= ?", now.UnixNano())
	if len(kinds) > 0 {
		ks := make([]string, len(kinds))
		for i, k := range kinds {
			ks[i] = string(k)
		}
		if !q.in("kind", ks) {
			return nil, central.ErrNoJob
		}
	}
	q.args = append(q.args, now.Add(lease).UnixNano())
	leaseArg := "$" + strconv.Itoa(len(q.args))
	row := s.pool.QueryRow(ctx, `UPDATE jobs SET lease_ns = `+leaseArg+`, attempts = attempts + 1
		WHERE id = (SELECT id FROM jobs`+q.sql()+` ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+jobColumns, q.args...)
	j, err := scanJob(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, central.ErrNoJob
	} else if err != nil {
		return nil, fmt.Errorf("claim job: %w", err)
	}
	return j, nil
}

// Jobs implements central.Store.
func (s *Store) Jobs(ctx context.Context) ([]central.Job, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+jobColumns+" FROM jobs ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []central.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, *j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// CompleteJob implements central.Store.
func (s *Store) CompleteJob(ctx context.Context, id uint64) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM jobs WHERE id = $1", int64(id))
	if err != nil {
		return fmt.Errorf("complete job: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("complete job: job %d: %w", id, central.ErrNotFound)
	}
	return nil
}

// RetryJob implements central.Store.
func (s *Store) RetryJob(ctx context.Context, id uint64, notBefore time.Time, reason string) error {
	tag, err := s.pool.Exec(ctx, "UPDATE jobs SET lease_ns = 0, not_before_ns = $2, last_error = $3 WHERE id = $1", int64(id), ns(notBefore), clean(reason))
	if err != nil {
		return fmt.Errorf("retry job: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("retry job: job %d: %w", id, central.ErrNotFound)
	}
	return nil
}

// Stats implements central.Store. Stations and queued jobs are counted;
// the large tables keep sharded counters.
func (s *Store) Stats(ctx context.Context) (central.Stats, error) {
	var st central.Stats
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM stations),
		(SELECT count(*) FROM jobs),
		coalesce((SELECT sum(n) FROM counters WHERE name = 'evidence'), 0)::bigint,
		coalesce((SELECT sum(n) FROM counters WHERE name = 'records'), 0)::bigint,
		coalesce((SELECT sum(n) FROM counters WHERE name = 'cases'), 0)::bigint,
		coalesce((SELECT sum(n) FROM counters WHERE name = 'packages_built'), 0)::bigint`).
		Scan(&st.Stations, &st.PendingJobs, &st.Evidence, &st.Records, &st.Cases, &st.PackagesBuilt)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}
