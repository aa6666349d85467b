package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Case implements central.Store.
func (s *Store) Case(ctx context.Context, id plume.CaseID) (*central.Case, error) {
	var c central.Case
	if err := s.getDoc(ctx, &c, "SELECT doc FROM cases WHERE id = $1", string(id)); err != nil {
		return nil, fmt.Errorf("case %s: %w", id, err)
	}
	return &c, nil
}

// writeCase inserts or updates a case row.
func writeCase(ctx context.Context, tx pgx.Tx, c *central.Case, insert bool) error {
	doc, err := marshal(c)
	if err != nil {
		return err
	}
	pol := make([]string, len(c.Pollutants))
	for i, p := range c.Pollutants {
		pol[i] = clean(string(p))
	}
	args := []any{string(c.ID), clean(string(c.Station)), clean(string(c.Status)), clean(string(c.Kind)), clean(c.Plate), c.SmokeGrade, pol, c.CapturedAt.UnixNano(), c.PackageSHA256, doc}
	if insert {
		_, err = tx.Exec(ctx, `INSERT INTO cases (id, station, status, kind, plate, grade, pollutants, captured_ns, package_sha, doc)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...)
	} else {
		_, err = tx.Exec(ctx, `UPDATE cases SET station = $2, status = $3, kind = $4, plate = $5, grade = $6, pollutants = $7,
			captured_ns = $8, package_sha = $9, doc = $10 WHERE id = $1`, args...)
	}
	return err
}

// lockCase reads a case for update, or returns central.ErrNotFound.
func lockCase(ctx context.Context, tx pgx.Tx, id plume.CaseID) ([]byte, error) {
	if !usable(string(id)) {
		return nil, fmt.Errorf("case %s: %w", id, central.ErrNotFound)
	}
	var raw []byte
	err := tx.QueryRow(ctx, "SELECT doc FROM cases WHERE id = $1 FOR UPDATE", string(id)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("case %s: %w", id, central.ErrNotFound)
	}
	return raw, err
}

// SetCasePackage implements central.Store.
func (s *Store) SetCasePackage(ctx context.Context, id plume.CaseID, sha string, size int64, builtAt time.Time, revision int) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		raw, err := lockCase(ctx, tx, id)
		if err != nil {
			return err
		}
		var c central.Case
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("decode case %s: %w", id, err)
		}
		first := c.PackageSHA256 == ""
		c.PackageSHA256, c.PackageSize, c.PackageBuiltAt, c.PackageRevision = sha, size, builtAt.UTC(), revision
		if err := writeCase(ctx, tx, &c, false); err != nil {
			return err
		}
		if first {
			return addCounters(ctx, tx, map[string]int{"packages_built": 1})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set case package: %w", err)
	}
	return nil
}

func insertCustody(ctx context.Context, tx pgx.Tx, id plume.CaseID, e central.CustodyEntry) error {
	_, err := tx.Exec(ctx, "INSERT INTO custody (case_id, seq, line) VALUES ($1, $2, $3)", string(id), e.Seq, central.EncodeCustody(e))
	return err
}

// appendCustody chains e after the case's last entry; the caller holds the
// case's row lock.
func appendCustody(ctx context.Context, tx pgx.Tx, id plume.CaseID, e central.CustodyEntry) (central.CustodyEntry, error) {
	var (
		last *central.CustodyEntry
		raw  []byte
	)
	err := tx.QueryRow(ctx, "SELECT line FROM custody WHERE case_id = $1 ORDER BY seq DESC LIMIT 1", string(id)).Scan(&raw)
	switch {
	case err == nil:
		last = new(central.CustodyEntry)
		if err := json.Unmarshal(raw, last); err != nil {
			return e, fmt.Errorf("decode custody entry: %w", err)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return e, err
	}
	e = central.ChainCustody(last, e)
	return e, insertCustody(ctx, tx, id, e)
}

// AppendCustody implements central.Store.
func (s *Store) AppendCustody(ctx context.Context, id plume.CaseID, e central.CustodyEntry) (central.CustodyEntry, error) {
	in := e
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := lockCase(ctx, tx, id); err != nil {
			return err
		}
		var err error
		e, err = appendCustody(ctx, tx, id, in)
		return err
	})
	if err != nil {
		return central.CustodyEntry{}, fmt.Errorf("append custody: %w", err)
	}
	return e, nil
}

// Custody implements central.Store.
func (s *Store) Custody(ctx context.Context, id plume.CaseID) ([]central.CustodyEntry, error) {
	if !usable(string(id)) {
		return nil, fmt.Errorf("custody: case %s: %w", id, central.ErrNotFound)
	}
	var out []central.CustodyEntry
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM cases WHERE id = $1", string(id)).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("case %s: %w", id, central.ErrNotFound)
		} else if err != nil {
			return err
		}
		es, err := queryDocs[central.CustodyEntry](ctx, tx, "SELECT line FROM custody WHERE case_id = $1 ORDER BY seq", string(id))
		for _, e := range es {
			out = append(out, *e)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("custody: %w", err)
	}
	return out, nil
}
