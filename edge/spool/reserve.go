package spool

import (
	"errors"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// The reserve is a file of real blocks the spool keeps so that a full disk
// cannot lock it up: recording a delivery rewrites bbolt pages, which
// needs space, and only recorded deliveries free space. When such a write
// meets ENOSPC the reserve is deleted and the write tried again; producers
// then must leave the reserve's size free, and the reserve is written again
// once the space is back.
const (
	reserveName = "reserve"
	reserveMax  = 1 << 20
)

// reserveSize is the reserve for the file system holding dir: 1 MiB, or a
// thirty-second of a smaller file system; 0 when unknown.
func reserveSize(dir string) int64 {
	_, total, ok := fsBytes(dir)
	if !ok {
		return 0
	}
	return min(reserveMax, total/32)
}

// keepReserve (re)writes the reserve when it is missing and the file system
// has room for it beyond the pressure margin. Call with s.mu held, or
// before the spool is shared.
func (s *Spool) keepReserve() {
	if s.reserve <= 0 {
		return
	}
	p := s.path(reserveName)
	if st, err := os.Stat(p); err == nil && st.Size() == s.reserve {
		s.reserveGone = false
		return
	}
	if free, total, ok := fsBytes(s.dir); !ok || free < s.reserve+min(pressureMargin, total/32) {
		return
	}
	if err := s.writeFileSync(s.dir, reserveName, make([]byte, s.reserve)); err != nil {
		s.log.Warn("write the spool's disk reserve", "err", err)
		return
	}
	if s.reserveGone {
		s.log.Info("spool disk reserve restored", "bytes", s.reserve)
	}
	s.reserveGone = false
}

// updateFreeing runs a bbolt update that frees space (a delivery, a dead
// letter, GC); when it meets ENOSPC it deletes the reserve and tries once
// more.
func (s *Spool) updateFreeing(fn func(tx *bolt.Tx) error) error {
	err := s.db.Update(fn)
	if err == nil || !isNoSpace(err) {
		return err
	}
	if rerr := os.Remove(s.path(reserveName)); rerr != nil {
		return err
	}
	s.reserveGone = true
	s.pressure = true
	s.log.Warn("disk full while recording a delivery; released the spool's disk reserve", "bytes", s.reserve)
	return s.db.Update(fn)
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
