package main

// The smoke and eval-smoke commands:
//
//	plume-edge smoke [-min-grade N] [-threshold S] [-model CNN.onnx] [-explain DIR] IMAGE...   black smoke in stills, JSON
//	plume-edge eval-smoke [-data DIR] [-scenes DIR] [-smoke-model CNN.onnx] [-explain DIR]     accuracy on stills and generated video
//
// Per image both give the vehicle boxes, the plumes that count (boxes),
// the regions scored below the threshold (scored) and the regions a hard
// rule rejected (rejected), each with its cue values (vision.SmokeCues),
// the grade and the confidence. -explain DIR also draws them onto
// DIR/NAME.png (vision.ExplainSmokeImage); eval-smoke draws its errors
// only (false alarms and misses).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/plume-emissions/plume/edge/vision"
)

type smokeOutput struct {
	Image string `json:"image"`
	vision.SmokeResult
	MS    float64 `json:"ms"`
	Error string  `json:"error,omitempty"`
}

// runSmoke implements `plume-edge smoke IMAGE...`: one JSON object per
// image on stdout. It works on stills, with no background model.
func runSmoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-edge smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	minGrade := fs.Int("min-grade", 1, "Ringelmann grade a plume must reach to count (from the limit profile)")
	threshold := fs.Float64("threshold", 0, "plume score threshold, 0–1 (0: the model's default operating threshold)")
	model := fs.String("model", "", "smoke patch classifier ONNX (default: $PLUME_SMOKE_MODEL, then models/smoke/smoke-cnn.onnx found upwards); \"none\": the logistic model")
	explain := fs.String("explain", "", "folder to draw each image's verdict into, as NAME.png (empty: none)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: plume-edge smoke [flags] IMAGE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("smoke: name at least one image")
	}
	if *minGrade < 0 || *minGrade > 5 || *threshold < 0 || *threshold > 1 {
		return errors.New("smoke: -min-grade must be 0–5 and -threshold 0–1")
	}
	opt := vision.SmokeOptions{MinGrade: *minGrade, Threshold: *threshold}
	c, err := openSmokeModel(*model)
	if err != nil {
		return fmt.Errorf("smoke: %w", err)
	}
	if c != nil {
		defer c.Close()
		opt.Classifier = c
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	failed := 0
	for _, path := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		out := smokeOutput{Image: path}
		res, err := smokeFile(path, opt, *explain)
		if err != nil {
			out.Error = err.Error()
			out.Boxes = []vision.SmokeBox{}
			failed++
		} else {
			out.SmokeResult = res
		}
		out.MS = float64(time.Since(t0).Microseconds()) / 1000
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("smoke: %w", err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("smoke: %d of %d image(s) failed", failed, fs.NArg())
	}
	return nil
}

// openSmokeModel opens the smoke patch classifier named by a -model flag:
// "none" selects the logistic model (nil), anything else is resolved by
// vision.FindSmokeModel. The classifier is the default because it is the
// better of the two on the honest splits (models/smoke/MODEL_CARD.md); a
// missing or bad file is an error, never a silent fall-back.
func openSmokeModel(flagValue string) (*vision.SmokeClassifier, error) {
	if flagValue == "none" {
		return nil, nil
	}
	return vision.OpenSmokeClassifier(vision.FindSmokeModel(flagValue))
}

// smokeFile judges one image file; with explain set it also draws the
// verdict into explain/NAME.png.
func smokeFile(path string, opt vision.SmokeOptions, explain string) (vision.SmokeResult, error) {
	data, err := readImageFile(path)
	if err != nil {
		return vision.SmokeResult{}, err
	}
	res, err := vision.DetectSmokeImage(data, opt)
	if err != nil || explain == "" {
		return res, err
	}
	return res, writeExplain(explain, path, data, res)
}

func readImageFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 32<<20+1))
}

// writeExplain draws res onto the image and writes dir/NAME.png.
func writeExplain(dir, path string, data []byte, res vision.SmokeResult) error {
	png, err := vision.ExplainSmokeImage(data, res)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + ".png"
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	return nil
}

// stillsReport is the stills part of eval-smoke.
type stillsReport struct {
	Definitions map[string]string `json:"definitions"`
	Sets        []stillsSet       `json:"sets"`
	Total       stillsSet         `json:"total"`
	Images      []stillImage      `json:"images"`
}

// stillImage is one labelled still's verdict.
type stillImage struct {
	Image string `json:"image"`
	Set   string `json:"set"`
	Label bool   `json:"label"` // labelled smoky
	vision.SmokeResult
	Error string `json:"error,omitempty"`
}

