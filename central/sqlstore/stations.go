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

// PutStation implements central.Store.
func (s *Store) PutStation(ctx context.Context, st *central.Station) error {
	doc, err := marshal(st)
	if err != nil {
		return fmt.Errorf("put station: %w", err)
	}
	tag, err := s.pool.Exec(ctx, "INSERT INTO stations (id, doc) VALUES ($1, $2) ON CONFLICT DO NOTHING", clean(string(st.ID)), doc)
	if err != nil {
		return fmt.Errorf("put station: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put station: station %s already enrolled: %w", st.ID, central.ErrConflict)
	}
	return nil
}

// Station implements central.Store.
func (s *Store) Station(ctx context.Context, id plume.StationID) (*central.Station, error) {
	var st central.Station
	if err := s.getDoc(ctx, &st, "SELECT doc FROM stations WHERE id = $1", string(id)); err != nil {
		return nil, fmt.Errorf("station %s: %w", id, err)
	}
	return &st, nil
}

// getDoc decodes the one document the query returns into v, or returns
// central.ErrNotFound. Text arguments that PostgreSQL cannot hold find
// nothing.
func (s *Store) getDoc(ctx context.Context, v any, query string, args ...string) error {
	if !usable(args...) {
		return central.ErrNotFound
	}
	a := make([]any, len(args))
	for i, x := range args {
		a[i] = x
	}
	var raw []byte
	err := s.pool.QueryRow(ctx, query, a...).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return central.ErrNotFound
	} else if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// Stations implements central.Store.
func (s *Store) Stations(ctx context.Context) ([]*central.Station, error) {
	out, err := queryDocs[central.Station](ctx, s.pool, "SELECT doc FROM stations ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list stations: %w", err)
	}
	return out, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryDocs decodes the first column of every row as a T.
func queryDocs[T any](ctx context.Context, q querier, query string, args ...any) ([]*T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
