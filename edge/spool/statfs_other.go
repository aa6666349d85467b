//go:build !linux

package spool

// freeBytes is not implemented off Linux (edge boxes run Linux); the
// MinFreeBytes check is then skipped and ENOSPC still maps to ErrFull.
func freeBytes(dir string) (int64, bool) { return 0, false }

func fsBytes(dir string) (free, total int64, ok bool) { return 0, 0, false }