type stillsSet struct {
	Set       string  `json:"set"`
	Positives int     `json:"positives"` // labelled smoky
	Negatives int     `json:"negatives"` // labelled clean
	TP        int     `json:"tp"`
	FP        int     `json:"fp"`
	FN        int     `json:"fn"`
	TN        int     `json:"tn"`
	Errors    int     `json:"errors"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	MSPerImg  float64 `json:"ms_per_image"`
	totalMS   float64
}

func (s *stillsSet) add(o stillsSet) {
	s.Positives += o.Positives
	s.Negatives += o.Negatives
	s.TP += o.TP
	s.FP += o.FP
	s.FN += o.FN
	s.TN += o.TN
	s.Errors += o.Errors
	s.totalMS += o.totalMS
}

func (s *stillsSet) finish() {
	s.Precision = ratio(s.TP, s.TP+s.FP)
	s.Recall = ratio(s.TP, s.TP+s.FN)
	if s.Precision+s.Recall > 0 {
		s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
	}
	s.MSPerImg = s.totalMS / float64(max(1, s.Positives+s.Negatives))
}

func ratio(a, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(a) / float64(n)
}

var stillsDefinitions = map[string]string{
	"unit":      "one image; predicted smoky when `plume-edge smoke` says smoky (its best candidate plume with Ringelmann grade >= min-grade scores >= threshold)",
	"positive":  "smoke/web (every image has a smoke box), smoke/overpass-video and smoke/cctv images with a class-1 (smoky vehicle) box",
	"negative":  "plates/tollbooth and plates/ccpd (vehicles without smoke), and smoke-folder images without a class-1 box",
	"precision": "TP / (TP + FP)",
	"recall":    "TP / (TP + FN)",
	"f1":        "2 * precision * recall / (precision + recall)",
	"errors":    "images that could not be decoded; counted as predicted clean",
}

// evalStills runs the detector over the labelled stills under data.
func evalStills(ctx context.Context, data string, opt vision.SmokeOptions, explain string, stderr io.Writer) (*stillsReport, error) {
	stills, err := vision.SmokeStills(data)
	if err != nil {
		return nil, err
	}
	bySet := map[string]*stillsSet{}
	var order []string
	var images []stillImage
	for i, s := range stills {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st := bySet[s.Set]
		if st == nil {
			st = &stillsSet{Set: s.Set}
			bySet[s.Set] = st
			order = append(order, s.Set)
		}
		t0 := time.Now()
		data, err := readImageFile(s.Path)
		var res vision.SmokeResult
		if err == nil {
			res, err = vision.DetectSmokeImage(data, opt)
		}
		st.totalMS += float64(time.Since(t0).Microseconds()) / 1000
		img := stillImage{Image: s.Path, Set: s.Set, Label: s.Smoky, SmokeResult: res}
		if err != nil {
			st.Errors++
			img.Error = err.Error()
		}
		pred := err == nil && res.Smoky
		if explain != "" && err == nil && pred != s.Smoky {
			if err := writeExplain(filepath.Join(explain, s.Set), s.Path, data, res); err != nil {
				return nil, err
			}
		}
		images = append(images, img)
		switch {
		case s.Smoky:
			st.Positives++
		default:
			st.Negatives++
		}
		switch {
		case pred && s.Smoky:
			st.TP++
		case pred:
			st.FP++
		case s.Smoky:
			st.FN++
		default:
			st.TN++
		}
		if (i+1)%50 == 0 || i+1 == len(stills) {
			fmt.Fprintf(stderr, "eval-smoke: stills %d/%d\n", i+1, len(stills))
		}
	}
	rep := &stillsReport{Definitions: stillsDefinitions, Total: stillsSet{Set: "total"}, Images: images}
	for _, name := range order {
		st := bySet[name]
		rep.Total.add(*st)
		st.finish()
		rep.Sets = append(rep.Sets, *st)
	}
	rep.Total.finish()
	return rep, nil
}

// findSharedData looks for ../shared/data above the working directory.
func findSharedData() string {
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("..", "shared", "data")
	}
	for {
		p := filepath.Join(dir, "..", "shared", "data")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("..", "shared", "data")
		}
		dir = parent
	}
}

// runSmokeEval implements `plume-edge eval-smoke`: precision, recall and F1
// on the labelled stills, and, with -scenes, detection rate, false alarms
// per hour of clean traffic, grade error and plate read rate on generated
// video. It prints a JSON report on stdout and progress on stderr.
func runSmokeEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-edge eval-smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "shared data folder (default: ../shared/data above the working directory)")
	scenes := fs.String("scenes", "", "folder of generated scenes (clips + ground truth) to evaluate; empty skips video")
	stills := fs.Bool("stills", true, "evaluate the labelled stills")
	minGrade := fs.Int("min-grade", 1, "Ringelmann grade a plume must reach to count")
	threshold := fs.Float64("threshold", 0, "plume score threshold, 0–1 (0: the model's default operating threshold)")
	smokeModel := fs.String("smoke-model", "", "smoke patch classifier ONNX for the stills (default: as `plume-edge smoke -model`); \"none\": the logistic model")
	plateModel := fs.String("plate-model", "", "plate recogniser ONNX for the plate read rate (empty: no plate reading)")
	explain := fs.String("explain", "", "folder to draw the stills judged wrongly into, as SET/NAME.png (empty: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *threshold < 0 || *threshold > 1 {
		return errors.New("eval-smoke: -threshold must be 0–1")
	}
	opt := vision.SmokeOptions{MinGrade: *minGrade, Threshold: *threshold}
	if *stills {
		c, err := openSmokeModel(*smokeModel)
		if err != nil {
			return fmt.Errorf("eval-smoke: %w", err)
		}
		if c != nil {
			defer c.Close()
			opt.Classifier = c
		}
	}
	out := map[string]any{}
	if *stills {
		dir := *data
		if dir == "" {
			dir = findSharedData()
		}
		rep, err := evalStills(ctx, dir, opt, *explain, stderr)
		if err != nil {
			return fmt.Errorf("eval-smoke: %w", err)
		}
		out["stills"] = rep
	}
	if *scenes != "" {
		var plates vision.PlateReader
		if *plateModel != "" {
			r, err := vision.Open(vision.FindPlateModel(*plateModel), vision.Options{}, nil)
			if err != nil {
				return fmt.Errorf("eval-smoke: %w", err)
			}
			defer r.Close()
			plates = r
		}
		rep, err := evalScenes(ctx, *scenes, *minGrade, plates, stderr)
		if err != nil {
			return fmt.Errorf("eval-smoke: %w", err)
		}
		out["scenes"] = rep
	}
	if len(out) == 0 {
		return errors.New("eval-smoke: nothing to evaluate")
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("eval-smoke: %w", err)
	}
	return nil
}
