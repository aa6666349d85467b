// Package live relays live-view signalling between officers' browsers and
// stations' edges, serves the live page, and optionally runs a TURN relay
// (pion/turn) with short-lived credentials.
//
// The edge dials out (it sits behind carrier NAT) and holds one WebSocket
// at GET /api/v1/stations/{station}/live, signed with its station key like
// every station request. An officer's page at /live/{station} opens a
// WebSocket at /live/{station}/ws; central checks the officer's right to
// the station, gives the socket one session ID, and relays offer, answer
// and ICE candidates between the two. Each side may only speak for its own
// sessions: a message naming another session or of a type that side may
// not send is refused and counted. Media flows edge → browser directly or
// through the relay, never through this package. It is pure Go: central
// builds with CGO_ENABLED=0.
package live

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Stations looks up enrolled stations; central.Store satisfies it.
type Stations interface {
	Station(ctx context.Context, id plume.StationID) (*central.Station, error)
}

// Config configures a Hub.
type Config struct {
	Stations   Stations
	Authorizer Authorizer
	// STUN lists stun: URLs given to both peers.
	STUN []string
	// TURN is the built-in relay, or nil.
	TURN *TURN
	// RelayOnly makes both peers use the relay only (needs TURN).
	RelayOnly bool
	// AllowedSkew bounds the edge's Plume-Date (default
	// plume.DefaultMaxClockSkew).
	AllowedSkew time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Hub is the signalling relay. It is an http.Handler for the routes in
// Patterns.
type Hub struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	mu      sync.Mutex
	edges   map[plume.StationID]*edgeConn
	viewers map[string]*viewer // by session
	// lastUpgrade is the signed Plume-Date of each station's last
	// accepted signalling upgrade: a new one must be later (replay).
	lastUpgrade map[plume.StationID]time.Time

	relayed  atomic.Int64
	refused  atomic.Int64
	replayed atomic.Int64
}

type edgeConn struct {
	station plume.StationID
	conn    *websocket.Conn
}

type viewer struct {
	session string
	station plume.StationID
	officer string
	conn    *websocket.Conn
}

// Patterns are the routes a Hub serves; central mounts each on its mux.
var Patterns = []string{
	"GET /api/v1/stations/{station}/live",
	"GET /live/{station}",
	"GET /live/{station}/ws",
}

// New returns a Hub.
func New(cfg Config) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AllowedSkew <= 0 {
		cfg.AllowedSkew = plume.DefaultMaxClockSkew
	}
	h := &Hub{cfg: cfg, log: cfg.Logger.With("component", "live"), mux: http.NewServeMux(),
		edges: map[plume.StationID]*edgeConn{}, viewers: map[string]*viewer{}, lastUpgrade: map[plume.StationID]time.Time{}}
	h.mux.HandleFunc(Patterns[0], h.serveEdge)
	h.mux.HandleFunc(Patterns[1], h.servePage)
	h.mux.HandleFunc(Patterns[2], h.serveViewer)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Online reports whether station's edge holds its signalling socket.
func (h *Hub) Online(station plume.StationID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.edges[station] != nil
}

// Stats counts the hub's connections and messages.
type Stats struct {
	Edges, Viewers   int
	Relayed, Refused int64
	Replayed         int64 // edge upgrades refused as replays (counted in Refused too)
}

// Stats returns a snapshot.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Edges: len(h.edges), Viewers: len(h.viewers), Relayed: h.relayed.Load(), Refused: h.refused.Load(), Replayed: h.replayed.Load()}
}

// Close closes every socket.
func (h *Hub) Close() {
	h.mu.Lock()
	var conns []*websocket.Conn
	for _, e := range h.edges {
		conns = append(conns, e.conn)
	}
	for _, v := range h.viewers {
		conns = append(conns, v.conn)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.Close(websocket.StatusGoingAway, "central shutting down")
	}
}

