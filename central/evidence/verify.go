package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// ErrInvalidPackage is returned (wrapped, with the failing check and why)
// by Verify when a package fails any check.
var ErrInvalidPackage = errors.New("invalid evidence package")

// Limits on what Verify reads from an untrusted zip.
const (
	MaxEntries      = 256      // 64 media items plus the fixed files, with room to spare
	MaxTagFileSize  = 4 << 20  // any file read into memory: tag files, case.json, manifest.json, the sheet
	DefaultMaxTotal = 64 << 30 // bytes decompressed in all
	maxMediaEntry   = plume.MaxMediaSize
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// CentralKey pins central's public key, and Keyring pins more (the
	// keys that were valid before a rotation, keyring.go), each for the
	// packages built in its period. When neither is set, the package's own
	// central.pub is checked but not trusted: Report.Pinned is false and
	// the signer is unknown (plume-central verify then fails).
	CentralKey ed25519.PublicKey
	Keyring    []TrustedKey
	// MaxEntrySize caps one entry's decompressed size (default
	// plume.MaxMediaSize).
	MaxEntrySize int64
	// MaxTotalSize caps the decompressed bytes of the whole package
	// (default DefaultMaxTotal).
	MaxTotalSize int64
}

// Check is one verification step and its result.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report lists the checks Verify ran, in order. When verification fails
// the last check is the failed one.
type Report struct {
	CaseNumber string  `json:"case_number,omitempty"`
	Checks     []Check `json:"checks"`
	// CentralKey is the fingerprint (Fingerprint) of the key that signed
	// the package, and Pinned whether that key was pinned by the caller.
	CentralKey string `json:"central_key,omitempty"`
	Pinned     bool   `json:"pinned"`
}

