package main

// The demo's camera phase: the station's camera plays a generated clip
// (testdata/scenes/mixed.mp4) in real time, in a loop, while the analyser simulator
// sends the passes of the same vehicles, driven by the clip's ground truth,
// so the cases at central carry scene images, close-ups, a clip, a plate
// and a smoke grade.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/sim"
	"github.com/plume-emissions/plume/edge/vision"
)

// demoClip finds the station camera's clip and its ground truth; ok is
// false when the station has no camera or the clip is not here (the demo
// then runs analyser-only).
func demoClip(st *config.Loaded, override string) (clip string, truth vision.SceneTruth, ok bool, err error) {
	if len(st.Cameras) == 0 {
		return "", truth, false, nil
	}
	clip = st.Cameras[0].Source
	if override != "" {
		clip = override
	}
	if _, err := os.Stat(clip); err != nil {
		return clip, truth, false, nil
	}
	data, err := os.ReadFile(strings.TrimSuffix(clip, filepath.Ext(clip)) + ".json")
	if err != nil {
		return clip, truth, false, fmt.Errorf("camera clip %s has no ground truth: %w", clip, err)
	}
	if err := json.Unmarshal(data, &truth); err != nil {
		return clip, truth, false, fmt.Errorf("ground truth of %s: %w", clip, err)
	}
	if abs, err := filepath.Abs(clip); err == nil {
		clip = abs
	}
	return clip, truth, true, nil
}

// clipSchedule makes the analyser's passes for the clip's vehicles, 0.2 s
// after each crosses the trigger line: smoky vehicles are diesel trucks,
// the rest petrol cars; every fourth clean car's gases exceed.
func clipSchedule(truth vision.SceneTruth, start time.Time, lanes []int) []sim.Scheduled {
	var out []sim.Scheduled
	for i, v := range truth.Vehicles {
		lane := v.Lane
		if v.Lane >= 1 && v.Lane <= len(lanes) {
			lane = lanes[v.Lane-1]
		}
		s := sim.Scheduled{At: start.Add(time.Duration(v.CrossSec*float64(time.Second)) + 200*time.Millisecond), Lane: lane, Fuel: plume.FuelPetrol}
		if v.Smoky {
			s.Fuel = plume.FuelDiesel
		} else if i%4 == 1 {
			s.Exceed = true
		}
		out = append(out, s)
	}
	return out
}

// clipLength is how long one round of the clip plays: the camera's
// timeline moves on by its frame count over its frame rate at each loop.
func clipLength(truth vision.SceneTruth) time.Duration {
	return time.Duration(truth.Spec.Seconds * float64(time.Second))
}

// playClipPasses sends the clip's passes in step with the camera. Every
// second it says how many vehicles have crossed and how many of their
// passes the edge has judged (it acknowledges a pass once the camera has
// reported the vehicle), and what the camera matched, only when that
// changed.
func playClipPasses(ctx context.Context, cfg sim.Config, out *printer, sched []sim.Scheduled, state func() string) (*sim.Player, error) {
	p := sim.NewPlayer(cfg)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	for {
		select {
		case err := <-done:
			return p, err
		case <-tick.C:
			crossed := 0
			for _, s := range sched {
				if !s.At.After(time.Now()) {
					crossed++
				}
			}
			line := fmt.Sprintf("camera    %2d/%d vehicles crossed, %2d passes judged │ %s", crossed, len(sched), len(p.Stats().AckedPasses), state())
			if line != last {
				out.say("%s", line)
				last = line
			}
		}
	}
}

// analyserDevice decodes the station's device profile for the simulator.
func analyserDevice(st *config.Loaded) (*analyser.Profile, error) {
	return analyser.DecodeProfile(st.DeviceProfile)
}
