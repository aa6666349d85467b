package vision

// DefaultPlateModel is where the plate recogniser lives in the repository.
const DefaultPlateModel = "models/plates/plate-rec.onnx"

// FindPlateModel resolves the plate recogniser's path: an explicit path is
// used as is; then $PLUME_PLATE_MODEL; then DefaultPlateModel looked up from
// the working directory upwards.
func FindPlateModel(explicit string) string {
	return findModel(explicit, "PLUME_PLATE_MODEL", DefaultPlateModel)
}