// OK reports whether every check passed.
func (r *Report) OK() bool {
	if len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// verifier carries the state of one Verify call.
type verifier struct {
	opts   VerifyOptions
	report *Report
	period *TrustedKey // the keyring entry that pinned the signer, if one did
	root   string
	files  map[string]*entry // by name relative to root
}

type entry struct {
	f    *zip.File
	sum  string
	size int64
	body []byte // kept for small files only
}

func (v *verifier) pass(name, format string, args ...any) {
	v.report.Checks = append(v.report.Checks, Check{Name: name, OK: true, Detail: fmt.Sprintf(format, args...)})
}

func (v *verifier) fail(name, format string, args ...any) error {
	detail := fmt.Sprintf(format, args...)
	v.report.Checks = append(v.report.Checks, Check{Name: name, OK: false, Detail: detail})
	return fmt.Errorf("%w: %s: %s", ErrInvalidPackage, name, detail)
}

// Verify checks a whole evidence package offline: the zip's structure, the
// BagIt declaration, every tag and payload digest, Payload-Oxum, central's
// signature, the station's capture signature, that every media item in the
// manifest is present with its listed digest and size, case.json, and the
// custody chain. It stops at the first failure, returning the report so far
// and an error wrapping ErrInvalidPackage.
func Verify(r io.ReaderAt, size int64, opts VerifyOptions) (*Report, error) {
	if opts.MaxEntrySize <= 0 {
		opts.MaxEntrySize = maxMediaEntry
	}
	if opts.MaxTotalSize <= 0 {
		opts.MaxTotalSize = DefaultMaxTotal
	}
	v := &verifier{opts: opts, report: &Report{}, files: map[string]*entry{}}
	if err := v.checkZip(r, size); err != nil {
		return v.report, err
	}
	for _, step := range []func() error{
		v.checkBagIt, v.checkTagManifest, v.checkCentralSignature,
		v.checkPayloadManifest, v.checkBagInfo, v.checkStationSignature, v.checkCase, v.checkCustody,
	} {
		if err := step(); err != nil {
			return v.report, err
		}
	}
	return v.report, nil
}

// checkZip opens the zip, validates every name, and hashes every entry
// within the size limits.
func (v *verifier) checkZip(r io.ReaderAt, size int64) error {
	const name = "zip structure"
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return v.fail(name, "not a readable zip: %v", err)
	}
	if zr == nil {
		return v.fail(name, "not a readable zip: %v", err)
	}
	if len(zr.File) > MaxEntries {
		return v.fail(name, "%d entries, at most %d", len(zr.File), MaxEntries)
	}
	var total int64
	for _, f := range zr.File {
		if !utf8.ValidString(f.Name) || len(f.Name) > 512 {
			return v.fail(name, "entry name %q is not valid", truncate(f.Name))
		}
		isDir := strings.HasSuffix(f.Name, "/")
		clean := strings.TrimSuffix(f.Name, "/")
		if clean == "" || strings.ContainsAny(clean, "\\\x00") || strings.HasPrefix(clean, "/") || path.Clean(clean) != clean ||
			clean == ".." || strings.HasPrefix(clean, "../") || hasControl(clean) {
			return v.fail(name, "unsafe entry name %q", truncate(f.Name))
		}
		top, rest, _ := strings.Cut(clean, "/")
		if v.root == "" {
			v.root = top
		} else if top != v.root {
			return v.fail(name, "entries under %q and %q: a bag has one top-level directory", v.root, top)
		}
		if isDir {
			if f.UncompressedSize64 != 0 {
				return v.fail(name, "directory entry %q has content", truncate(f.Name))
			}
			continue
		}
		if rest == "" {
			return v.fail(name, "file %q outside the bag directory", truncate(f.Name))
		}
		if _, dup := v.files[rest]; dup {
			return v.fail(name, "duplicate entry %q", truncate(f.Name))
		}
		limit := v.opts.MaxEntrySize
		if !strings.HasPrefix(rest, dirMedia) {
			limit = min(limit, MaxTagFileSize)
		}
		if f.UncompressedSize64 > uint64(limit) {
			return v.fail(name, "entry %q declares %d bytes, limit %d", truncate(f.Name), f.UncompressedSize64, limit)
		}
		e, err := readEntry(f, limit, !strings.HasPrefix(rest, dirMedia), v.opts.MaxTotalSize-total)
		if err != nil {
			return v.fail(name, "entry %q: %v", truncate(f.Name), err)
		}
		total += e.size
		v.files[rest] = e
	}
	if v.root == "" {
		return v.fail(name, "empty zip")
	}
	v.report.CaseNumber = v.root
	v.pass(name, "%d files under %s/", len(v.files), v.root)
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.Quote(s)[1 : len(strconv.Quote(s))-1]
}

// readEntry hashes one entry, reading at most limit bytes (and at most
// budget in all), keeping the bytes when keep is set.
func readEntry(f *zip.File, limit int64, keep bool, budget int64) (*entry, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	capN := min(limit, budget)
	h := sha256.New()
	var buf bytes.Buffer
	w := io.Writer(h)
	if keep {
		w = io.MultiWriter(h, &buf)
	}
	n, err := io.Copy(w, io.LimitReader(rc, capN+1))
	if err != nil {
		return nil, err
	}
	if n > capN {
		if capN < limit {
			return nil, fmt.Errorf("package exceeds %d decompressed bytes", budget)
		}
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	e := &entry{f: f, sum: hex.EncodeToString(h.Sum(nil)), size: n}
	if keep {
		e.body = buf.Bytes()
	}
	return e, nil
}

func (v *verifier) small(name string) ([]byte, bool) {
	e, ok := v.files[name]
	if !ok || e.body == nil {
		return nil, false
	}
	return e.body, true
}

func (v *verifier) checkBagIt() error {
	const name = "bagit.txt"
	b, ok := v.small(fileBagIt)
	if !ok {
		return v.fail(name, "missing")
	}
	if string(b) != bagItDeclaration {
		return v.fail(name, "not a BagIt 1.0 UTF-8 declaration")
	}
	for _, f := range []string{fileBagInfo, fileManifest, fileTagManifest, fileCustody, fileCentralPub, fileCentralSig, fileCase, fileEvidence, fileStationSig, fileStationPub, fileSheet} {
		if _, ok := v.files[f]; !ok {
			return v.fail(name, "required file %s is missing", f)
		}
	}
	v.pass(name, "BagIt 1.0, all required files present")
	return nil
}

// parseManifest parses a BagIt manifest: "<sha256> <path>" per line.
func parseManifest(b []byte) (map[string]string, []string, error) {
	if !utf8.Valid(b) {
		return nil, nil, errors.New("not UTF-8")
	}
	out := map[string]string{}
	var order []string
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" {
			if i == strings.Count(string(b), "\n") {
				break // the final newline
			}
			return nil, nil, fmt.Errorf("line %d is empty", i+1)
		}
		sum, p, ok := strings.Cut(line, " ")
		p = strings.TrimLeft(p, " \t")
		if !ok || !plume.ValidSHA256(sum) || p == "" {
			return nil, nil, fmt.Errorf("line %d is not \"<sha256>  <path>\"", i+1)
		}
		p = decodeManifestPath(p)
		if _, dup := out[p]; dup {
			return nil, nil, fmt.Errorf("%s listed twice", truncate(p))
		}
		out[p] = sum
		order = append(order, p)
	}
	return out, order, nil
}

