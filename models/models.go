// Package models holds Plume's trained models, compiled into the binaries
// that use them, so that a station binary reads plates wherever it is
// installed and whatever its working directory. The files beside this one
// are the models themselves, with their model cards and the code that
// trains them; edge/vision looks for a newer file on disk first (see
// vision.FindPlateModel) and falls back to these bytes.
package models

import _ "embed"

// PlateRecogniser is plates/plate-rec.onnx: the licence-plate CTC
// recogniser (models/plates/MODEL_CARD.md).
//
//go:embed plates/plate-rec.onnx
var PlateRecogniser []byte
