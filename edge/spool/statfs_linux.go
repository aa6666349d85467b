//go:build linux

package spool

import "syscall"

// freeBytes returns the bytes available to unprivileged users on the file
// system holding dir.
func freeBytes(dir string) (int64, bool) {
	free, _, ok := fsBytes(dir)
	return free, ok
}

// fsBytes returns the available and the total bytes of the file system
// holding dir.
func fsBytes(dir string) (free, total int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), true
}
