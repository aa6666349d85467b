// Command plume-scenes renders synthetic road scenes for tests,
// evaluation and the demo: for each case an H.264 MP4 clip and its ground
// truth as JSON (per vehicle and per frame).
//
//	plume-scenes [-out DIR] [-width W] [-height H] [-fps F] [-seconds S] [-vehicles N] [-seed N] CASE...
//
// Cases: smoky, shadows, wet, dust, light, night, mixed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/plume-emissions/plume/edge/vision"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "plume-scenes:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-scenes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "testdata/scenes", "output directory")
	width := fs.Int("width", 1280, "frame width (even)")
	height := fs.Int("height", 720, "frame height (even)")
	fps := fs.Float64("fps", 25, "frames per second")
	seconds := fs.Float64("seconds", 15, "clip length in seconds")
	vehicles := fs.Int("vehicles", 6, "vehicles per clip")
	seed := fs.Int64("seed", 1, "random seed (rendering is deterministic in it)")
	quiet := fs.Bool("q", false, "no progress")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: plume-scenes [flags] CASE...  (smoky, shadows, wet, dust, light, night, mixed)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("name at least one case")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for i, name := range fs.Args() {
		spec := vision.SceneSpec{Case: name, Seed: *seed + int64(i), Width: *width, Height: *height,
			FPS: *fps, Seconds: *seconds, Vehicles: *vehicles}
		clip := filepath.Join(*out, name+".mp4")
		t0 := time.Now()
		last := time.Time{}
		truth, err := vision.WriteSceneClip(ctx, spec, clip, func(done, total int) {
			if *quiet || (time.Since(last) < time.Second && done < total) {
				return
			}
			last = time.Now()
			fmt.Fprintf(stderr, "\r%s: frame %d/%d", name, done, total)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		js, err := json.MarshalIndent(truth, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, name+".json"), append(js, '\n'), 0o644); err != nil {
			return err
		}
		st, _ := os.Stat(clip)
		smoky := 0
		for _, v := range truth.Vehicles {
			if v.Smoky {
				smoky++
			}
		}
		fmt.Fprintf(stdout, "%s: %s (%d frames, %.1f MB, %d vehicles, %d smoky) in %s\n",
			name, clip, truth.Frames, float64(st.Size())/1e6, len(truth.Vehicles), smoky, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}
