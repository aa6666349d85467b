package vision

// Evidence media for one sighting, after GA/T 832-2014: at least two
// full-scene images at different times showing the vehicle's
// displacement (24-bit colour, ≥ 1280×720 when the camera delivers it), a
// plate close-up, a smoke close-up and an H.264 MP4 clip covering
// ClipBefore..ClipAfter around the crossing.
//
// Every image carries an information strip ADDED BELOW the picture, never
// painted over it: time to the second with its zone, station, place, lane,
// plate, grade and the measured values, set in a CJK font (strip.go).

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/plume-emissions/plume"
)

// EvidenceInfo is what the strip says.
type EvidenceInfo struct {
	Station  string
	Place    string
	Lane     int
	Time     time.Time      // the pass time; each image also shows its own
	Zone     *time.Location // the station's zone (plume.LoadZone); nil: plume.DefaultZone
	Font     *StripFont     // the strip's font (LoadStripFont); required
	Plate    string
	Grade    string   // e.g. "Ringelmann 3 (smoky, conf 0.82)"
	Measured []string // e.g. "CO 0.41%", "NO 1250 ppm"
	Reason   string   // why this is a candidate
}

// EvidenceFile is one written media file.
type EvidenceFile struct {
	Name        string
	Kind        plume.MediaKind
	Path        string
	ContentType string
	CapturedAt  time.Time
}

// WriteEvidence writes s's media into dir (which must exist) and returns
// the files: scene-1.jpg, scene-2.jpg…, plate.jpg, smoke.jpg and clip.mp4.
// Items whose frames are gone from the ring are left out; an error is
// returned only when nothing could be written.
func WriteEvidence(ctx context.Context, s *Sighting, dir string, info EvidenceInfo) ([]EvidenceFile, error) {
	if s == nil {
		return nil, errors.New("evidence: no sighting")
	}
	if info.Font == nil {
		return nil, fmt.Errorf("evidence: %w: no font loaded", ErrNoStripFont)
	}
	if info.Zone == nil {
		info.Zone, _ = plume.LoadZone("")
	}
	var out []EvidenceFile
	var errs []error
	for i, f := range s.Scenes {
		name := fmt.Sprintf("scene-%d.jpg", i+1)
		var box image.Rectangle
		if i < len(s.SceneBoxes) {
			box = s.SceneBoxes[i]
		}
		if err := writeScene(filepath.Join(dir, name), f, box, info, fmt.Sprintf("全景 scene %d/%d", i+1, len(s.Scenes))); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, EvidenceFile{Name: name, Kind: plume.MediaScene, Path: filepath.Join(dir, name), ContentType: "image/jpeg", CapturedAt: f.At})
	}
	if len(s.PlateJPEG) > 0 {
		name := "plate.jpg"
		if err := writeCloseUp(filepath.Join(dir, name), s.PlateJPEG, image.Rectangle{}, image.Rectangle{}, info, s.Crossed, "号牌特写 plate close-up"); err != nil {
			errs = append(errs, err)
		} else {
			out = append(out, EvidenceFile{Name: name, Kind: plume.MediaPlate, Path: filepath.Join(dir, name), ContentType: "image/jpeg", CapturedAt: s.Crossed})
		}
	}
	if len(s.SmokeFrame.JPEG) > 0 {
		name := "smoke.jpg"
		sc := s.SmokeFrame.Scale
		if sc <= 0 {
			sc = 1
		}
		b := s.SmokeBox
		r := image.Rect(int(float64(b.Min.X)/sc), int(float64(b.Min.Y)/sc), int(float64(b.Max.X)/sc), int(float64(b.Max.Y)/sc))
		if err := writeCloseUp(filepath.Join(dir, name), s.SmokeFrame.JPEG, r, r, info, s.SmokeFrame.At, "黑烟特写 smoke close-up"); err != nil {
			errs = append(errs, err)
		} else {
			out = append(out, EvidenceFile{Name: name, Kind: plume.MediaSmoke, Path: filepath.Join(dir, name), ContentType: "image/jpeg", CapturedAt: s.SmokeFrame.At})
		}
	}
	if s.Ring != nil {
		name := "clip.mp4"
		frames := s.Ring.Between(s.ClipFrom, s.ClipTo)
		if err := WriteClip(ctx, filepath.Join(dir, name), frames); err != nil {
			errs = append(errs, err)
		} else {
			out = append(out, EvidenceFile{Name: name, Kind: plume.MediaClip, Path: filepath.Join(dir, name), ContentType: "video/mp4", CapturedAt: frames[0].At})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("evidence: nothing written: %w", errors.Join(errs...))
	}
	return out, nil
}