// decodeManifestPath undoes RFC 8493 §2.1.3 percent-encoding.
func decodeManifestPath(p string) string {
	return strings.NewReplacer("%0A", "\n", "%0a", "\n", "%0D", "\r", "%0d", "\r", "%25", "%").Replace(p)
}

func isTagFile(name string) bool {
	return !strings.HasPrefix(name, "data/") && name != fileTagManifest && name != fileCentralSig
}

func (v *verifier) checkTagManifest() error {
	const name = "tag manifest"
	b, _ := v.small(fileTagManifest)
	listed, _, err := parseManifest(b)
	if err != nil {
		return v.fail(name, "%v", err)
	}
	for p, want := range listed {
		e, ok := v.files[p]
		switch {
		case !ok:
			return v.fail(name, "lists %s, which is missing", truncate(p))
		case !isTagFile(p):
			return v.fail(name, "lists %s, which is not a tag file", truncate(p))
		case e.sum != want:
			return v.fail(name, "%s has sha256 %s, manifest says %s", p, e.sum, want)
		}
	}
	for p := range v.files {
		if isTagFile(p) && listed[p] == "" {
			return v.fail(name, "tag file %s is not listed", truncate(p))
		}
	}
	v.pass(name, "%d tag files match", len(listed))
	return nil
}

func decodeKeyFile(b []byte, size int) ([]byte, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != size {
		return nil, fmt.Errorf("not base64 of %d bytes", size)
	}
	return raw, nil
}

func (v *verifier) checkCentralSignature() error {
	const name = "central signature"
	pubB, _ := v.small(fileCentralPub)
	pub, err := decodeKeyFile(pubB, ed25519.PublicKeySize)
	if err != nil {
		return v.fail(name, "central.pub: %v", err)
	}
	sigB, _ := v.small(fileCentralSig)
	sig, err := decodeKeyFile(sigB, ed25519.SignatureSize)
	if err != nil {
		return v.fail(name, "%s: %v", fileCentralSig, err)
	}
	v.report.CentralKey = Fingerprint(pub)
	pinned := v.opts.CentralKey != nil || len(v.opts.Keyring) > 0
	trusted := v.opts.CentralKey != nil && bytes.Equal(pub, v.opts.CentralKey)
	for i, k := range v.opts.Keyring {
		if !trusted && bytes.Equal(pub, k.Key) {
			trusted, v.period = true, &v.opts.Keyring[i]
		}
	}
	if pinned && !trusted {
		return v.fail(name, "central.pub %s (%s) is not a pinned central key: the signer is unknown", plume.EncodeKey(pub), Fingerprint(pub))
	}
	tm, _ := v.small(fileTagManifest)
	if !ed25519.Verify(pub, tm, sig) {
		return v.fail(name, "signature of %s does not verify with %s", fileTagManifest, plume.EncodeKey(pub))
	}
	v.report.Pinned = pinned
	if pinned {
		v.pass(name, "verifies with the pinned central key %s (%s)", plume.EncodeKey(pub), Fingerprint(pub))
	} else {
		v.pass(name, "verifies with the package's own central.pub %s (%s), which is NOT pinned: the signer is unknown", plume.EncodeKey(pub), Fingerprint(pub))
	}
	return nil
}

