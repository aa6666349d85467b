package vision

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // registers the JPEG header decoder for DecodeConfig
	_ "image/png"  // registers the PNG header decoder for DecodeConfig

	"gocv.io/x/gocv"
)

// Limits on images accepted by DecodeImage. They bound memory before OpenCV
// allocates anything: a 20000x20000 PNG of a few kilobytes would otherwise
// ask for 1.2 GB.
const (
	MaxImageBytes  = 32 << 20   // encoded size
	MaxImagePixels = 40_000_000 // width x height
	MaxImageSide   = 16384      // either side
)

// DecodeImage decodes a JPEG or PNG image into a BGR Mat, which the caller
// must close, even on error (it is then empty). It checks the size, the format and the dimensions from the
// header before OpenCV sees the data, and returns ErrEmptyImage,
// ErrImageTooLarge, ErrImageFormat or ErrDecode (wrapped) on bad input.
func DecodeImage(data []byte) (gocv.Mat, error) {
	cfg, err := CheckImage(data)
	if err != nil {
		return gocv.NewMat(), err
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		m.Close()
		return gocv.NewMat(), fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if m.Empty() || m.Cols() != cfg.Width || m.Rows() != cfg.Height || m.Type() != gocv.MatTypeCV8UC3 {
		m.Close()
		return gocv.NewMat(), fmt.Errorf("%w: opencv could not decode the %dx%d body", ErrDecode, cfg.Width, cfg.Height)
	}
	return m, nil
}

// CheckImage validates encoded image data without decoding the pixels: size,
// JPEG or PNG signature, header and dimensions. DecodeImage calls it first.
func CheckImage(data []byte) (image.Config, error) {
	switch {
	case len(data) == 0:
		return image.Config{}, ErrEmptyImage
	case len(data) > MaxImageBytes:
		return image.Config{}, fmt.Errorf("%w: %d bytes, limit %d", ErrImageTooLarge, len(data), MaxImageBytes)
	}
	isJPEG := bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF})
	isPNG := bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n"))
	if !isJPEG && !isPNG {
		return image.Config{}, fmt.Errorf("%w: want JPEG or PNG", ErrImageFormat)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return image.Config{}, fmt.Errorf("%w: header: %v", ErrDecode, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return image.Config{}, fmt.Errorf("%w: %dx%d", ErrEmptyImage, cfg.Width, cfg.Height)
	}
	if cfg.Width > MaxImageSide || cfg.Height > MaxImageSide || cfg.Width*cfg.Height > MaxImagePixels {
		return image.Config{}, fmt.Errorf("%w: %dx%d", ErrImageTooLarge, cfg.Width, cfg.Height)
	}
	return cfg, nil
}

// checkBGR reports whether m can be processed: non-empty 8-bit BGR within
// the size limits.
func checkBGR(m gocv.Mat) error {
	if m.Empty() || m.Rows() <= 0 || m.Cols() <= 0 {
		return ErrEmptyImage
	}
	if m.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("%w: mat type %v, want 8-bit BGR", ErrImageFormat, m.Type())
	}
	if m.Cols() > MaxImageSide || m.Rows() > MaxImageSide || m.Cols()*m.Rows() > MaxImagePixels {
		return fmt.Errorf("%w: %dx%d", ErrImageTooLarge, m.Cols(), m.Rows())
	}
	return nil
}
