package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/ops"
)

// maxHeartbeat bounds a heartbeat body.
const maxHeartbeat = 64 << 10

// registerOps adds the station-operations endpoints (PROTOCOL.md:
// heartbeats and remote configuration; the officers' health and alert
// reads).
func (h *Handler) registerOps() {
	h.mux.HandleFunc("PUT /api/v1/stations/{station}/health/{seq}", h.putHealth)
	h.mux.HandleFunc("GET /api/v1/stations/{station}/config", h.getConfig)
	h.mux.HandleFunc("GET /api/v1/ops/stations", h.opsStations)
	h.mux.HandleFunc("GET /api/v1/ops/stations/{id}/health", h.opsHistory)
	h.mux.HandleFunc("PUT /api/v1/ops/stations/{id}/location", h.putLocation)
	h.mux.HandleFunc("GET /api/v1/alerts", h.listAlerts)
	h.mux.HandleFunc("GET /api/v1/alerts/{id...}", h.getAlert)
	h.mux.HandleFunc("POST /api/v1/alert-actions/{action}/{id...}", h.alertAction)
}

func (h *Handler) putHealth(w http.ResponseWriter, r *http.Request) {
	st, digest, err := h.authenticate(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body, err := readBody(w, r, maxHeartbeat, digest)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var hb plume.Heartbeat
	if err := dec.Decode(&hb); err != nil {
		h.writeError(w, r, plume.Errorf(plume.EINVALID, "heartbeat: %v", err))
		return
	}
	if seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64); err != nil || seq != hb.Seq {
		h.writeError(w, r, plume.Errorf(plume.EINVALID, "the path's sequence must be the heartbeat's seq"))
		return
	}
	reply, err := h.cfg.Ops.Heartbeat(r.Context(), st, &hb)
	if errors.Is(err, ops.ErrStaleHeartbeat) {
		h.cfg.Metrics.Ingest("heartbeat", "replayed", 1)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, reply)
}

// ConfigResponse is the body of GET /api/v1/stations/{station}/config.
type ConfigResponse struct {
	Version int    `json:"version"`
	Hash    string `json:"hash"`
	Body    []byte `json:"body"` // base64 in JSON
}

func (h *Handler) getConfig(w http.ResponseWriter, r *http.Request) {
	st, digest, err := h.authenticate(r)
	if err == nil && digest != plume.ContentSHA256(nil) {
		err = plume.Errorf(plume.EUNAUTHORIZED, "a GET has no body; %s must be the SHA-256 of nothing", plume.HeaderContentSHA256)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	dc, err := h.cfg.Ops.DesiredConfig(r.Context(), st.ID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, ConfigResponse{Version: dc.Version, Hash: dc.Hash, Body: dc.Body})
}

func (h *Handler) opsStations(w http.ResponseWriter, r *http.Request) {
	o, err := h.reader(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	vs, err := h.cfg.Ops.Stations(r.Context(), o)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if vs == nil {
		vs = []ops.StationView{}
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"stations": vs})
}

func (h *Handler) opsHistory(w http.ResponseWriter, r *http.Request) {
	o, err := h.reader(r)
	if err == nil {
		err = plume.StationID(r.PathValue("id")).Validate()
	}
	var limit int
	if err == nil {
		limit, err = pageLimit(r)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	st, hist, err := h.cfg.Ops.StationHistory(r.Context(), o, plume.StationID(r.PathValue("id")), limit)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if hist == nil {
		hist = []*central.StationHealth{}
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"station": st, "history": hist})
}

func (h *Handler) listAlerts(w http.ResponseWriter, r *http.Request) {
	o, err := h.reader(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := central.AlertFilter{Source: q.Get("source"), State: central.AlertState(q.Get("state"))}
	if f.Station, err = stationParam(r); err == nil {
		f.Limit, err = pageLimit(r)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	as, err := h.cfg.Ops.Alerts(r.Context(), o, f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if as == nil {
		as = []*central.Alert{}
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"alerts": as})
}

func (h *Handler) getAlert(w http.ResponseWriter, r *http.Request) {
	o, err := h.reader(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	a, err := h.cfg.Ops.Alert(r.Context(), o, r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, a)
}

// alertAction acknowledges an alert or escalates it to an investigation
// (body {"comment": "…"}); browser sessions send X-CSRF-Token.
func (h *Handler) alertAction(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Auth == nil {
		h.writeError(w, r, plume.Errorf(plume.ENOTFOUND, "alert actions are not enabled"))
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
	a, err := h.cfg.Ops.Act(r.Context(), p.Officer, auth.ClientIP(r), r.PathValue("id"), r.PathValue("action"), req.Comment)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, a)
}

// LocationRequest is the body of PUT /api/v1/ops/stations/{id}/location.
type LocationRequest struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

// putLocation places a station (administrators; browser sessions send
// X-CSRF-Token), for the cloned-plate speed check.
func (h *Handler) putLocation(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Auth == nil {
		h.writeError(w, r, plume.Errorf(plume.ENOTFOUND, "station administration is not enabled"))
		return
	}
	p, err := h.cfg.Auth.Authenticate(r)
	if err == nil {
		err = auth.CheckCSRF(r, p)
	}
	if err == nil {
		err = plume.StationID(r.PathValue("id")).Validate()
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var req LocationRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxActionBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var maxErr *http.MaxBytesError
		if !errors.As(err, &maxErr) {
			err = plume.Errorf(plume.EINVALID, "body: %v", err)
		}
		h.writeError(w, r, err)
		return
	}
	st, err := h.cfg.Ops.SetLocation(r.Context(), p.Officer, auth.ClientIP(r), plume.StationID(r.PathValue("id")), req.Latitude, req.Longitude)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, st)
}
