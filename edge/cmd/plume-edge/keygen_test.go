package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/edge/agent/agenttest"
	"github.com/plume-emissions/plume/edge/config"
)

// TestKeygen: the station makes its own key (0600, never overwritten),
// central enrols only its public key, and an agent signing with the key
// file and that enrollment is accepted by a real central over loopback.
func TestKeygen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	edgeDir := filepath.Join(dir, "edge")
	if err := os.MkdirAll(edgeDir, 0o750); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(ctx, []string{"keygen", "-out", edgeDir}, &out, &out); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out.String())
	}
	keyPath := filepath.Join(edgeDir, config.KeyFileName)
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	var pub ed25519.PublicKey
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "public" && f[1] == "key" {
			pub, _ = base64.StdEncoding.DecodeString(f[2])
		}
	}
	key, err := config.ReadKeyFile(keyPath)
	if err != nil || len(pub) != ed25519.PublicKeySize || !key.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("printed public key %x is not the key file's (%v)\n%s", pub, err, out.String())
	}
	if !strings.Contains(out.String(), plume.KeyFingerprint(pub)) {
		t.Errorf("no fingerprint printed:\n%s", out.String())
	}
	before, _ := os.ReadFile(keyPath)
	if err := run(ctx, []string{"keygen", "-out", edgeDir}, &out, &out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second keygen: %v, want a refusal", err)
	}
	if after, _ := os.ReadFile(keyPath); string(after) != string(before) {
		t.Fatal("keygen overwrote the station key")
	}

	c := agenttest.StartCentral(t, filepath.Join(dir, "central"), "127.0.0.1:0")
	e, err := c.Enroll(ctx, agenttest.Station, "own key", pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := server.EncodeEnrollment(e)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "station_key") {
		t.Fatalf("enrollment holds a private key:\n%s", b)
	}
	if err := os.WriteFile(filepath.Join(edgeDir, "enrollment.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeStation(t, dir, edgeDir, agenttest.FreeAddr(t))
	withoutKey := NewMain(&out, &out)
	if err := withoutKey.ParseFlags([]string{"-config", cfgPath}); err != nil {
		t.Fatal(err)
	}
	if err := withoutKey.Run(ctx); err == nil || !strings.Contains(err.Error(), "station_key") {
		withoutKey.Close()
		t.Fatalf("run without station_key: %v, want it named", err)
	}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("station_key: " + config.KeyFileName + "\n")
	f.Close()

	m := NewMain(t.Output(), t.Output())
	if err := m.ParseFlags([]string{"-config", cfgPath, "-log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	agenttest.WaitFor(t, 30*time.Second, "a heartbeat signed with the station's own key accepted", func() (bool, string) {
		hs, err := c.Store().(central.OpsStore).Health(ctx)
		for _, h := range hs {
			if h.Station == agenttest.Station {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no heartbeat at central (%v)", err)
	})
}
