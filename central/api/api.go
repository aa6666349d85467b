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
	"strconv"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/export"
	"github.com/plume-emissions/plume/central/ingest"
	"github.com/plume-emissions/plume/central/metrics"
	"github.com/plume-emissions/plume/central/ops"
	"github.com/plume-emissions/plume/central/review"
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

	// Auth authenticates officers for the read API and review actions
	// (session cookie or bearer token): every read needs one, whatever
	// the address and however many officers exist. Nil (handler unit
	// tests of ingest only) reads as an all-stations auditor and refuses
	// review actions; the server always sets it.
	Auth *auth.Manager
	// Review changes cases for officers and takes police dispositions.
	Review *review.Service
	// PoliceSecret authenticates the police disposition callback
	// (central/export/POLICE-CONTRACT.md); empty disables the callback.
	PoliceSecret []byte
	// Ops serves heartbeats, remote configuration and alerts (ops.go);
	// nil leaves those endpoints out.
	Ops *ops.Service
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
	h.mux.HandleFunc("POST /api/v1/cases/{id}/{action}", h.caseAction)
	h.mux.HandleFunc("POST /api/v1/police/dispositions", h.disposition)
	h.mux.HandleFunc("GET /healthz", h.healthz)
	if cfg.Ops != nil {
		h.registerOps()
	}
	h.mux.Handle("GET /metrics", h.signedIn(central.PermDashboard, cfg.Metrics.Handler()))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, plume.Errorf(plume.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return h
}

