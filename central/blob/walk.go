package blob

import (
	"context"
	"os"
	"path/filepath"

	"github.com/plume-emissions/plume"
)

// Walk calls fn for every blob held, in digest order, with its size. It is
// for operator tools (the migration to the object store); files that are
// not named by a valid digest under their prefix directory are skipped.
func (s *Store) Walk(ctx context.Context, fn func(sum string, size int64) error) error {
	prefixes, err := os.ReadDir(s.root)
	if err != nil {
		return err
	}
	for _, p := range prefixes {
		if !p.IsDir() || len(p.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.root, p.Name()))
		if err != nil {
			return err
		}
		for _, f := range files {
			sum := f.Name()
			if !f.Type().IsRegular() || !plume.ValidSHA256(sum) || sum[:2] != p.Name() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			info, err := f.Info()
			if err != nil {
				if os.IsNotExist(err) {
					continue
				}
				return err
			}
			if err := fn(sum, info.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}
