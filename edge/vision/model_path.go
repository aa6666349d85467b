package vision

import (
	"os"
	"path/filepath"

	"github.com/plume-emissions/plume/models"
)

// DefaultPlateModel is where the plate recogniser lives in the repository,
// and under the installation's share directory
// (/usr/local/share/plume/models/plates/plate-rec.onnx beside
// /usr/local/bin/plume-edge).
const DefaultPlateModel = "models/plates/plate-rec.onnx"

// EmbeddedPlateModel names the recogniser compiled into the binary
// (package models); OpenRecogniser and Open accept it as a path.
const EmbeddedPlateModel = "embedded:" + DefaultPlateModel

// FindPlateModel resolves the plate recogniser: an explicit path is used as
// is; then $PLUME_PLATE_MODEL; then a file beside the installed binary
// (../share/plume/models/plates/plate-rec.onnx, the systemd unit's
// layout); then DefaultPlateModel looked up from the working directory
// upwards (a freshly trained file in a checkout); and otherwise the
// recogniser compiled into the binary, so a command works from any
// directory.
func FindPlateModel(explicit string) string {
	p := findModel(explicit, "PLUME_PLATE_MODEL", DefaultPlateModel)
	if p == DefaultPlateModel && explicit == "" {
		if _, err := os.Stat(p); err != nil {
			return EmbeddedPlateModel
		}
	}
	return p
}

// besideExecutable returns def under the installation's share directory
// (the executable's ../share/plume), or "" when there is none.
func besideExecutable(def string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	p := filepath.Join(filepath.Dir(exe), "..", "share", "plume", def)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p
	}
	return ""
}

// plateModelBytes returns the bytes of a model path, or of the embedded model.
func plateModelBytes(path string) ([]byte, error) {
	if path == EmbeddedPlateModel {
		return models.PlateRecogniser, nil
	}
	return readModelFile(path, maxModelBytes)
}