func (v *verifier) checkPayloadManifest() error {
	const name = "payload manifest"
	b, _ := v.small(fileManifest)
	listed, _, err := parseManifest(b)
	if err != nil {
		return v.fail(name, "%v", err)
	}
	for p, want := range listed {
		e, ok := v.files[p]
		switch {
		case !strings.HasPrefix(p, "data/"):
			return v.fail(name, "lists %s, which is outside data/", truncate(p))
		case !ok:
			return v.fail(name, "lists %s, which is missing", truncate(p))
		case e.sum != want:
			return v.fail(name, "%s has sha256 %s, manifest says %s", p, e.sum, want)
		}
	}
	for p := range v.files {
		if strings.HasPrefix(p, "data/") && listed[p] == "" {
			return v.fail(name, "payload file %s is not listed", truncate(p))
		}
	}
	v.pass(name, "%d payload files match", len(listed))
	return nil
}

func parseBagInfo(b []byte) (map[string]string, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not UTF-8")
	}
	out := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		k, val, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("line %d is not \"Label: value\"", i+1)
		}
		if _, dup := out[k]; !dup {
			out[k] = strings.TrimSpace(val)
		}
	}
	return out, nil
}

func (v *verifier) checkBagInfo() error {
	const name = "bag-info"
	b, _ := v.small(fileBagInfo)
	info, err := parseBagInfo(b)
	if err != nil {
		return v.fail(name, "%v", err)
	}
	var octets int64
	count := 0
	for p, e := range v.files {
		if strings.HasPrefix(p, "data/") {
			octets += e.size
			count++
		}
	}
	want := fmt.Sprintf("%d.%d", octets, count)
	if got := info["Payload-Oxum"]; got != want {
		return v.fail(name, "Payload-Oxum %q, payload is %s", got, want)
	}
	if got := info["External-Identifier"]; got != v.root {
		return v.fail(name, "External-Identifier %q, bag directory is %q", got, v.root)
	}
	for _, k := range []string{"Source-Organization", "Bagging-Date", "Plume-Station", "Plume-Evidence-ID", "Plume-Case-ID"} {
		if info[k] == "" {
			return v.fail(name, "%s is missing", k)
		}
	}
	v.pass(name, "Payload-Oxum %s, case %s, from %s", want, v.root, info["Source-Organization"])
	return nil
}

func (v *verifier) checkStationSignature() error {
	const name = "station signature"
	pubB, _ := v.small(fileStationPub)
	pub, err := decodeKeyFile(pubB, ed25519.PublicKeySize)
	if err != nil {
		return v.fail(name, "station.pub: %v", err)
	}
	sigB, _ := v.small(fileStationSig)
	sig, err := decodeKeyFile(sigB, ed25519.SignatureSize)
	if err != nil {
		return v.fail(name, "manifest.sig: %v", err)
	}
	body, _ := v.small(fileEvidence)
	if !plume.VerifyManifest(pub, body, sig) {
		return v.fail(name, "manifest.json is not signed by station key %s", plume.EncodeKey(pub))
	}
	m, err := plume.DecodeManifest(body)
	if err != nil {
		return v.fail(name, "manifest.json: %s", plume.ErrorMessage(err))
	}
	v.pass(name, "manifest %s signed by station %s at capture (key %s)", m.ID, m.Station, plume.EncodeKey(pub))

	const media = "media"
	for _, md := range m.Media {
		e, ok := v.files[dirMedia+md.Name]
		switch {
		case !ok:
			return v.fail(media, "%s listed in the signed manifest is missing", md.Name)
		case e.sum != md.SHA256 || e.size != md.Size:
			return v.fail(media, "%s is %d bytes with sha256 %s; the signed manifest lists %d bytes, %s", md.Name, e.size, e.sum, md.Size, md.SHA256)
		}
	}
	for p := range v.files {
		if strings.HasPrefix(p, dirMedia) && !slicesContainsName(m.Media, strings.TrimPrefix(p, dirMedia)) {
			return v.fail(media, "%s is not in the signed manifest", truncate(p))
		}
	}
	v.pass(media, "%d media items match the signed manifest", len(m.Media))
	return nil
}

