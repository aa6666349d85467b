package plume

import "encoding/json"

// Live view signalling (central/live, edge/live). The edge holds one
// outbound WebSocket to central, authenticated like every station request;
// each officer's page holds one WebSocket to central. Central relays these
// messages between the two, stamping the session and refusing any message
// that names a session the sender does not own. Media never passes through
// central, except through its TURN relay.

// Live signalling message types.
const (
	LiveConfig    = "config"    // central → page: session ID, ICE servers, policy, whether the station is online
	LiveOffer     = "offer"     // page → edge: SDP offer (recvonly video and the events data channel)
	LiveAnswer    = "answer"    // edge → page: SDP answer
	LiveCandidate = "candidate" // both ways: one trickled ICE candidate
	LiveBye       = "bye"       // both ways: the session is over
	LiveOnline    = "online"    // central → page: the station's edge connected
	LiveOffline   = "offline"   // central → page: the station's edge is not connected
	LiveError     = "error"     // any direction: the message was refused; Error says why
)

// LiveSignal is one signalling message. Fields that do not apply to Type
// are empty.
type LiveSignal struct {
	Type    string `json:"type"`
	Session string `json:"session,omitempty"`
	// Camera names one of the station's cameras ("" means its first).
	// Only names travel: camera URLs and credentials stay on the edge.
	Camera string `json:"camera,omitempty"`
	SDP    string `json:"sdp,omitempty"`
	// Candidate is a WebRTC RTCIceCandidateInit as JSON; null ends
	// gathering.
	Candidate json.RawMessage `json:"candidate,omitempty"`
	// ICEServers and RelayOnly tell a peer how to gather candidates.
	// Central fills them in on the config it sends the page and on every
	// offer it relays to the edge.
	ICEServers []LiveICEServer `json:"ice_servers,omitempty"`
	RelayOnly  bool            `json:"relay_only,omitempty"`
	Online     bool            `json:"online,omitempty"`
	// Officer is who opened the session, stamped by central on offers.
	Officer string `json:"officer,omitempty"`
	Error   string `json:"error,omitempty"`
}

// LiveICEServer is a STUN or TURN server, shaped like the browser's
// RTCIceServer.
type LiveICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// LiveSignalPath returns the path of the edge's signalling WebSocket at
// central. The edge signs a GET of this path with an empty body.
func LiveSignalPath(station StationID) string {
	return "/api/v1/stations/" + string(station) + "/live"
}
