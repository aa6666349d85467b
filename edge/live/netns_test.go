package live_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/live"
)

// The NAT test puts the edge in a network namespace behind a second one
// that masquerades, like a 4G carrier's NAT:
//
//	root ns (central, TURN, Chromium)  plr0 10.201.1.1
//	  └─ plume-nat   plr1 10.201.1.2, MASQUERADE out of plr1; pln0 10.201.2.1
//	       └─ plume-edge  pln1 10.201.2.2, default route via 10.201.2.1
//
// The root namespace has no route to 10.201.2.0/24, so central and the
// browser cannot reach the edge: the edge dials out, and media has to
// traverse the NAT (hole punching, or the TURN relay).
const (
	nsNAT  = "plume-nat"
	nsEdge = "plume-edge"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// setupNAT builds the namespaces, or skips when the machine does not allow
// it (not root, no ip or iptables).
func setupNAT(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("PLUME_REQUIRE_SERVERS") == "1" { // deploy/test: bootstrap installs it
				t.Fatalf("network namespace test needs %s (deploy/bootstrap installs it)", tool)
			}
			t.Skipf("network namespace test needs %s", tool)
		}
	}
	teardown := func() {
		exec.Command("ip", "link", "del", "plr0").Run()
		exec.Command("ip", "netns", "del", nsEdge).Run()
		exec.Command("ip", "netns", "del", nsNAT).Run()
	}
	teardown()
	if out, err := exec.Command("ip", "netns", "add", nsNAT).CombinedOutput(); err != nil {
		t.Skipf("network namespaces not available: %v: %s", err, out)
	}
	t.Cleanup(teardown)
	run(t, "ip", "netns", "add", nsEdge)
	run(t, "ip", "link", "add", "plr0", "type", "veth", "peer", "name", "plr1")
	run(t, "ip", "link", "set", "plr1", "netns", nsNAT)
	run(t, "ip", "addr", "add", "10.201.1.1/24", "dev", "plr0")
	run(t, "ip", "link", "set", "plr0", "up")
	nat := []string{"ip", "netns", "exec", nsNAT}
	edge := []string{"ip", "netns", "exec", nsEdge}
	run(t, append(nat, "ip", "link", "add", "pln0", "type", "veth", "peer", "name", "pln1")...)
	run(t, append(nat, "ip", "link", "set", "pln1", "netns", nsEdge)...)
	run(t, append(nat, "ip", "addr", "add", "10.201.1.2/24", "dev", "plr1")...)
	run(t, append(nat, "ip", "addr", "add", "10.201.2.1/24", "dev", "pln0")...)
	run(t, append(nat, "ip", "link", "set", "plr1", "up")...)
	run(t, append(nat, "ip", "link", "set", "pln0", "up")...)
	run(t, append(nat, "ip", "link", "set", "lo", "up")...)
	run(t, append(nat, "ip", "route", "add", "default", "via", "10.201.1.1")...)
	run(t, append(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")...)
	run(t, append(nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "plr1", "-j", "MASQUERADE")...)
	// Nothing from outside may open a flow inward: only replies pass.
	run(t, append(nat, "iptables", "-A", "FORWARD", "-i", "plr1", "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED", "-j", "DROP")...)
	run(t, append(edge, "ip", "addr", "add", "10.201.2.2/24", "dev", "pln1")...)
	run(t, append(edge, "ip", "link", "set", "pln1", "up")...)
	run(t, append(edge, "ip", "link", "set", "lo", "up")...)
	run(t, append(edge, "ip", "route", "add", "default", "via", "10.201.2.1")...)
}

// helperStats is what the edge in the namespace reports through a file.
type helperStats struct {
	Stats       live.Stats
	Subscribers int
	Connected   bool
}

// startNATEdge runs the edge (this test binary, TestLiveEdgeHelper) inside
// the edge namespace and returns a reader of its counters.
func startNATEdge(t *testing.T, c *testCentral, seed []byte) func() (helperStats, error) {
	t.Helper()
	statsFile := filepath.Join(t.TempDir(), "edge-stats.json")
	cmd := exec.Command("ip", "netns", "exec", nsEdge, os.Args[0], "-test.run=^TestLiveEdgeHelper$")
	cmd.Env = append(os.Environ(), "PLUME_LIVE_EDGE_HELPER=1", "PLUME_LIVE_CENTRAL="+c.base,
		"PLUME_LIVE_SEED="+base64.StdEncoding.EncodeToString(seed), "PLUME_LIVE_STATS="+statsFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the helper exits when its stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	read := func() (helperStats, error) {
		var hs helperStats
		b, err := os.ReadFile(statsFile)
		if err != nil {
			return hs, err
		}
		return hs, json.Unmarshal(b, &hs)
	}
	agenttest.WaitFor(t, 20*time.Second, "the edge behind NAT connected to central", func() (bool, string) {
		hs, err := read()
		return err == nil && hs.Connected && c.Live().Online(station), fmt.Sprint(err)
	})
	return read
}

// TestLiveEdgeHelper is the edge process of the NAT test; it does nothing
// in a normal run.
func TestLiveEdgeHelper(t *testing.T) {
	if os.Getenv("PLUME_LIVE_EDGE_HELPER") == "" {
		t.Skip("helper process for TestLiveViewBehindNAT")
	}
	seed, err := base64.StdEncoding.DecodeString(os.Getenv("PLUME_LIVE_SEED"))
	if err != nil {
		t.Fatal(err)
	}
	e := startEdgeNoWait(t, os.Getenv("PLUME_LIVE_CENTRAL"), seed)
	stop := make(chan struct{})
	go func() { os.Stdin.Read(make([]byte, 1)); close(stop) }()
	path := os.Getenv("PLUME_LIVE_STATS")
	for {
		b, _ := json.Marshal(helperStats{Stats: e.streamer.Stats(), Subscribers: e.source.Subscribers(), Connected: e.signaller.Connected()})
		os.WriteFile(path+".tmp", b, 0o644)
		os.Rename(path+".tmp", path)
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestLiveViewBehindNAT(t *testing.T) {
	setupNAT(t)
	ip := hostIP()
	if ip == "127.0.0.1" {
		t.Skip("no non-loopback address for central")
	}
	for _, tc := range []struct {
		name      string
		relayOnly bool
		want      string
	}{
		// With every candidate type allowed, ICE picks the best pair
		// that works: on this machine both the hole-punched pair (the
		// browser's host address with the edge's NAT mapping, seen as
		// peer-reflexive) and the TURN relay have won on different runs.
		{"AnyCandidate", false, ""},
		{"RelayOnlyThroughTURN", true, "relay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCentral(t, "0.0.0.0", server.LiveConfig{TURNAddr: net.JoinHostPort(ip, "0"), TURNPublicIP: ip, RelayOnly: tc.relayOnly})
			c.base = "http://" + net.JoinHostPort(ip, portOf(c.URL()))
			e, err := c.Enroll(context.Background(), station, "behind NAT", nil)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := e.PrivateKey()
			// Central has no path to the edge's private address (the
			// default route, if any, leads elsewhere).
			if out, _ := exec.Command("ip", "route", "get", "10.201.2.2").CombinedOutput(); strings.Contains(string(out), "plr0") {
				t.Fatalf("central routes to the edge's private address: %s", out)
			}
			read := startNATEdge(t, c, key.Seed())
			checkViewingStats(t, c, func() (live.Stats, int) {
				hs, err := read()
				if err != nil {
					t.Logf("edge stats: %v", err)
				}
				return hs.Stats, hs.Subscribers
			}, tc.want)
		})
	}
}

func portOf(u string) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
	return port
}
