package vision

// Frame and image validation for the smoke and camera code. It does not
// lean on the plate code's helpers, so each half of the package stands on
// its own.

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // JPEG header decoder for DecodeConfig
	_ "image/png"  // PNG header decoder for DecodeConfig

	"gocv.io/x/gocv"
)

// ErrBadFrame is returned when a frame or image cannot be used for smoke
// detection: empty, too small or large, not 8-bit BGR, or undecodable.
var ErrBadFrame = errors.New("bad frame")

// Limits on frames and images accepted by the smoke and camera code.
const (
	maxFrameBytes  = 32 << 20
	maxFramePixels = 40_000_000
	maxFrameSide   = 16384
)

// decodeFrame decodes JPEG or PNG data into a BGR Mat, which the caller
// must close, even on error (it is then empty). The header is checked with
// the standard library before OpenCV sees the data.
func decodeFrame(data []byte) (gocv.Mat, error) {
	switch {
	case len(data) == 0:
		return gocv.NewMat(), fmt.Errorf("%w: empty data", ErrBadFrame)
	case len(data) > maxFrameBytes:
		return gocv.NewMat(), fmt.Errorf("%w: %d bytes, limit %d", ErrBadFrame, len(data), maxFrameBytes)
	}
	if !bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}) && !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		return gocv.NewMat(), fmt.Errorf("%w: want JPEG or PNG", ErrBadFrame)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return gocv.NewMat(), fmt.Errorf("%w: header: %v", ErrBadFrame, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxFrameSide || cfg.Height > maxFrameSide || cfg.Width*cfg.Height > maxFramePixels {
		return gocv.NewMat(), fmt.Errorf("%w: %dx%d", ErrBadFrame, cfg.Width, cfg.Height)
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		m.Close()
		return gocv.NewMat(), fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if m.Empty() || m.Cols() != cfg.Width || m.Rows() != cfg.Height || m.Type() != gocv.MatTypeCV8UC3 {
		m.Close()
		return gocv.NewMat(), fmt.Errorf("%w: cannot decode the %dx%d body", ErrBadFrame, cfg.Width, cfg.Height)
	}
	return m, nil
}

// checkFrame reports whether m is a usable 8-bit BGR frame.
func checkFrame(m gocv.Mat) error {
	if m.Empty() || m.Rows() <= 0 || m.Cols() <= 0 {
		return fmt.Errorf("%w: empty", ErrBadFrame)
	}
	if m.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("%w: mat type %v, want 8-bit BGR", ErrBadFrame, m.Type())
	}
	if m.Cols() > maxFrameSide || m.Rows() > maxFrameSide || m.Cols()*m.Rows() > maxFramePixels {
		return fmt.Errorf("%w: %dx%d", ErrBadFrame, m.Cols(), m.Rows())
	}
	return nil
}