// WriteClip encodes ring frames (oldest first) as an H.264 MP4 at their
// measured frame rate.
func WriteClip(ctx context.Context, path string, frames []RingFrame) error {
	if len(frames) < 2 {
		return fmt.Errorf("clip: %d frames in the ring for the clip", len(frames))
	}
	fps := 25.0
	if d := frames[len(frames)-1].At.Sub(frames[0].At).Seconds(); d > 0 {
		fps = min(60, max(1, float64(len(frames)-1)/d))
	}
	w, h := frames[0].Width&^1, frames[0].Height&^1
	cw, err := NewClipWriter(path, fps, w, h)
	if err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	defer cw.Close()
	for _, f := range frames {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := f.Decode()
		if err != nil {
			m.Close()
			continue
		}
		err = cw.Write(m)
		m.Close()
		if err != nil {
			return err
		}
	}
	return cw.Close()
}

func writeScene(path string, f RingFrame, box image.Rectangle, info EvidenceInfo, title string) error {
	m, err := f.Decode()
	//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
	defer m.Close()
	if err != nil {
		return fmt.Errorf("scene: %w", err)
	}
	sc := f.Scale
	if sc <= 0 {
		sc = 1
	}
	lines := stripLines(info, f.At, title)
	if !box.Empty() {
		lines = append(lines, fmt.Sprintf("车辆位置 vehicle at x=%d y=%d w=%d h=%d (全幅像素 full-frame pixels)", box.Min.X, box.Min.Y, box.Dx(), box.Dy()))
	}
	return writeWithStrip(path, m, info.Font, lines)
}

// writeCloseUp crops r (ring pixels; empty: the whole image) out of a
// JPEG, enlarges it to at least 640 wide and writes it with a strip.
//
// A non-empty mark (ring pixels) is outlined, and the crop widened around
// it by half its size on every side, so the close-up shows what was
// measured and its surroundings.
func writeCloseUp(path string, jpeg []byte, r image.Rectangle, mark image.Rectangle, info EvidenceInfo, at time.Time, title string) error {
	m, err := decodeFrame(jpeg)
	//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
	defer m.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", title, err)
	}
	full := image.Rect(0, 0, m.Cols(), m.Rows())
	if r.Empty() {
		r = full
	}
	if mark = mark.Intersect(full); !mark.Empty() {
		r = r.Union(image.Rect(mark.Min.X-mark.Dx()/2, mark.Min.Y-mark.Dy()/2, mark.Max.X+mark.Dx()/2, mark.Max.Y+mark.Dy()/2))
	}
	r = r.Intersect(full)
	if r.Dx() < 8 || r.Dy() < 8 {
		return fmt.Errorf("%s: region %v outside the frame", title, r)
	}
	if !mark.Empty() {
		gocv.Rectangle(&m, mark, color.RGBA{R: 255, G: 200, B: 0, A: 255}, max(2, mark.Dx()/80))
	}
	crop := m.Region(r)
	defer crop.Close()
	big := gocv.NewMat()
	defer big.Close()
	w := max(640, r.Dx())
	gocv.Resize(crop, &big, image.Pt(w, max(8, r.Dy()*w/r.Dx())), 0, 0, gocv.InterpolationCubic)
	return writeWithStrip(path, big, info.Font, stripLines(info, at, title))
}

// stripLines says what the strip under an image taken at at says, in
// Chinese first with English beside it. Times are the station's, to the
// second, with the zone named: the same second the pages show.
func stripLines(info EvidenceInfo, at time.Time, title string) []string {
	lines := []string{
		fmt.Sprintf("%s  |  站点 station %s  |  车道 lane %d  |  %s", plume.FormatTime(at, info.Zone), info.Station, info.Lane, title),
		"地点 place: " + firstNonBlank(info.Place, "—"),
		fmt.Sprintf("号牌 plate: %s  |  黑度 smoke: %s", firstNonBlank(info.Plate, "未识别 not read"), firstNonBlank(info.Grade, "—")),
	}
	if len(info.Measured) > 0 {
		lines = append(lines, "测量 measured: "+strings.Join(info.Measured, ", "))
	}
	if info.Reason != "" {
		lines = append(lines, "候选原因 candidate: "+info.Reason+"  |  过车 pass at "+info.Time.In(info.Zone).Format("15:04:05"))
	}
	return lines
}

func firstNonBlank(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// writeWithStrip stacks the strip under img and writes a JPEG.
func writeWithStrip(path string, img gocv.Mat, f *StripFont, lines []string) error {
	strip, err := RenderStrip(f, img.Cols(), lines)
	//lint:ignore SA5001 the function returns a Mat to close even with its error (gocv), so the deferred Close comes first
	defer strip.Close()
	if err != nil {
		return err
	}
	both := gocv.NewMat()
	defer both.Close()
	gocv.Vconcat(img, strip, &both)
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, both, []int{gocv.IMWriteJpegQuality, 92})
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	defer buf.Close()
	if err := os.WriteFile(path, buf.GetBytes(), 0o640); err != nil {
		return fmt.Errorf("write evidence: %w", err)
	}
	return nil
}
