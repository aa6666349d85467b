package evidence

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Schema and violation constants written into every package.
const (
	CaseSchema     = "plume.case/v1"
	PackageVersion = "1"
	ViolationCode  = "6063"
	ViolationText  = "驾驶排放不合格的机动车上道路行驶的"
)

// File names inside the bag (relative to its top-level directory).
const (
	fileBagIt       = "bagit.txt"
	fileBagInfo     = "bag-info.txt"
	fileManifest    = "manifest-sha256.txt"
	fileTagManifest = "tagmanifest-sha256.txt"
	fileCustody     = "custody.jsonl"
	fileCentralPub  = "central.pub"
	fileCentralSig  = "signature-central.sig"
	fileCase        = "data/case.json"
	fileEvidence    = "data/manifest.json"
	fileStationSig  = "data/manifest.sig"
	fileStationPub  = "data/station.pub"
	fileSheet       = "data/evidence-sheet.html"
	fileSheetPDF    = "data/evidence-sheet.pdf"
	dirMedia        = "data/media/"
)

const bagItDeclaration = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

// ErrMediaMismatch is returned by Write when a media blob does not have the
// size or SHA-256 its manifest lists. No valid package can be built.
var ErrMediaMismatch = errors.New("media does not match the manifest")

// Input is everything one package is built from.
type Input struct {
	Case     *central.Case
	Station  *central.Station
	Evidence *central.StoredEvidence
	Custody  []central.CustodyEntry // the full log, ending with the "package built" entry
	// Organization is bag-info's Source-Organization, e.g. the bureau's name.
	Organization string
	Key          ed25519.PrivateKey // central's signing key
	BuiltAt      time.Time
	// OpenMedia opens a media blob by SHA-256. Media is streamed into the
	// zip, never read whole into memory.
	OpenMedia func(ctx context.Context, sha256 string) (io.ReadCloser, error)
	// SheetFont is a TrueType font with CJK glyphs (LoadSheetFont). With
	// it, the package carries the printable PDF evidence sheet
	// (data/evidence-sheet.pdf); without it, only the HTML sheet.
	SheetFont []byte
}

// CaseFile is data/case.json.
type CaseFile struct {
	Schema    string        `json:"schema"`
	Case      *central.Case `json:"case"`
	Violation Violation     `json:"violation"`
	Station   StationInfo   `json:"station"`
	Evidence  EvidenceInfo  `json:"evidence"`
	Pass      plume.Pass    `json:"pass"`
	Verdict   plume.Verdict `json:"verdict"`
	Media     []MediaFile   `json:"media"`
	BuiltAt   time.Time     `json:"built_at"`
}

// Violation is the traffic-police violation the case supports.
type Violation struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// StationInfo describes the capturing station.
type StationInfo struct {
	ID        plume.StationID `json:"id"`
	Name      string          `json:"name,omitempty"`
	PublicKey string          `json:"public_key"` // base64, as in data/station.pub
}

// EvidenceInfo describes the signed manifest.
type EvidenceInfo struct {
	ID             plume.EvidenceID `json:"id"`
	ReceivedAt     time.Time        `json:"received_at"`
	ManifestSHA256 string           `json:"manifest_sha256"`
}

// MediaFile is one media item and its path in the bag.
type MediaFile struct {
	plume.MediaRef
	Path string `json:"path"`
}

type file struct {
	name string
	body []byte
}

// Write builds the package for in and writes the zip to w. The media is
// checked against the manifest while it streams; on ErrMediaMismatch or any
// other error the bytes written so far are not a valid package.
func Write(ctx context.Context, w io.Writer, in *Input) error {
	if err := write(ctx, w, in); err != nil {
		return fmt.Errorf("write evidence package: %w", err)
	}
	return nil
}

func write(ctx context.Context, w io.Writer, in *Input) error {
	m, err := plume.DecodeManifest(in.Evidence.Manifest)
	if err != nil {
		return fmt.Errorf("stored manifest: %w", err)
	}
	root, err := bagRoot(in.Case.Number)
	if err != nil {
		return err
	}
	payload, err := payloadFiles(ctx, in, m)
	if err != nil {
		return err
	}
	// Payload digests: generated files are hashed here; media digests come
	// from the station-signed manifest and are checked as they stream.
	type entry struct{ name, sum string }
	var entries []entry
	var octets int64
	for _, f := range payload {
		entries = append(entries, entry{f.name, sum(f.body)})
		octets += int64(len(f.body))
	}
	for _, md := range m.Media {
		entries = append(entries, entry{dirMedia + md.Name, md.SHA256})
		octets += md.Size
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var manifest strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&manifest, "%s  %s\n", e.sum, e.name)
	}

	var custody bytes.Buffer
	for _, e := range in.Custody {
		custody.Write(central.EncodeCustody(e))
		custody.WriteByte('\n')
	}
	tags := []file{
		{fileBagIt, []byte(bagItDeclaration)},
		{fileBagInfo, bagInfo(in, m, octets, len(entries))},
		{fileManifest, []byte(manifest.String())},
		{fileCustody, custody.Bytes()},
		{fileCentralPub, []byte(base64.StdEncoding.EncodeToString(in.Key.Public().(ed25519.PublicKey)) + "\n")},
	}
	tagManifest := tagManifestOf(tags)
	tags = append(tags,
		file{fileTagManifest, tagManifest},
		file{fileCentralSig, []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(in.Key, tagManifest)) + "\n")},
	)

	zw := zip.NewWriter(w)
	for _, f := range append(tags, payload...) {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: root + f.name, Method: zip.Deflate, Modified: in.BuiltAt})
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.body); err != nil {
			return err
		}
	}
	for _, md := range m.Media {
		if err := copyMedia(ctx, zw, root, in, md); err != nil {
			return fmt.Errorf("media %s: %w", md.Name, err)
		}
	}
	return zw.Close()
}