func slicesContainsName(ms []plume.MediaRef, n string) bool {
	for _, m := range ms {
		if m.Name == n {
			return true
		}
	}
	return false
}

func (v *verifier) checkCase() error {
	const name = "case.json"
	b, _ := v.small(fileCase)
	var cf CaseFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return v.fail(name, "not valid JSON: %v", err)
	}
	if cf.Schema != CaseSchema {
		return v.fail(name, "schema %q, want %q", cf.Schema, CaseSchema)
	}
	if cf.Case == nil || cf.Case.Number != v.root {
		return v.fail(name, "case number does not match the bag directory %q", v.root)
	}
	body, _ := v.small(fileEvidence)
	var m plume.Manifest
	_ = json.Unmarshal(body, &m) // decoded and validated by the station check
	pubB, _ := v.small(fileStationPub)
	switch {
	case cf.Case.EvidenceID != m.ID || cf.Evidence.ID != m.ID:
		return v.fail(name, "evidence %s, the signed manifest is %s", cf.Case.EvidenceID, m.ID)
	case cf.Case.Station != m.Station || cf.Station.ID != m.Station:
		return v.fail(name, "station %s, the signed manifest is from %s", cf.Case.Station, m.Station)
	case cf.Evidence.ManifestSHA256 != sum(body):
		return v.fail(name, "manifest_sha256 does not match manifest.json")
	case cf.Station.PublicKey != strings.TrimSpace(string(pubB)):
		return v.fail(name, "station public key does not match station.pub")
	case cf.Violation.Code != ViolationCode:
		return v.fail(name, "violation code %q, want %s", cf.Violation.Code, ViolationCode)
	case v.period != nil && !v.period.Covers(cf.BuiltAt):
		return v.fail(name, "built at %s, outside the period of central key %s in the keyring", cf.BuiltAt.Format(time.RFC3339), Fingerprint(v.period.Key))
	}
	v.pass(name, "%s, case %s, violation %s", CaseSchema, cf.Case.Number, cf.Violation.Code)
	return nil
}

func (v *verifier) checkCustody() error {
	const name = "custody chain"
	b, _ := v.small(fileCustody)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return v.fail(name, "custody.jsonl is empty or lacks its final newline")
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	prev := central.CustodyGenesis
	var actions []string
	for i, line := range lines {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var e central.CustodyEntry
		if err := dec.Decode(&e); err != nil {
			return v.fail(name, "entry %d: %v", i+1, err)
		}
		if dec.InputOffset() != int64(len(line)) {
			return v.fail(name, "entry %d: trailing data after the JSON object", i+1)
		}
		if e.Seq != int64(i+1) {
			return v.fail(name, "entry %d has seq %d", i+1, e.Seq)
		}
		if e.PrevSHA256 != prev {
			return v.fail(name, "entry %d (%s) does not chain to entry %d: prev_sha256 %s, want %s", i+1, e.Action, i, e.PrevSHA256, prev)
		}
		prev = central.CustodyHash([]byte(line))
		actions = append(actions, e.Action)
	}
	if actions[0] != central.ActionCaptured {
		return v.fail(name, "first entry is %q, want %q", actions[0], central.ActionCaptured)
	}
	v.pass(name, "%d entries chained: %s", len(lines), strings.Join(actions, " → "))
	return nil
}

// String lists the checks one per line, for people.
func (r *Report) String() string {
	var b strings.Builder
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s %-18s %s\n", mark, c.Name, c.Detail)
	}
	return b.String()
}
