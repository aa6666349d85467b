package vision

import "errors"

var (
	// ErrEmptyImage is returned when the image data or Mat is empty.
	ErrEmptyImage = errors.New("empty image")
	// ErrImageTooLarge is returned when the encoded image or its pixel count
	// exceeds the limits (MaxImageBytes, MaxImagePixels, MaxImageSide).
	ErrImageTooLarge = errors.New("image too large")
	// ErrImageFormat is returned when the data is not a JPEG or PNG image.
	ErrImageFormat = errors.New("unsupported image format")
	// ErrDecode is returned when an image's header or body cannot be decoded.
	ErrDecode = errors.New("cannot decode image")
	// ErrBadModel is returned when a model file is missing, too large, not
	// an ONNX protobuf, or gives output of the wrong shape.
	ErrBadModel = errors.New("bad model")
	// ErrClosed is returned when a Reader or Recogniser is used after Close.
	ErrClosed = errors.New("closed")
)
