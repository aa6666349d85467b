package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
)

// hasher computes the configuration hash a station reports: the SHA-256 of
// every file read, by base name and content, in the order read.
type hasher struct{ parts []byte }

func newHasher() *hasher { return &hasher{} }

func (h *hasher) add(name string, b []byte) {
	sum := sha256.Sum256(b)
	h.parts = fmt.Appendf(h.parts, "%s %x\n", path.Base(name), sum)
}

func (h *hasher) sum() string {
	s := sha256.Sum256(h.parts)
	return hex.EncodeToString(s[:])
}
