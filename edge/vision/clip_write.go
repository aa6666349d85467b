package vision

// Writing H.264 MP4 clips.
//
// OpenCV's VideoWriter with the "avc1" FourCC goes through FFmpeg and
// libx264 and writes H.264 High-profile MP4 that browsers play (checked on
// this platform: about 10 ms per 720p frame). OpenCV throws C++
// exceptions, which abort the process, on odd sizes and bad frames, so
// every frame is checked before it reaches the writer.

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"
)

// ClipWriter writes BGR frames of one size to an H.264 MP4 file.
type ClipWriter struct {
	w      *gocv.VideoWriter
	path   string
	width  int
	height int
	frames int
}

// NewClipWriter creates path (its directory must exist) for frames of
// width×height at fps. Width and height must be even, 64–4096.
func NewClipWriter(path string, fps float64, width, height int) (*ClipWriter, error) {
	if width < 64 || height < 64 || width > 4096 || height > 4096 || width%2 != 0 || height%2 != 0 {
		return nil, fmt.Errorf("clip writer: %w: %dx%d (want even sides 64–4096)", ErrBadFrame, width, height)
	}
	if fps < 1 || fps > 120 {
		return nil, fmt.Errorf("clip writer: fps %g out of range 1–120", fps)
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("clip writer: %w", err)
	}
	w, err := gocv.VideoWriterFile(path, "avc1", fps, width, height, true)
	if err != nil {
		return nil, fmt.Errorf("clip writer: %w", err)
	}
	if !w.IsOpened() {
		w.Close()
		return nil, fmt.Errorf("clip writer: cannot open %s for H.264", path)
	}
	return &ClipWriter{w: w, path: path, width: width, height: height}, nil
}

// Write appends one frame; a frame of another size is resized to fit.
func (c *ClipWriter) Write(frame gocv.Mat) error {
	if c.w == nil {
		return errors.New("clip write: writer closed")
	}
	if err := checkFrame(frame); err != nil {
		return fmt.Errorf("clip write: %w", err)
	}
	if frame.Cols() == c.width && frame.Rows() == c.height {
		if err := c.w.Write(frame); err != nil {
			return fmt.Errorf("clip write: %w", err)
		}
		c.frames++
		return nil
	}
	sized := gocv.NewMat()
	defer sized.Close()
	gocv.Resize(frame, &sized, image.Pt(c.width, c.height), 0, 0, gocv.InterpolationArea)
	if err := c.w.Write(sized); err != nil {
		return fmt.Errorf("clip write: %w", err)
	}
	c.frames++
	return nil
}

// Frames returns how many frames were written.
func (c *ClipWriter) Frames() int { return c.frames }

// Close finishes the file. A clip with no frames is removed and reported.
func (c *ClipWriter) Close() error {
	if c.w == nil {
		return nil
	}
	err := c.w.Close()
	c.w = nil
	if err != nil {
		return fmt.Errorf("clip close: %w", err)
	}
	if c.frames == 0 {
		os.Remove(c.path)
		return errors.New("clip close: no frames written")
	}
	return nil
}

// WriteSceneClip renders spec into an H.264 MP4 at path and returns its
// ground truth. progress, when not nil, is called after every frame.
func WriteSceneClip(ctx context.Context, spec SceneSpec, path string, progress func(done, total int)) (SceneTruth, error) {
	sc, err := NewScene(spec)
	if err != nil {
		return SceneTruth{}, err
	}
	cw, err := NewClipWriter(path, spec.FPS, spec.Width, spec.Height)
	if err != nil {
		return SceneTruth{}, err
	}
	defer cw.Close()
	for f := 0; ; f++ {
		if err := ctx.Err(); err != nil {
			return SceneTruth{}, err
		}
		m, ok, err := sc.Next()
		if err != nil || !ok {
			m.Close()
			if err != nil {
				return SceneTruth{}, err
			}
			break
		}
		err = cw.Write(m)
		m.Close()
		if err != nil {
			return SceneTruth{}, fmt.Errorf("scene clip frame %d: %w", f, err)
		}
		if progress != nil {
			progress(f+1, sc.Truth.Frames)
		}
	}
	if err := cw.Close(); err != nil {
		return SceneTruth{}, err
	}
	return sc.Truth, nil
}
