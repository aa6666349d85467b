package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/ingest"
	"github.com/plume-emissions/plume/central/metrics"
)

// Config configures the API handler.
type Config struct {
	Store   central.Store
	Blobs   central.BlobStore
	Ingest  *ingest.Service
	Metrics *metrics.Metrics // may be nil
	Logger  *slog.Logger
	Now     func() time.Time
	// AllowedSkew is how far Plume-Date may be from Now (default
	// plume.DefaultMaxClockSkew).
	AllowedSkew time.Duration
}

// Handler serves the API.
type Handler struct {
	cfg    Config
	logger *slog.Logger
	mux    *http.ServeMux
}

// New returns the API handler.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AllowedSkew <= 0 {
		cfg.AllowedSkew = plume.DefaultMaxClockSkew
	}
	h := &Handler{cfg: cfg, logger: cfg.Logger.With("component", "api"), mux: http.NewServeMux()}
	h.mux.HandleFunc("PUT /api/v1/stations/{station}/blobs/{sha256}", h.putBlob)
	h.mux.HandleFunc("PUT /api/v1/stations/{station}/evidence/{id}", h.putEvidence)
	h.mux.HandleFunc("PUT /api/v1/stations/{station}/records/{batch}", h.putRecords)
	h.mux.HandleFunc("GET /api/v1/stations", h.listStations)
	h.mux.HandleFunc("GET /api/v1/stations/{id}", h.getStation)
	h.mux.HandleFunc("GET /api/v1/passes", h.listPasses)
	h.mux.HandleFunc("GET /api/v1/cases", h.listCases)
	h.mux.HandleFunc("GET /api/v1/cases/{id}", h.getCase)
	h.mux.HandleFunc("GET /api/v1/cases/{id}/package", h.getPackage)
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.Handle("GET /metrics", cfg.Metrics.Handler())
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, plume.Errorf(plume.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// statusOf maps plume error codes to HTTP statuses: the one place.
var statusOf = map[string]int{
	plume.EINVALID:      http.StatusBadRequest,
	plume.EUNAUTHORIZED: http.StatusUnauthorized,
	plume.EFORBIDDEN:    http.StatusForbidden,
	plume.ENOTFOUND:     http.StatusNotFound,
	plume.ECONFLICT:     http.StatusConflict,
	plume.EMISSINGMEDIA: http.StatusConflict,
	plume.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	plume.EUNAVAILABLE:  http.StatusServiceUnavailable,
	plume.EINTERNAL:     http.StatusInternalServerError,
}

type errorBody struct {
	Error   errorDetail `json:"error"`
	Missing []string    `json:"missing,omitempty"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers err as a JSON error. Errors without a plume code are
// internal: they are logged in full and shown as a generic message.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		err = plume.Errorf(plume.ETOOLARGE, "request body larger than %d bytes", maxErr.Limit)
	} else if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		err = plume.Errorf(plume.EUNAVAILABLE, "request cancelled")
	}
	code := plume.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		code, status = plume.EINTERNAL, http.StatusInternalServerError
	}
	if code == plume.EINTERNAL {
		h.logger.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		h.logger.Info("request refused", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	h.cfg.Metrics.APIError(code)
	body := errorBody{Error: errorDetail{Code: code, Message: plume.ErrorMessage(err)}}
	var mm *central.MissingMediaError
	if errors.As(err, &mm) {
		body.Missing = mm.Missing
	}
	if code == plume.EUNAVAILABLE {
		w.Header().Set("Retry-After", "5")
	}
	h.writeJSON(w, status, body)
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		h.logger.Debug("write response", "err", err)
	}
}

// authenticate checks a station request's signature headers and that the
// station may act on the path's station. It does not read the body: the
// caller checks the body against Plume-Content-SHA256 (the returned
// digest).
func (h *Handler) authenticate(r *http.Request) (*central.Station, string, error) {
	hdr := r.Header
	id := plume.StationID(hdr.Get(plume.HeaderStation))
	date, digest, sig := hdr.Get(plume.HeaderDate), hdr.Get(plume.HeaderContentSHA256), hdr.Get(plume.HeaderSignature)
	if id == "" || date == "" || digest == "" || sig == "" {
		return nil, "", plume.Errorf(plume.EUNAUTHORIZED, "missing %s, %s, %s or %s header", plume.HeaderStation, plume.HeaderDate, plume.HeaderContentSHA256, plume.HeaderSignature)
	}
	if id.Validate() != nil {
		return nil, "", plume.Errorf(plume.EUNAUTHORIZED, "unknown or revoked station")
	}
	st, err := h.cfg.Store.Station(r.Context(), id)
	if errors.Is(err, central.ErrNotFound) || (err == nil && st.Revoked) {
		return nil, "", plume.Errorf(plume.EUNAUTHORIZED, "unknown or revoked station")
	} else if err != nil {
		return nil, "", err
	}
	t, err := plume.ParseRequestDate(date)
	if err != nil {
		return nil, "", err
	}
	if skew := h.cfg.Now().Sub(t); skew > h.cfg.AllowedSkew || -skew > h.cfg.AllowedSkew {
		return nil, "", plume.Errorf(plume.EUNAUTHORIZED, "%s is %s away from central's clock, more than the allowed %s", plume.HeaderDate, skew.Abs().Round(time.Second), h.cfg.AllowedSkew)
	}
	if !plume.ValidSHA256(digest) {
		return nil, "", plume.Errorf(plume.EUNAUTHORIZED, "%s must be a lowercase hex sha256", plume.HeaderContentSHA256)
	}
	if !plume.VerifyRequest(st.PublicKey, r.Method, r.URL.EscapedPath(), date, digest, sig) {
		return nil, "", plume.Errorf(plume.EUNAUTHORIZED, "request signature does not verify")
	}
	if path := plume.StationID(r.PathValue("station")); path != st.ID {
		return nil, "", plume.Errorf(plume.EFORBIDDEN, "station %s may not write as station %s", st.ID, path)
	}
	return st, digest, nil
}

// readBody reads a small body (at most limit bytes) and checks it against
// the signed digest.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, digest string) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, plume.Errorf(plume.ETOOLARGE, "request body larger than %d bytes", limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, err
		}
		return nil, plume.Errorf(plume.EINVALID, "read request body: %v", err)
	}
	if plume.ContentSHA256(b) != digest {
		return nil, plume.Errorf(plume.EUNAUTHORIZED, "the body does not match %s", plume.HeaderContentSHA256)
	}
	return b, nil
}

type blobResponse struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func (h *Handler) putBlob(w http.ResponseWriter, r *http.Request) {
	st, digest, err := h.authenticate(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	sum := r.PathValue("sha256")
	if sum != digest {
		h.writeError(w, r, plume.Errorf(plume.EINVALID, "the path's sha256 differs from %s", plume.HeaderContentSHA256))
		return
	}
	if r.ContentLength > plume.MaxMediaSize {
		h.writeError(w, r, plume.Errorf(plume.ETOOLARGE, "media of %d bytes exceeds %d", r.ContentLength, plume.MaxMediaSize))
		return
	}
	body := http.MaxBytesReader(w, r.Body, plume.MaxMediaSize)
	created, err := h.cfg.Ingest.PutBlob(r.Context(), st, sum, body, r.ContentLength)
	switch {
	case errors.Is(err, central.ErrDigestMismatch):
		err = plume.Errorf(plume.EUNAUTHORIZED, "the body does not match %s", plume.HeaderContentSHA256)
	case errors.Is(err, central.ErrSizeMismatch), errors.Is(err, io.ErrUnexpectedEOF):
		err = plume.Errorf(plume.EINVALID, "the body is shorter than Content-Length")
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.writeJSON(w, status, blobResponse{SHA256: sum, Size: r.ContentLength})
}

type evidenceResponse struct {
	ID   plume.EvidenceID `json:"id"`
	Case plume.CaseID     `json:"case"`
}

func (h *Handler) putEvidence(w http.ResponseWriter, r *http.Request) {
	st, digest, err := h.authenticate(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	id := plume.EvidenceID(r.PathValue("id"))
	if key := r.Header.Get(plume.HeaderIdempotencyKey); key != "" && key != string(id) {
		h.writeError(w, r, plume.Errorf(plume.EINVALID, "%s must be the evidence ID", plume.HeaderIdempotencyKey))
		return
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(r.Header.Get(plume.HeaderManifestSignature))
	if err != nil || len(sig) == 0 {
		h.writeError(w, r, plume.Errorf(plume.EINVALID, "%s must be the base64 capture signature", plume.HeaderManifestSignature))
		return
	}
	body, err := readBody(w, r, ingest.MaxManifestSize, digest)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ev, created, err := h.cfg.Ingest.PutEvidence(r.Context(), st, id, body, sig)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.writeJSON(w, status, evidenceResponse{ID: ev.ID, Case: ev.CaseID})
}

type recordsResponse struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

func (h *Handler) putRecords(w http.ResponseWriter, r *http.Request) {
	st, digest, err := h.authenticate(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, err := readBody(w, r, ingest.MaxBatchSize, digest)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	acc, dup, err := h.cfg.Ingest.PutRecords(r.Context(), st, r.PathValue("batch"), body)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, recordsResponse{Accepted: acc, Duplicates: dup})
}

func (h *Handler) listStations(w http.ResponseWriter, r *http.Request) {
	sts, err := h.cfg.Store.Stations(r.Context())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if sts == nil {
		sts = []*central.Station{}
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"stations": sts})
}

func (h *Handler) getStation(w http.ResponseWriter, r *http.Request) {
	id := plume.StationID(r.PathValue("id"))
	if err := id.Validate(); err != nil {
		h.writeError(w, r, err)
		return
	}
	st, err := h.cfg.Store.Station(r.Context(), id)
	if errors.Is(err, central.ErrNotFound) {
		err = plume.Errorf(plume.ENOTFOUND, "no station %s", id)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, st)
}

var statusPattern = regexp.MustCompile(`^[a-z_]{1,32}$`)

func pageLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, plume.Errorf(plume.EINVALID, "limit must be a positive integer")
	}
	return n, nil
}

func stationParam(r *http.Request) (plume.StationID, error) {
	id := plume.StationID(r.URL.Query().Get("station"))
	if id == "" {
		return "", nil
	}
	return id, id.Validate()
}

func (h *Handler) listPasses(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := central.PassFilter{Outcome: plume.Outcome(q.Get("outcome")), Cursor: q.Get("cursor")}
	var err error
	if f.Station, err = stationParam(r); err == nil {
		f.Limit, err = pageLimit(r)
	}
	switch f.Outcome {
	case "", plume.OutcomePass, plume.OutcomeExceed, plume.OutcomeInvalid:
	default:
		err = plume.Errorf(plume.EINVALID, "outcome must be pass, exceed or invalid")
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	rows, next, err := h.cfg.Store.Passes(r.Context(), f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if rows == nil {
		rows = []*central.PassRow{}
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"passes": rows, "next_cursor": next})
}

func (h *Handler) listCases(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := central.CaseFilter{Status: central.CaseStatus(q.Get("status")), Cursor: q.Get("cursor")}
	var err error
	if f.Station, err = stationParam(r); err == nil {
		f.Limit, err = pageLimit(r)
	}
	if err == nil && f.Status != "" && !statusPattern.MatchString(string(f.Status)) {
		err = plume.Errorf(plume.EINVALID, "bad status %q", f.Status)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	cases, next, err := h.cfg.Store.Cases(r.Context(), f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if cases == nil {
		cases = []*central.Case{}
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"cases": cases, "next_cursor": next})
}

func (h *Handler) lookupCase(r *http.Request) (*central.Case, error) {
	id := plume.CaseID(r.PathValue("id"))
	if len(id) == 0 || len(id) > 64 {
		return nil, plume.Errorf(plume.ENOTFOUND, "no case %q", id)
	}
	c, err := h.cfg.Store.Case(r.Context(), id)
	if errors.Is(err, central.ErrNotFound) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no case %s", id)
	}
	return c, err
}

// CaseView is a case as the read API shows it.
type CaseView struct {
	*central.Case
	Custody    []central.CustodyEntry `json:"custody"`
	PackageURL string                 `json:"package_url,omitempty"`
}

func (h *Handler) getCase(w http.ResponseWriter, r *http.Request) {
	c, err := h.lookupCase(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	log, err := h.cfg.Store.Custody(r.Context(), c.ID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v := CaseView{Case: c, Custody: log}
	if c.PackageSHA256 != "" {
		v.PackageURL = fmt.Sprintf("/api/v1/cases/%s/package", c.ID)
	}
	h.writeJSON(w, http.StatusOK, v)
}

func (h *Handler) getPackage(w http.ResponseWriter, r *http.Request) {
	c, err := h.lookupCase(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if c.PackageSHA256 == "" {
		h.writeError(w, r, plume.Errorf(plume.ENOTFOUND, "the package of case %s is not built yet", c.Number))
		return
	}
	rc, _, err := h.cfg.Blobs.Open(r.Context(), c.PackageSHA256)
	if err != nil {
		h.writeError(w, r, fmt.Errorf("package of case %s: %w", c.ID, asInternal(err)))
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.zip"`, c.Number))
	w.Header().Set("ETag", `"`+c.PackageSHA256+`"`)
	w.Header().Set("Plume-Package-SHA256", c.PackageSHA256)
	http.ServeContent(w, r, c.Number+".zip", c.PackageBuiltAt, rc)
}

// asInternal turns a coded error into a plain one: a package the case
// lists but the blob store lacks is central's fault, not the client's.
func asInternal(err error) error { return errors.New(err.Error()) }

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	if _, err := h.cfg.Store.Stats(r.Context()); err != nil {
		h.writeError(w, r, fmt.Errorf("health: %w", err))
		return
	}
	h.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
