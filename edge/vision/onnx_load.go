package vision

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gocv.io/x/gocv"
)

// readModelFile reads an ONNX model file after checking that it is a
// regular file of 1 byte to maxBytes. Errors wrap ErrBadModel.
func readModelFile(path string, maxBytes int) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 || st.Size() > int64(maxBytes) {
		return nil, fmt.Errorf("%w: %s: not a regular file of 1 byte to %d MiB", ErrBadModel, path, maxBytes>>20)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	return data, nil
}

// loadONNX validates ONNX bytes before OpenCV sees them (size, structure
// with checkONNX, the input shape), then loads them into a network that
// runs on the CPU. Errors wrap ErrBadModel; a returned network is the
// caller's to close.
func loadONNX(model []byte, maxBytes int, inputShape []int64) (gocv.Net, error) {
	if len(model) == 0 || len(model) > maxBytes {
		return gocv.Net{}, fmt.Errorf("%w: %d bytes", ErrBadModel, len(model))
	}
	info, err := checkONNX(model)
	if err != nil {
		return gocv.Net{}, err
	}
	if !slices.Equal(info.inputShape, inputShape) {
		return gocv.Net{}, fmt.Errorf("%w: input shape %v, want %v", ErrBadModel, info.inputShape, inputShape)
	}
	net, err := gocv.ReadNetFromONNXBytes(model)
	if err != nil {
		return gocv.Net{}, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	if net.Empty() {
		net.Close()
		return gocv.Net{}, fmt.Errorf("%w: opencv loaded an empty network", ErrBadModel)
	}
	_ = net.SetPreferableBackend(gocv.NetBackendOpenCV)
	_ = net.SetPreferableTarget(gocv.NetTargetCPU)
	return net, nil
}

// findModel resolves a model's path: an explicit path is used as is; then
// the environment variable env; then def under the installed binary's
// share directory (besideExecutable); then def looked up from the working
// directory upwards, so commands work from anywhere inside the
// repository. It returns def when none of these exists.
func findModel(explicit, env, def string) string {
	if explicit != "" {
		return explicit
	}
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p := besideExecutable(def); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return def
	}
	for {
		p := filepath.Join(dir, def)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return def
		}
		dir = parent
	}
}
