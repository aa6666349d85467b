package live

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pion/turn/v5"

	"github.com/plume-emissions/plume"
)

// TURNConfig configures central's built-in TURN relay.
type TURNConfig struct {
	// Listen is the UDP address to serve on, e.g. "203.0.113.5:3478".
	// Prefer a specific address to 0.0.0.0: answers then leave from the
	// address the peer wrote to, as NATs expect.
	Listen string
	// PublicIP is the address edges and browsers reach the relay at; it
	// is also the address relayed media appears from.
	PublicIP string
	// Secret signs the short-lived credentials (HMAC-SHA1, the TURN REST
	// scheme). Empty: a random secret for this process.
	Secret []byte
	// TTL is how long credentials stay valid (default 10 min).
	TTL   time.Duration
	Realm string // default "plume"
}

// TURN is a running relay.
type TURN struct {
	cfg    TURNConfig
	server *turn.Server
	conn   net.PacketConn
	now    func() time.Time
}

// StartTURN starts the relay.
func StartTURN(cfg TURNConfig, logger *slog.Logger, now func() time.Time) (*TURN, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Minute
	}
	if cfg.Realm == "" {
		cfg.Realm = "plume"
	}
	if len(cfg.Secret) == 0 {
		cfg.Secret = make([]byte, 32)
		if _, err := rand.Read(cfg.Secret); err != nil {
			return nil, fmt.Errorf("start turn: %w", err)
		}
	}
	ip := net.ParseIP(cfg.PublicIP)
	if ip == nil {
		return nil, fmt.Errorf("start turn: public ip %q is not an IP address", cfg.PublicIP)
	}
	conn, err := net.ListenPacket("udp4", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("start turn: %w", err)
	}
	// Relayed media leaves from the listen address when it is a specific
	// one: an unbound socket would answer from whichever address the
	// route picks, which a NAT in front of the peer does not recognise.
	relayFrom := "0.0.0.0"
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" && !net.ParseIP(host).IsUnspecified() {
		relayFrom = host
	}
	t := &TURN{cfg: cfg, conn: conn, now: now}
	log := logger.With("component", "turn")
	t.server, err = turn.NewServer(turn.ServerConfig{
		Realm: cfg.Realm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			pass, ok := t.check(ra.Username)
			if !ok {
				log.Info("turn credentials refused", "user", ra.Username, "from", ra.SrcAddr)
				return "", nil, false
			}
			return ra.Username, turn.GenerateAuthKey(ra.Username, cfg.Realm, pass), true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            conn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: ip, Address: relayFrom},
		}},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("start turn: %w", err)
	}
	log.Info("turn relay started", "listen", conn.LocalAddr().String(), "public_ip", cfg.PublicIP)
	return t, nil
}

// Port returns the UDP port the relay serves on.
func (t *TURN) Port() int { return t.conn.LocalAddr().(*net.UDPAddr).Port }

// URL returns the relay's turn: URL.
func (t *TURN) URL() string {
	return "turn:" + net.JoinHostPort(t.cfg.PublicIP, strconv.Itoa(t.Port())) + "?transport=udp"
}

// STUNURL returns a stun: URL for the same port (the relay answers STUN
// binding requests too).
func (t *TURN) STUNURL() string {
	return "stun:" + net.JoinHostPort(t.cfg.PublicIP, strconv.Itoa(t.Port()))
}

// Credentials returns an ICE server entry with credentials for who, valid
// for TTL: username "EXPIRY:who", password base64(HMAC-SHA1(secret,
// username)).
func (t *TURN) Credentials(who string) plume.LiveICEServer {
	user := strconv.FormatInt(t.now().Add(t.cfg.TTL).Unix(), 10) + ":" + strings.ReplaceAll(who, ":", "_")
	return plume.LiveICEServer{URLs: []string{t.URL()}, Username: user, Credential: t.password(user)}
}

func (t *TURN) password(user string) string {
	m := hmac.New(sha1.New, t.cfg.Secret)
	m.Write([]byte(user))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// check returns the password for user if the username is well formed and
// not expired.
func (t *TURN) check(user string) (string, bool) {
	exp, _, ok := strings.Cut(user, ":")
	if !ok {
		return "", false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || t.now().Unix() > sec {
		return "", false
	}
	return t.password(user), true
}

// Close stops the relay.
func (t *TURN) Close() error { return t.server.Close() }