// authenticateEdge checks the station signature on the upgrade request, as
// central/api does for every station request (the body is empty).
func (h *Hub) authenticateEdge(r *http.Request) (plume.StationID, error) {
	hdr := r.Header
	id := plume.StationID(hdr.Get(plume.HeaderStation))
	date, digest, sig := hdr.Get(plume.HeaderDate), hdr.Get(plume.HeaderContentSHA256), hdr.Get(plume.HeaderSignature)
	if id == "" || date == "" || sig == "" || digest != plume.EmptySHA256 {
		return "", plume.Errorf(plume.EUNAUTHORIZED, "missing or bad station signature headers")
	}
	if id.Validate() != nil {
		return "", plume.Errorf(plume.EUNAUTHORIZED, "unknown or revoked station")
	}
	st, err := h.cfg.Stations.Station(r.Context(), id)
	if errors.Is(err, central.ErrNotFound) || (err == nil && st.Revoked) {
		return "", plume.Errorf(plume.EUNAUTHORIZED, "unknown or revoked station")
	} else if err != nil {
		return "", err
	}
	t, err := plume.ParseRequestDate(date)
	if err != nil {
		return "", err
	}
	if skew := h.cfg.Now().Sub(t); skew.Abs() > h.cfg.AllowedSkew {
		return "", plume.Errorf(plume.EUNAUTHORIZED, "%s too far from central's clock", plume.HeaderDate)
	}
	if !plume.VerifyRequest(st.PublicKey, r.Method, r.URL.EscapedPath(), date, digest, sig) {
		return "", plume.Errorf(plume.EUNAUTHORIZED, "request signature does not verify")
	}
	if plume.StationID(r.PathValue("station")) != id {
		return "", plume.Errorf(plume.EFORBIDDEN, "station %s may not signal as station %s", id, r.PathValue("station"))
	}
	// A signed upgrade is good for the whole clock-skew window, so a
	// captured one could be replayed to take over the station's
	// signalling: each must carry a later Plume-Date than the last one
	// accepted (dates have one-second steps; an edge reconnecting within
	// the same second is refused once and retries).
	h.mu.Lock()
	defer h.mu.Unlock()
	if !t.After(h.lastUpgrade[id]) {
		h.replayed.Add(1)
		h.log.Warn("edge upgrade refused: replayed or not newer than the last", "station", id, "date", date)
		return "", plume.Errorf(plume.EUNAUTHORIZED, "%s is not later than the last accepted upgrade (replayed?)", plume.HeaderDate)
	}
	h.lastUpgrade[id] = t
	return id, nil
}

func (h *Hub) serveEdge(w http.ResponseWriter, r *http.Request) {
	station, err := h.authenticateEdge(r)
	if err != nil {
		h.refused.Add(1)
		h.writeError(w, r, err)
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.log.Info("edge websocket accept", "station", station, "err", err)
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	e := &edgeConn{station: station, conn: conn}
	h.mu.Lock()
	old := h.edges[station]
	h.edges[station] = e
	h.mu.Unlock()
	if old != nil {
		old.conn.Close(websocket.StatusPolicyViolation, "replaced by a newer connection")
	}
	h.log.Info("edge connected", "station", station, "remote", r.RemoteAddr)
	h.tellViewers(station, plume.LiveSignal{Type: plume.LiveOnline, Online: true})

	ctx := r.Context()
	for {
		var m plume.LiveSignal
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			break
		}
		switch m.Type {
		case plume.LiveAnswer, plume.LiveCandidate, plume.LiveBye, plume.LiveError:
		default:
			h.refuseEdge(ctx, e, m, "an edge may not send "+m.Type)
			continue
		}
		h.mu.Lock()
		v := h.viewers[m.Session]
		h.mu.Unlock()
		if v == nil || v.station != station {
			// Either the viewer left, or the edge names a session of
			// another station: both are refused, the second is forged.
			h.refuseEdge(ctx, e, m, "unknown session")
			continue
		}
		h.send(ctx, v.conn, plume.LiveSignal{Type: m.Type, Session: m.Session, SDP: m.SDP, Candidate: m.Candidate, Camera: m.Camera, Error: m.Error})
		h.relayed.Add(1)
	}
	h.mu.Lock()
	current := h.edges[station] == e
	if current {
		delete(h.edges, station)
	}
	h.mu.Unlock()
	if current {
		h.log.Info("edge disconnected", "station", station)
		h.tellViewers(station, plume.LiveSignal{Type: plume.LiveOffline})
	}
}

func (h *Hub) refuseEdge(ctx context.Context, e *edgeConn, m plume.LiveSignal, why string) {
	h.refused.Add(1)
	h.log.Warn("edge signalling refused", "station", e.station, "type", m.Type, "session", m.Session, "reason", why)
	h.send(ctx, e.conn, plume.LiveSignal{Type: plume.LiveError, Session: m.Session, Error: why})
}

func (h *Hub) tellViewers(station plume.StationID, m plume.LiveSignal) {
	h.mu.Lock()
	var vs []*viewer
	for _, v := range h.viewers {
		if v.station == station {
			vs = append(vs, v)
		}
	}
	h.mu.Unlock()
	for _, v := range vs {
		m.Session = v.session
		h.send(context.Background(), v.conn, m)
	}
}

func (h *Hub) send(ctx context.Context, conn *websocket.Conn, m plume.LiveSignal) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, conn, m); err != nil {
		h.log.Debug("live signalling write", "err", err)
	}
}

// iceServers returns the ICE servers for one peer, with fresh TURN
// credentials in who's name.
func (h *Hub) iceServers(who string) []plume.LiveICEServer {
	var out []plume.LiveICEServer
	if len(h.cfg.STUN) > 0 {
		out = append(out, plume.LiveICEServer{URLs: h.cfg.STUN})
	}
	if h.cfg.TURN != nil {
		out = append(out, h.cfg.TURN.Credentials(who))
	}
	return out
}

