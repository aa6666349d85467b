package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plume-emissions/plume/edge/analyser"
)

// TestRun starts the real command against an analyser server on loopback.
func TestRun(t *testing.T) {
	prof, err := analyser.LoadProfile("../../../firmware-config/devices/generic-rsd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	passes := 0
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &analyser.Server{Config: analyser.Config{Protocol: analyser.ProtocolNDJSON, Profile: prof,
		Handler: func(_ context.Context, m analyser.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if m.Kind == "pass" {
				passes++
			}
			return nil
		}}}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	defer func() { srv.Close(); <-done }()

	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, []string{"-addr", ln.Addr().String(), "-protocol", "ndjson", "-count", "12", "-rate", "0",
		"-seed", "5", "-profile", "../../../firmware-config/devices/generic-rsd.yaml"}, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if passes != 12 || !strings.Contains(stderr.String(), "passes acked 12") {
		t.Fatalf("edge got %d passes; stderr:\n%s", passes, stderr.String())
	}
}

func TestRunBadFlags(t *testing.T) {
	var stderr bytes.Buffer
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-profile", "/does/not/exist.yaml"}} {
		if err := run(context.Background(), args, &stderr); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