// signedIn serves next only to an officer (session or bearer token) who
// holds perm: /metrics is for the bureau's monitoring, which scrapes it
// with a service account's token (an auditor's), not for anyone.
func (h *Handler) signedIn(perm central.Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.cfg.Auth != nil {
			p, err := h.cfg.Auth.Authenticate(r)
			if err != nil {
				h.writeError(w, r, err)
				return
			}
			if !p.Officer.Can(perm) {
				h.writeError(w, r, plume.Errorf(plume.EFORBIDDEN, "your role may not read this"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP implements http.Handler.
// Every response carries central's time to the millisecond in Plume-Time,
// for the stations' clock discipline.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(plume.HeaderTime, h.cfg.Now().UTC().Format(plume.TimeFormat))
	h.mux.ServeHTTP(w, r)
}

// Status returns the HTTP status and plume code of err: the one mapping of
// coded errors to statuses, used by the JSON API and the web pages alike.
// Errors without a known code are internal.
func Status(err error) (int, string) {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return http.StatusRequestEntityTooLarge, plume.ETOOLARGE
	}
	code := plume.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		return http.StatusInternalServerError, plume.EINTERNAL
	}
	return status, code
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
	status, code := Status(err)
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
	o, err := h.reader(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	all, err := h.cfg.Store.Stations(r.Context())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	sts := []*central.Station{}
	for _, st := range all {
		if o.Sees(st.ID) {
			sts = append(sts, st)
		}
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"stations": sts})
}

func (h *Handler) getStation(w http.ResponseWriter, r *http.Request) {
	o, err := h.reader(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	id := plume.StationID(r.PathValue("id"))
	if err := id.Validate(); err != nil {
		h.writeError(w, r, err)
		return
	}
	st, err := h.cfg.Store.Station(r.Context(), id)
	if errors.Is(err, central.ErrNotFound) || (err == nil && !o.Sees(id)) {
		err = plume.Errorf(plume.ENOTFOUND, "no station %s", id)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, st)
}

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
	o, err := h.reader(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := central.PassFilter{Outcome: plume.Outcome(q.Get("outcome")), Cursor: q.Get("cursor")}
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
	f.Stations = o.Scope(f.Station)
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
	o, err := h.reader(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	f, err := central.ParseCaseFilter(r.URL.Query(), central.StatsZone, "")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	o.ScopeCases(&f)
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

// lookupCase returns the path's case if the officer may see it. A case of
// another station is answered exactly like a missing one.
func (h *Handler) lookupCase(r *http.Request) (*central.Case, error) {
	o, err := h.reader(r)
	if err != nil {
		return nil, err
	}
	id := plume.CaseID(r.PathValue("id"))
	if len(id) == 0 || len(id) > 64 {
		return nil, plume.Errorf(plume.ENOTFOUND, "no case %q", id)
	}
	c, err := h.cfg.Store.Case(r.Context(), id)
	if errors.Is(err, central.ErrNotFound) || (err == nil && !o.Sees(c.Station)) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no case %s", id)
	}
	return c, err
}

// allStations is the reader of an API configured without officer
// authentication (Config.Auth nil; never the server's).
var allStations = &central.Officer{Username: "anonymous", Role: central.RoleAuditor}

// reader returns the officer a read request acts as: the session's or
// token's officer, who must hold PermReadCases.
func (h *Handler) reader(r *http.Request) (*central.Officer, error) {
	if h.cfg.Auth == nil {
		return allStations, nil
	}
	p, err := h.cfg.Auth.Authenticate(r)
	if err != nil {
		return nil, err
	}
	if !p.Officer.Can(central.PermReadCases) {
		return nil, plume.Errorf(plume.EFORBIDDEN, "your role may not read cases")
	}
	return p.Officer, nil
}

// maxActionBody bounds review action and callback bodies.
const maxActionBody = 64 << 10

type actionRequest struct {
	Plate   string            `json:"plate"`
	Colour  plume.PlateColour `json:"colour"`
	Reason  string            `json:"reason"`
	Comment string            `json:"comment"`
}

// caseAction runs a review action for an officer: approve, reject, plate,
// confirm, return, retry-export. Browser sessions must send the CSRF token
// in X-CSRF-Token.
func (h *Handler) caseAction(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Auth == nil || h.cfg.Review == nil {
		h.writeError(w, r, plume.Errorf(plume.ENOTFOUND, "review actions are not enabled"))
		return
	}
	p, err := h.cfg.Auth.Authenticate(r)
	if err == nil {
		err = auth.CheckCSRF(r, p)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var req actionRequest
	if r.ContentLength > maxActionBody {
		h.writeError(w, r, plume.Errorf(plume.ETOOLARGE, "request body larger than %d bytes", maxActionBody))
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxActionBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		var maxErr *http.MaxBytesError
		if !errors.As(err, &maxErr) {
			err = plume.Errorf(plume.EINVALID, "body: %v", err)
		}
		h.writeError(w, r, err)
		return
	}
	a := review.Actor{Officer: p.Officer, IP: auth.ClientIP(r), Token: p.Session.TokenID()}
	id := plume.CaseID(r.PathValue("id"))
	var c *central.Case
	switch r.PathValue("action") {
	case "approve":
		c, err = h.cfg.Review.Approve(r.Context(), a, id, req.Comment)
	case "reject":
		c, err = h.cfg.Review.Reject(r.Context(), a, id, req.Reason, req.Comment)
	case "plate":
		c, err = h.cfg.Review.CorrectPlate(r.Context(), a, id, req.Plate, req.Colour, req.Comment)
	case "confirm":
		c, err = h.cfg.Review.Confirm(r.Context(), a, id, req.Comment)
	case "return":
		c, err = h.cfg.Review.Return(r.Context(), a, id, req.Comment)
	case "retry-export":
		c, err = h.cfg.Review.RetryExport(r.Context(), a, id)
	default:
		err = plume.Errorf(plume.ENOTFOUND, "no such action %q", r.PathValue("action"))
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, c)
}

type dispositionRequest struct {
	CaseNumber string                     `json:"case_number"`
	Receipt    string                     `json:"receipt"`
	Outcome    central.DispositionOutcome `json:"outcome"`
	Reason     string                     `json:"reason"`
	Reference  string                     `json:"reference"`
	DecidedAt  time.Time                  `json:"decided_at"`
}

// caseIDOfNumber returns the case ID a case number names
// (PLM-<date>-<seq>), or "" when it is malformed.
func caseIDOfNumber(number string) plume.CaseID {
	i := strings.LastIndexByte(number, '-')
	if !strings.HasPrefix(number, "PLM-") || i < 0 || len(number) > 64 {
		return ""
	}
	seq, err := strconv.ParseUint(number[i+1:], 10, 64)
	if err != nil || seq == 0 {
		return ""
	}
	return central.FormatCaseID(seq)
}

// disposition is the police callback (POLICE-CONTRACT.md §2).
func (h *Handler) disposition(w http.ResponseWriter, r *http.Request) {
	if len(h.cfg.PoliceSecret) == 0 || h.cfg.Review == nil {
		h.writeError(w, r, plume.Errorf(plume.ENOTFOUND, "the police callback is not configured"))
		return
	}
	if r.ContentLength > maxActionBody {
		h.writeError(w, r, plume.Errorf(plume.ETOOLARGE, "request body larger than %d bytes", maxActionBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxActionBody))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	digest := plume.ContentSHA256(body)
	if digest != r.Header.Get(export.HeaderContentSHA256) {
		h.writeError(w, r, plume.Errorf(plume.EUNAUTHORIZED, "the body does not match %s", export.HeaderContentSHA256))
		return
	}
	if err := export.Verify(h.cfg.PoliceSecret, r.Method, r.URL.EscapedPath(), r.Header.Get(export.HeaderDate), digest, r.Header.Get(export.HeaderAuthorization), h.cfg.Now()); err != nil {
		h.writeError(w, r, err)
		return
	}
	var req dispositionRequest
	if err := json.Unmarshal(body, &req); err != nil {
		h.writeError(w, r, plume.Errorf(plume.EINVALID, "body: %v", err))
		return
	}
	id := caseIDOfNumber(req.CaseNumber)
	c, err := h.cfg.Store.Case(r.Context(), id)
	if id == "" || errors.Is(err, central.ErrNotFound) || (err == nil && c.Number != req.CaseNumber) {
		h.writeError(w, r, plume.Errorf(plume.ENOTFOUND, "no case %q", req.CaseNumber))
		return
	} else if err != nil {
		h.writeError(w, r, err)
		return
	}
	if c.Export == nil || c.Export.Receipt == "" || c.Export.Receipt != req.Receipt {
		h.writeError(w, r, plume.Errorf(plume.ECONFLICT, "case %s was not exported with receipt %q", c.Number, req.Receipt))
		return
	}
	c, _, err = h.cfg.Review.Dispose(r.Context(), c.ID, central.Disposition{Outcome: req.Outcome, Reason: req.Reason, Reference: req.Reference, DecidedAt: req.DecidedAt.UTC()}, auth.ClientIP(r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"case_number": c.Number, "status": c.Status})
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
