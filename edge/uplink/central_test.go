package uplink_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

// fakeCentral implements the station side of PROTOCOL.md minimally, with
// real signature and digest checks. Blobs are hashed as they stream in and
// only their digest and size are kept, so that a large upload does not sit
// in the test's memory either.
type fakeCentral struct {
	tb  testing.TB
	pub ed25519.PublicKey

	mu        sync.Mutex
	blobs     map[string]int64 // sha256 → size
	blobPuts  map[string]int   // sha256 → successful PUTs
	manifests map[plume.EvidenceID][]byte
	created   map[plume.EvidenceID]int // 201 answers per evidence ID
	records   map[string]plume.Record
	batches   int
	authFails int
	// hook, when set, may answer a request itself (return true).
	hook func(w http.ResponseWriter, r *http.Request) bool
}

func newFakeCentral(tb testing.TB, pub ed25519.PublicKey) *fakeCentral {
	return &fakeCentral{tb: tb, pub: pub, blobs: map[string]int64{}, blobPuts: map[string]int{},
		manifests: map[plume.EvidenceID][]byte{}, created: map[plume.EvidenceID]int{}, records: map[string]plume.Record{}}
}

func writeErr(w http.ResponseWriter, status int, code, msg string, missing []string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"error": map[string]string{"code": code, "message": msg}}
	if missing != nil {
		body["missing"] = missing
	}
	_ = json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (c *fakeCentral) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	hook := c.hook
	c.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	// Authentication.
	station := r.Header.Get(plume.HeaderStation)
	date := r.Header.Get(plume.HeaderDate)
	contentSHA := r.Header.Get(plume.HeaderContentSHA256)
	t, err := plume.ParseRequestDate(date)
	if station != "GD-SZ-0001" || err != nil || time.Since(t).Abs() > plume.DefaultMaxClockSkew ||
		!plume.VerifyRequest(c.pub, r.Method, r.URL.EscapedPath(), date, contentSHA, r.Header.Get(plume.HeaderSignature)) {
		c.mu.Lock()
		c.authFails++
		c.mu.Unlock()
		writeErr(w, 401, plume.EUNAUTHORIZED, "bad signature", nil)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/stations/"), "/")
	if r.Method != http.MethodPut || len(parts) != 3 {
		writeErr(w, 404, plume.ENOTFOUND, "no such endpoint", nil)
		return
	}
	if parts[0] != station {
		writeErr(w, 403, plume.EFORBIDDEN, "another station", nil)
		return
	}
	// Stream the body through a hasher; keep it only when small.
	h := sha256.New()
	var small bytes.Buffer
	var sink io.Writer = h
	if parts[1] != "blobs" {
		sink = io.MultiWriter(h, &small)
	}
	n, err := io.Copy(sink, r.Body)
	if err != nil {
		writeErr(w, 400, plume.EINVALID, "read body", nil)
		return
	}
	if hex.EncodeToString(h.Sum(nil)) != contentSHA {
		c.mu.Lock()
		c.authFails++
		c.mu.Unlock()
		writeErr(w, 401, plume.EUNAUTHORIZED, "body digest differs", nil)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch parts[1] {
	case "blobs":
		if parts[2] != contentSHA || r.ContentLength != n {
			writeErr(w, 400, plume.EINVALID, "digest or length mismatch", nil)
			return
		}
		status := 200
		if _, ok := c.blobs[contentSHA]; !ok {
			status = 201
		}
		c.blobs[contentSHA] = n
		c.blobPuts[contentSHA]++
		writeJSON(w, status, map[string]any{"sha256": contentSHA, "size": n})
	case "evidence":
		body := small.Bytes()
		sig, err := base64.StdEncoding.DecodeString(r.Header.Get(plume.HeaderManifestSignature))
		if err != nil || !plume.VerifyManifest(c.pub, body, sig) {
			writeErr(w, 400, plume.EINVALID, "capture signature does not verify", nil)
			return
		}
		m, err := plume.DecodeManifest(body)
		if err != nil || string(m.ID) != parts[2] || r.Header.Get(plume.HeaderIdempotencyKey) != parts[2] {
			writeErr(w, 400, plume.EINVALID, "bad manifest", nil)
			return
		}
		if old, ok := c.manifests[m.ID]; ok {
			if !bytes.Equal(old, body) {
				writeErr(w, 409, plume.ECONFLICT, "different manifest", nil)
				return
			}
			writeJSON(w, 200, map[string]string{"id": string(m.ID)})
			return
		}
		var missing []string
		for _, md := range m.Media {
			if size, ok := c.blobs[md.SHA256]; !ok || size != md.Size {
				missing = append(missing, md.SHA256)
			}
		}
		if len(missing) > 0 {
			writeErr(w, 409, plume.EMISSINGMEDIA, "media missing", missing)
			return
		}
		c.manifests[m.ID] = bytes.Clone(body)
		c.created[m.ID]++
		writeJSON(w, 201, map[string]string{"id": string(m.ID), "case": "C-" + string(m.ID)})
	case "records":
		var batch struct {
			Records []plume.Record `json:"records"`
		}
		dec := json.NewDecoder(&small)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&batch); err != nil || len(batch.Records) > 1000 {
			writeErr(w, 400, plume.EINVALID, "bad batch", nil)
			return
		}
		for _, rec := range batch.Records {
			if err := rec.Validate(); err != nil || string(rec.Station) != station {
				writeErr(w, 400, plume.EINVALID, "bad record "+rec.ID, nil)
				return
			}
		}
		acc, dup := 0, 0
		for _, rec := range batch.Records {
			if _, ok := c.records[rec.ID]; ok {
				dup++
				continue
			}
			c.records[rec.ID] = rec
			acc++
		}
		c.batches++
		writeJSON(w, 200, map[string]int{"accepted": acc, "duplicates": dup})
	default:
		writeErr(w, 404, plume.ENOTFOUND, "no such endpoint", nil)
	}
}

func (c *fakeCentral) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	c.mu.Lock()
	c.hook = h
	c.mu.Unlock()
}

func (c *fakeCentral) counts() (manifests, records, blobs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.manifests), len(c.records), len(c.blobs)
}