// copyMedia streams one media blob into the zip, checking size and digest.
// Media (JPEG, MP4) is already compressed, so it is stored, not deflated.
func copyMedia(ctx context.Context, zw *zip.Writer, root string, in *Input, md plume.MediaRef) error {
	rc, err := in.OpenMedia(ctx, md.SHA256)
	if err != nil {
		return err
	}
	defer rc.Close()
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: root + dirMedia + md.Name, Method: zip.Store, Modified: in.BuiltAt})
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(fw, h), io.LimitReader(rc, md.Size+1))
	if err != nil {
		return err
	}
	if n != md.Size || hex.EncodeToString(h.Sum(nil)) != md.SHA256 {
		return ErrMediaMismatch
	}
	return nil
}

func bagRoot(number string) (string, error) {
	if number == "" || strings.ContainsAny(number, "/\\\x00") || number == "." || number == ".." || path.Clean(number) != number {
		return "", fmt.Errorf("case number %q cannot name a bag", number)
	}
	return number + "/", nil
}

func payloadFiles(ctx context.Context, in *Input, m *plume.Manifest) ([]file, error) {
	c := *in.Case
	c.PackageSHA256, c.PackageSize, c.PackageBuiltAt = "", 0, time.Time{}
	cf := CaseFile{
		Schema:    CaseSchema,
		Case:      &c,
		Violation: Violation{Code: ViolationCode, Text: ViolationText},
		Station:   StationInfo{ID: in.Station.ID, Name: in.Station.Name, PublicKey: base64.StdEncoding.EncodeToString(in.Evidence.StationKey)},
		Evidence:  EvidenceInfo{ID: in.Evidence.ID, ReceivedAt: in.Evidence.ReceivedAt.UTC(), ManifestSHA256: sum(in.Evidence.Manifest)},
		Pass:      m.Pass,
		Verdict:   m.Pass.Verdict,
		BuiltAt:   in.BuiltAt.UTC(),
	}
	for _, md := range m.Media {
		cf.Media = append(cf.Media, MediaFile{MediaRef: md, Path: dirMedia + md.Name})
	}
	caseJSON, err := json.MarshalIndent(&cf, "", "  ")
	if err != nil {
		return nil, err
	}
	sheet, err := renderSheet(&cf)
	if err != nil {
		return nil, fmt.Errorf("evidence sheet: %w", err)
	}
	files := []file{
		{fileCase, append(caseJSON, '\n')},
		{fileEvidence, in.Evidence.Manifest},
		{fileStationSig, []byte(base64.StdEncoding.EncodeToString(in.Evidence.StationSig) + "\n")},
		{fileStationPub, []byte(base64.StdEncoding.EncodeToString(in.Evidence.StationKey) + "\n")},
		{fileSheet, sheet},
	}
	if len(in.SheetFont) > 0 {
		pdf, err := renderSheetPDF(ctx, in, &cf, in.Custody)
		if err != nil {
			return nil, err
		}
		files = append(files, file{fileSheetPDF, pdf})
	}
	return files, nil
}

// oneLine keeps a bag-info value on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func bagInfo(in *Input, m *plume.Manifest, octets int64, count int) []byte {
	org := oneLine(in.Organization)
	if org == "" {
		org = "Plume central"
	}
	var b strings.Builder
	for _, kv := range [][2]string{
		{"Source-Organization", org},
		{"Bagging-Date", in.BuiltAt.In(time.FixedZone("CST", 8*3600)).Format("2006-01-02")},
		{"Payload-Oxum", fmt.Sprintf("%d.%d", octets, count)},
		{"External-Identifier", in.Case.Number},
		{"External-Description", oneLine(fmt.Sprintf("Plume evidence package for case %s, violation %s: %s", in.Case.Number, ViolationCode, m.Pass.Verdict.Summary))},
		{"Bag-Software-Agent", "plume-central"},
		{"Plume-Package-Version", PackageVersion},
		{"Plume-Case-ID", string(in.Case.ID)},
		{"Plume-Station", string(m.Station)},
		{"Plume-Evidence-ID", string(m.ID)},
		{"Plume-Captured-At", m.CapturedAt.UTC().Format(time.RFC3339Nano)},
	} {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
	}
	return []byte(b.String())
}

func tagManifestOf(tags []file) []byte {
	var b strings.Builder
	for _, f := range tags {
		fmt.Fprintf(&b, "%s  %s\n", sum(f.body), f.name)
	}
	return []byte(b.String())
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
