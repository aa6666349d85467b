package server

import (
	"net/http"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/api"
	liveview "github.com/plume-emissions/plume/central/live"
)

// LiveConfig configures live view.
type LiveConfig struct {
	// STUN lists stun: URLs handed to browsers and edges.
	STUN []string
	// TURNAddr is the UDP address of the built-in TURN relay, e.g.
	// "0.0.0.0:3478"; "" runs none. TURNPublicIP is where browsers and
	// edges reach it.
	TURNAddr, TURNPublicIP string
	// RelayOnly makes every session go through the relay.
	RelayOnly bool
	// Authorizer decides which officer may watch which station. nil: a
	// signed-in officer (session cookie or bearer token) whose station
	// scope includes the station; a request with no officer session may
	// present the operator's admin token from DataDir/live.token.
	Authorizer liveview.Authorizer
}

// openLive starts live view and returns the handler that serves it beside
// the API.
func (s *Server) openLive(apiHandler *api.Handler) (http.Handler, error) {
	lc := s.cfg.Live
	authz := lc.Authorizer
	if authz == nil {
		tok, err := liveview.LoadOrCreateToken(s.cfg.DataDir)
		if err != nil {
			return nil, err
		}
		authz = s.officerOrToken(liveview.TokenAuthorizer{Token: tok})
	}
	if lc.TURNAddr != "" {
		t, err := liveview.StartTURN(liveview.TURNConfig{Listen: lc.TURNAddr, PublicIP: lc.TURNPublicIP}, s.cfg.Logger, s.cfg.Now)
		if err != nil {
			return nil, err
		}
		s.turn = t
		lc.STUN = append(lc.STUN, t.STUNURL())
	}
	s.live = liveview.New(liveview.Config{
		Stations: s.store, Authorizer: authz, STUN: lc.STUN, TURN: s.turn, RelayOnly: lc.RelayOnly,
		AllowedSkew: s.cfg.AllowedSkew, Logger: s.cfg.Logger, Now: s.cfg.Now,
	})
	mux := http.NewServeMux()
	mux.Handle("/", apiHandler)
	for _, p := range liveview.Patterns {
		mux.Handle(p, s.live)
	}
	return mux, nil
}

// officerOrToken authorises signed-in officers by their station scope and
// falls back to token only when the request carries no officer session.
func (s *Server) officerOrToken(token liveview.Authorizer) liveview.Authorizer {
	return liveview.AuthorizerFunc(func(r *http.Request, station plume.StationID) (string, error) {
		p, err := s.auth.Authenticate(r)
		if err == nil {
			if !p.Officer.Sees(station) {
				return "", plume.Errorf(plume.EFORBIDDEN, "officer %s may not watch station %s", p.Officer.Username, station)
			}
			return p.Officer.Username, nil
		}
		if plume.ErrorCode(err) != plume.EUNAUTHORIZED {
			return "", err
		}
		return token.Authorize(r, station)
	})
}

func (s *Server) closeLive() {
	s.live.Close()
	if s.turn != nil {
		s.turn.Close()
	}
}

// Live returns the live-view hub.
func (s *Server) Live() *liveview.Hub { return s.live }
