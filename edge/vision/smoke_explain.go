package vision

// The explain picture of a still's smoke verdict: what the detector
// looked at and why, for a reviewer.

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"
)

// explainSide is the long side, in pixels, of an explain picture.
const explainSide = 1280

// Colours of the explain picture.
var (
	explainPlume    = color.RGBA{R: 255, G: 40, B: 40, A: 255}   // a plume that counts
	explainScored   = color.RGBA{R: 255, G: 200, B: 0, A: 255}   // scored, below the threshold or grade
	explainRejected = color.RGBA{R: 0, G: 170, B: 255, A: 255}   // rejected by a hard rule
	explainVehicle  = color.RGBA{R: 40, G: 220, B: 40, A: 255}   // a vehicle
	explainText     = color.RGBA{R: 255, G: 255, B: 255, A: 255} // the headline
)

// ExplainSmokeImage draws res (the verdict of DetectSmokeImage on data)
// onto the image and returns it as PNG, at most explainSide pixels on its
// long side: plumes that count in red with their score and grade, regions
// scored below the threshold in yellow, regions a hard rule rejected in
// blue with the rule's name, vehicles in green, and the verdict on top.
func ExplainSmokeImage(data []byte, res SmokeResult) ([]byte, error) {
	img, err := decodeFrame(data)
	//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
	defer img.Close()
	if err != nil {
		return nil, fmt.Errorf("explain smoke: %w", err)
	}
	s := math.Min(1, float64(explainSide)/float64(max(img.Cols(), img.Rows())))
	canvas := gocv.NewMat()
	defer canvas.Close()
	w, h := max(1, int(float64(img.Cols())*s)), max(1, int(float64(img.Rows())*s))
	gocv.Resize(img, &canvas, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	if canvas.Empty() {
		return nil, fmt.Errorf("explain smoke: %w: cannot resize", ErrBadFrame)
	}
	frame := image.Rect(0, 0, w, h)
	scale := func(r image.Rectangle) image.Rectangle {
		return image.Rect(int(float64(r.Min.X)*s), int(float64(r.Min.Y)*s), int(float64(r.Max.X)*s), int(float64(r.Max.Y)*s)).Intersect(frame)
	}
	draw := func(r image.Rectangle, c color.RGBA, thick int, label string) {
		r = scale(r)
		if r.Empty() {
			return
		}
		gocv.Rectangle(&canvas, r, c, thick)
		if label != "" {
			at := image.Pt(r.Min.X+2, max(12, r.Min.Y-3))
			if r.Min.Y < 14 {
				at.Y = min(h-2, r.Min.Y+13)
			}
			gocv.PutText(&canvas, label, at, gocv.FontHersheySimplex, 0.42, c, 1)
		}
	}
	for _, b := range res.Rejected {
		draw(b.Rect(), explainRejected, 1, fmt.Sprintf("%s l%.2f e%.2f", b.Cues.Reject, b.Cues.Local, b.Cues.Edge))
	}
	for _, b := range res.Scored {
		draw(b.Rect(), explainScored, 1, fmt.Sprintf("%.2f g%d", b.Score, b.Grade))
	}
	for _, v := range res.Vehicles {
		draw(v, explainVehicle, 2, "vehicle")
	}
	for _, b := range res.Boxes {
		draw(b.Rect(), explainPlume, 3, fmt.Sprintf("PLUME %.2f g%d l%.2f", b.Score, b.Grade, b.Cues.Local))
	}
	head := fmt.Sprintf("clean (confidence %.2f)", res.Confidence)
	if res.Smoky {
		head = fmt.Sprintf("SMOKY grade %d (confidence %.2f)", res.Grade, res.Confidence)
	}
	gocv.Rectangle(&canvas, image.Rect(0, 0, min(w, 330), min(h, 22)), color.RGBA{A: 255}, -1)
	gocv.PutText(&canvas, head, image.Pt(4, min(h-2, 16)), gocv.FontHersheySimplex, 0.5, explainText, 1)
	buf, err := gocv.IMEncode(gocv.PNGFileExt, canvas)
	if err != nil {
		return nil, fmt.Errorf("explain smoke: %w", err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}
