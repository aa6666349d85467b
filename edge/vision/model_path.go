package vision

import (
	"os"
	"path/filepath"
)

// DefaultPlateModel is where the plate recogniser lives in the repository.
const DefaultPlateModel = "models/plates/plate-rec.onnx"

// FindPlateModel resolves the plate recogniser's path: an explicit path is
// used as is; then $PLUME_PLATE_MODEL; then DefaultPlateModel looked up from
// the working directory upwards, so commands work from anywhere inside the
// repository.
func FindPlateModel(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if env := os.Getenv("PLUME_PLATE_MODEL"); env != "" {
		return env
	}
	dir, err := os.Getwd()
	if err != nil {
		return DefaultPlateModel
	}
	for {
		p := filepath.Join(dir, DefaultPlateModel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return DefaultPlateModel
		}
		dir = parent
	}
}