func (h *Hub) authorizeOfficer(w http.ResponseWriter, r *http.Request) (plume.StationID, string, bool) {
	station := plume.StationID(r.PathValue("station"))
	if err := station.Validate(); err != nil {
		h.writeError(w, r, err)
		return "", "", false
	}
	officer, err := h.cfg.Authorizer.Authorize(r, station)
	if err != nil {
		h.refused.Add(1)
		h.writeError(w, r, err)
		return "", "", false
	}
	return station, officer, true
}

func (h *Hub) serveViewer(w http.ResponseWriter, r *http.Request) {
	station, officer, ok := h.authorizeOfficer(w, r)
	if !ok {
		return
	}
	// Accept checks that Origin matches Host: other sites cannot ride
	// the officer's cookie.
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.log.Info("viewer websocket accept", "station", station, "err", err)
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(256 << 10)
	v := &viewer{session: newSessionID(), station: station, officer: officer, conn: conn}
	h.mu.Lock()
	h.viewers[v.session] = v
	h.mu.Unlock()
	h.log.Info("viewer connected", "station", station, "officer", officer, "session", v.session)
	ctx := r.Context()
	h.send(ctx, conn, plume.LiveSignal{Type: plume.LiveConfig, Session: v.session, ICEServers: h.iceServers(officer),
		RelayOnly: h.cfg.RelayOnly, Online: h.Online(station)})

	for {
		var m plume.LiveSignal
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			break
		}
		switch m.Type {
		case plume.LiveOffer, plume.LiveCandidate, plume.LiveBye:
		default:
			h.refuseViewer(ctx, v, m, "a viewer may not send "+m.Type)
			continue
		}
		if m.Session != "" && m.Session != v.session {
			h.refuseViewer(ctx, v, m, "not your session")
			continue
		}
		out := plume.LiveSignal{Type: m.Type, Session: v.session, SDP: m.SDP, Candidate: m.Candidate, Camera: m.Camera}
		if m.Type == plume.LiveOffer {
			out.Officer = officer
			out.ICEServers = h.iceServers(string(station))
			out.RelayOnly = h.cfg.RelayOnly
		}
		if !h.toEdge(ctx, station, out) {
			h.send(ctx, conn, plume.LiveSignal{Type: plume.LiveOffline, Session: v.session})
			continue
		}
		h.relayed.Add(1)
	}
	h.mu.Lock()
	delete(h.viewers, v.session)
	h.mu.Unlock()
	h.toEdge(context.WithoutCancel(ctx), station, plume.LiveSignal{Type: plume.LiveBye, Session: v.session})
	h.log.Info("viewer disconnected", "station", station, "officer", officer, "session", v.session)
}

func (h *Hub) refuseViewer(ctx context.Context, v *viewer, m plume.LiveSignal, why string) {
	h.refused.Add(1)
	h.log.Warn("viewer signalling refused", "station", v.station, "officer", v.officer, "type", m.Type, "reason", why)
	h.send(ctx, v.conn, plume.LiveSignal{Type: plume.LiveError, Session: v.session, Error: why})
}

func (h *Hub) toEdge(ctx context.Context, station plume.StationID, m plume.LiveSignal) bool {
	h.mu.Lock()
	e := h.edges[station]
	h.mu.Unlock()
	if e == nil {
		return false
	}
	h.send(ctx, e.conn, m)
	return true
}

func newSessionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("live").Parse(pageHTML))

func (h *Hub) servePage(w http.ResponseWriter, r *http.Request) {
	station, _, ok := h.authorizeOfficer(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// No other site may frame the live page (clickjacking). Styles come
	// from the app's own stylesheet and the page.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'self' 'unsafe-inline'; media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	if err := pageTmpl.Execute(w, struct{ Station plume.StationID }{station}); err != nil {
		h.log.Debug("write live page", "err", err)
	}
}

// statusOf maps plume error codes to HTTP statuses for the few answers
// this package gives before a socket opens.
var statusOf = map[string]int{
	plume.EINVALID:      http.StatusBadRequest,
	plume.EUNAUTHORIZED: http.StatusUnauthorized,
	plume.EFORBIDDEN:    http.StatusForbidden,
	plume.ENOTFOUND:     http.StatusNotFound,
}

func (h *Hub) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := plume.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		code, status = plume.EINTERNAL, http.StatusInternalServerError
		h.log.Error("internal error", "path", r.URL.Path, "err", err)
	} else {
		h.log.Info("live request refused", "path", r.URL.Path, "code", code, "err", err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": plume.ErrorMessage(err)}})
}
