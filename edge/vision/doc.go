// Package vision is Plume's camera vision on the edge: licence-plate
// localisation and recognition (this comment), black-smoke detection with
// Ringelmann grading (smoke_*.go), the camera pipeline and evidence media
// (camera_*.go, evidence_media.go). It is the only Plume package that
// imports gocv (OpenCV 4.6 through cgo).
//
// # Safety
//
// gocv passes OpenCV's C++ exceptions straight through, and an uncaught one
// aborts the whole Go process. Every entry point therefore validates its
// input before OpenCV sees it: DecodeImage checks size, format and pixel
// count from the header (with the standard library) before cv::imdecode;
// OpenRecogniser checks the model file's protobuf framing before
// cv::dnn::readNet; every Mat is checked for emptiness, type and bounds
// before it is used. Every Mat created here is closed before returning; the
// tests prove it under the matprofile build tag.
//
// # Localisation
//
// Locate finds plate candidates classically: HSV colour masks for blue,
// yellow, green, white and black plates, morphological closing, external
// contours, the minimum-area rectangle, and checks on size, aspect ratio,
// fill and (for white and black) vertical-edge density; a second path
// closes dense vertical edges (characters) into plate-shaped blobs for
// plates whose colour merges with the car's. Each candidate has four
// ordered corners, other estimates of them, and a score in [0, 1].
// LocateRows, the fallback, ignores colour: it groups character-shaped
// blobs of an adaptive threshold (dark and light ink) into rows of one
// height along one line, each giving a rough quad around its plate.
//
// A colour outline is only as good as its mask, so before reading, the
// corners are fitted to the characters (fitToCharacters): the region is
// straightened, the character-sized blobs that share a height and a line
// give the tilt, slant, top and bottom, and matching them to the GA 36
// layout (single row, new energy, or the bottom row of a double-row plate)
// gives the ends. The plate is rectified with a perspective warp of the
// fitted corners, or of the outline's when the fit reads worse.
//
// # Recognition
//
// Recogniser runs the CTC network from models/plates (ONNX opset 11; an
// ensemble whose members' logits are averaged inside the graph) through
// OpenCV's DNN module. Input is 3x32x128 BGR scaled to [-1, 1]. A double-row
// plate is rectified to 160x80, its top row (rows [0, 0.42h), columns
// [0.15w, 0.85w)) becomes the left 48 columns and its bottom row (rows
// [0.34h, h)) the right 80, so the greedy CTC decode reads the top row
// first. Each character carries the probability of its best frame; the
// plate's confidence is their product.
// The layout is defined once in models/plates/render.py (model_input) and
// mirrored in prepareInput.
//
// # Reading
//
// Reader combines both: Read locates candidates, rectifies and recognises
// each, validates the text against the GA 36 grammar
// (plume.ValidatePlateText) and returns plates ordered by confidence. When
// no candidate reads as a grammatical plate, it reads LocateRows'
// candidates too. A small image shaped like a plate is read directly as a
// crop.
//
// # Multi-frame voting
//
// Vote combines the reads of one tracked vehicle across frames: per
// character position, a vote weighted by confidence among the reads of the
// winning length, and it keeps the crop of the best single read. It is pure
// Go and needs no OpenCV.
package vision
