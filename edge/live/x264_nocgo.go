//go:build !cgo

package live

import (
	"errors"
	"image"
)

// errNoEncoder is returned when the edge was built without cgo, so without
// libx264.
var errNoEncoder = errors.New("open h264 encoder: built without cgo, no libx264")

type h264Encoder struct{}

func newH264Encoder(width, height, fps, kbps, keyint int) (*h264Encoder, error) {
	return nil, errNoEncoder
}

func (h *h264Encoder) Encode(img *image.YCbCr, idr bool) ([]byte, bool, error) {
	return nil, false, errNoEncoder
}

func (h *h264Encoder) Close() {}
