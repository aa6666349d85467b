package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/plume-emissions/plume/edge/vision"
)

// TestRunSmokeModelFlag: the patch classifier is the default, "none"
// selects the logistic model, and a missing or bad model file is an error,
// never a silent fall-back to the other model.
func TestRunSmokeModelFlag(t *testing.T) {
	dir := t.TempDir()
	clean := writePNG(t, dir, "clean.png", plainRoad())
	for _, model := range []string{"", "none"} {
		var out, errb bytes.Buffer
		args := []string{clean}
		if model != "" {
			args = append([]string{"-model", model}, args...)
		}
		if err := runSmoke(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("-model %q: %v", model, err)
		}
		var res smokeOutput
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.Smoky {
			t.Errorf("-model %q: clean road flagged: %+v", model, res)
		}
	}
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{garbage, filepath.Join(dir, "missing.onnx")} {
		var out, errb bytes.Buffer
		err := runSmoke(context.Background(), []string{"-model", model, clean}, &out, &errb)
		if !errors.Is(err, vision.ErrBadModel) {
			t.Errorf("-model %s: err %v, want ErrBadModel", model, err)
		}
		if out.Len() != 0 {
			t.Errorf("-model %s: printed a verdict: %s", model, out.String())
		}
	}
	t.Setenv("PLUME_SMOKE_MODEL", garbage)
	var out, errb bytes.Buffer
	if err := runSmoke(context.Background(), []string{clean}, &out, &errb); !errors.Is(err, vision.ErrBadModel) {
		t.Errorf("bad $PLUME_SMOKE_MODEL: err %v, want ErrBadModel", err)
	}
}
