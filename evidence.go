package plume

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"time"
)

// ManifestSchema is the schema version written into every evidence manifest.
const ManifestSchema = "plume.evidence/v1"

// MediaKind says what a media item shows.
type MediaKind string

const (
	MediaAnalyserRaw MediaKind = "analyser-raw" // the analyser's frame exactly as received
	MediaScene       MediaKind = "scene"        // full-scene image (GA/T 832-2014)
	MediaPlate       MediaKind = "plate"        // plate close-up
	MediaSmoke       MediaKind = "smoke"        // smoke close-up
	MediaClip        MediaKind = "clip"         // H.264 MP4 clip
)

// MaxMediaSize is the largest media item central accepts (a clip of a few
// seconds at 1080p is well under this).
const MaxMediaSize = 512 << 20

var mediaNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// MediaRef lists one media file in a manifest. Media is content-addressed by
// SHA-256.
type MediaRef struct {
	Name        string    `json:"name"` // file name inside the package, e.g. "scene-1.jpg"
	Kind        MediaKind `json:"kind"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
	CapturedAt  time.Time `json:"captured_at"`
}

// Manifest is the evidence for one violation candidate. The edge signs its
// exact JSON bytes with the station key at capture time; those bytes are
// the first link in the chain of custody and are never re-encoded.
type Manifest struct {
	Schema        string     `json:"schema"`
	ID            EvidenceID `json:"id"`
	Station       StationID  `json:"station"`
	CapturedAt    time.Time  `json:"captured_at"`
	ClockOffsetMS int64      `json:"clock_offset_ms"` // edge clock minus reference, at capture
	// ClockSource is the reference ClockOffsetMS was measured against:
	// "central" (Plume-Time at a round trip's midpoint) or "ntp" (chrony);
	// "" when the station had not measured its offset yet.
	ClockSource string     `json:"clock_source,omitempty"`
	Software    string     `json:"software"`
	Pass        Pass       `json:"pass"`
	Media       []MediaRef `json:"media"`
}

// Validate checks a manifest received from outside.
func (m *Manifest) Validate() error {
	if m.Schema != ManifestSchema {
		return Errorf(EINVALID, "manifest: schema %q, want %q", m.Schema, ManifestSchema)
	}
	if err := m.ID.Validate(); err != nil {
		return err
	}
	if err := m.Station.Validate(); err != nil {
		return err
	}
	if m.CapturedAt.IsZero() {
		return Errorf(EINVALID, "manifest %s: captured_at is missing", m.ID)
	}
	if err := m.Pass.Validate(); err != nil {
		return err
	}
	if m.Pass.Station != m.Station || EvidenceID(m.Pass.ID) != m.ID {
		return Errorf(EINVALID, "manifest %s: pass %s of station %s does not belong to it", m.ID, m.Pass.ID, m.Pass.Station)
	}
	if len(m.Media) > 64 {
		return Errorf(EINVALID, "manifest %s: %d media items, at most 64", m.ID, len(m.Media))
	}
	names := map[string]bool{}
	for _, md := range m.Media {
		switch {
		case !mediaNamePattern.MatchString(md.Name) || path.Clean(md.Name) != md.Name:
			return Errorf(EINVALID, "manifest %s: bad media name %q", m.ID, md.Name)
		case names[md.Name]:
			return Errorf(EINVALID, "manifest %s: media name %q twice", m.ID, md.Name)
		case !ValidSHA256(md.SHA256):
			return Errorf(EINVALID, "manifest %s: media %s: bad sha256", m.ID, md.Name)
		case md.Size < 0 || md.Size > MaxMediaSize:
			return Errorf(EINVALID, "manifest %s: media %s: size %d out of range", m.ID, md.Name, md.Size)
		case md.Kind == "":
			return Errorf(EINVALID, "manifest %s: media %s: kind is missing", m.ID, md.Name)
		}
		names[md.Name] = true
	}
	return nil
}

// EncodeManifest returns the canonical bytes of m: compact JSON with a
// trailing newline. These bytes are what gets signed and stored.
func EncodeManifest(m *Manifest) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeManifest parses and validates manifest bytes from outside. Unknown
// fields and trailing data are rejected.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) > 1<<20 {
		return nil, Errorf(ETOOLARGE, "manifest larger than 1 MiB")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, Errorf(EINVALID, "manifest: %v", err)
	}
	if dec.More() {
		return nil, Errorf(EINVALID, "manifest: trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// SignManifest encodes m and signs the bytes with the station key.
func SignManifest(key ed25519.PrivateKey, m *Manifest) (body, sig []byte, err error) {
	body, err = EncodeManifest(m)
	if err != nil {
		return nil, nil, err
	}
	return body, ed25519.Sign(key, body), nil
}

// VerifyManifest reports whether sig is the station key's signature of body.
func VerifyManifest(pub ed25519.PublicKey, body, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, body, sig)
}
