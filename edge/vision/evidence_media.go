package vision

// Evidence media for one sighting, after GA/T 832-2014: at least two
// full-scene images at different times showing the vehicle's
// displacement (24-bit colour, ≥ 1280×720 when the camera delivers it), a
// plate close-up, a smoke close-up and an H.264 MP4 clip covering
// ClipBefore..ClipAfter around the crossing.
//
// Every image carries an information strip ADDED BELOW the picture, never
// painted over it: time to the second, station, place, lane, plate, grade
// and the measured values. OpenCV's Hershey fonts are ASCII only, so the
// strip is ASCII: a plate's province character is written in pinyin in
// brackets ("[Yue]B12345"), and other non-ASCII text as "?".

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
	Time     time.Time // the pass time; each image also shows its own
	Zone     *time.Location
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
	if info.Zone == nil {
		info.Zone = time.Local
	}
	var out []EvidenceFile
	var errs []error
	for i, f := range s.Scenes {
		name := fmt.Sprintf("scene-%d.jpg", i+1)
		var box image.Rectangle
		if i < len(s.SceneBoxes) {
			box = s.SceneBoxes[i]
		}
		if err := writeScene(filepath.Join(dir, name), f, box, info, fmt.Sprintf("scene %d of %d", i+1, len(s.Scenes))); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, EvidenceFile{Name: name, Kind: plume.MediaScene, Path: filepath.Join(dir, name), ContentType: "image/jpeg", CapturedAt: f.At})
	}
	if len(s.PlateJPEG) > 0 {
		name := "plate.jpg"
		if err := writeCloseUp(filepath.Join(dir, name), s.PlateJPEG, image.Rectangle{}, 1, info, s.Crossed, "plate close-up"); err != nil {
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
		if err := writeCloseUp(filepath.Join(dir, name), s.SmokeFrame.JPEG, r, 1, info, s.SmokeFrame.At, "smoke close-up"); err != nil {
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
		lines = append(lines, fmt.Sprintf("vehicle at x=%d y=%d w=%d h=%d (full-frame pixels)", box.Min.X, box.Min.Y, box.Dx(), box.Dy()))
	}
	return writeWithStrip(path, m, lines)
}

// writeCloseUp crops r (ring pixels; empty: the whole image) out of a
// JPEG, enlarges it to at least 640 wide and writes it with a strip.
func writeCloseUp(path string, jpeg []byte, r image.Rectangle, _ float64, info EvidenceInfo, at time.Time, title string) error {
	m, err := decodeFrame(jpeg)
	defer m.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", title, err)
	}
	full := image.Rect(0, 0, m.Cols(), m.Rows())
	if r.Empty() {
		r = full
	}
	r = r.Intersect(full)
	if r.Dx() < 8 || r.Dy() < 8 {
		return fmt.Errorf("%s: region %v outside the frame", title, r)
	}
	crop := m.Region(r)
	defer crop.Close()
	big := gocv.NewMat()
	defer big.Close()
	w := max(640, r.Dx())
	gocv.Resize(crop, &big, image.Pt(w, max(8, r.Dy()*w/r.Dx())), 0, 0, gocv.InterpolationCubic)
	return writeWithStrip(path, big, stripLines(info, at, title))
}

func stripLines(info EvidenceInfo, at time.Time, title string) []string {
	t := at.In(info.Zone).Format("2006-01-02 15:04:05 MST")
	lines := []string{
		fmt.Sprintf("%s  |  station %s  |  lane %d  |  %s", t, info.Station, info.Lane, title),
		"place: " + info.Place,
		fmt.Sprintf("plate: %s  |  smoke: %s", firstNonBlank(info.Plate, "not read"), firstNonBlank(info.Grade, "-")),
	}
	if len(info.Measured) > 0 {
		lines = append(lines, "measured: "+strings.Join(info.Measured, ", "))
	}
	if info.Reason != "" {
		lines = append(lines, "candidate: "+info.Reason+"  |  pass at "+info.Time.In(info.Zone).Format("15:04:05"))
	}
	for i := range lines {
		lines[i] = StripText(lines[i])
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
func writeWithStrip(path string, img gocv.Mat, lines []string) error {
	strip, err := RenderStrip(img.Cols(), lines)
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

// RenderStrip draws lines of ASCII text, white on near-black, into a BGR
// strip width pixels wide; the caller closes it, even on error.
func RenderStrip(width int, lines []string) (gocv.Mat, error) {
	if width < 64 || width > 8192 || len(lines) == 0 || len(lines) > 12 {
		return gocv.NewMat(), fmt.Errorf("strip: %w: width %d, %d lines", ErrBadFrame, width, len(lines))
	}
	scale := min(0.9, max(0.4, float64(width)/1600))
	lineH := int(34 * scale / 0.8)
	thick := max(1, int(scale*2+0.5))
	lines = wrapLines(lines, width-lineH*2/3, scale, thick)
	h := (lineH*len(lines) + lineH/2) &^ 1
	strip := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(24, 20, 16, 0), h, width, gocv.MatTypeCV8UC3)
	for i, l := range lines {
		gocv.PutText(&strip, l, image.Pt(lineH/3, lineH*(i+1)-lineH/4), gocv.FontHersheySimplex, scale,
			color.RGBA{R: 245, G: 245, B: 235, A: 255}, thick)
	}
	return strip, nil
}

// wrapLines breaks lines at spaces so each fits in width pixels (at most
// 16 lines in all).
func wrapLines(lines []string, width int, scale float64, thick int) []string {
	var out []string
	for _, l := range lines {
		words := strings.Fields(l)
		cur := ""
		for _, w := range words {
			next := strings.TrimSpace(cur + " " + w)
			if cur != "" && gocv.GetTextSize(next, gocv.FontHersheySimplex, scale, thick).X > width {
				out = append(out, cur)
				next = "  " + w
			}
			cur = next
		}
		out = append(out, cur)
	}
	return out[:min(len(out), 16)]
}

// provincePinyin spells the plate prefixes in pinyin for the ASCII strip.
var provincePinyin = map[rune]string{
	'京': "Jing", '津': "Jin", '沪': "Hu", '渝': "Yu", '冀': "Ji", '豫': "Yu", '云': "Yun", '辽': "Liao",
	'黑': "Hei", '湘': "Xiang", '皖': "Wan", '鲁': "Lu", '新': "Xin", '苏': "Su", '浙': "Zhe", '赣': "Gan",
	'鄂': "E", '桂': "Gui", '甘': "Gan", '晋': "Jin", '蒙': "Meng", '陕': "Shan", '吉': "Ji", '闽': "Min",
	'贵': "Gui", '粤': "Yue", '青': "Qing", '藏': "Zang", '川': "Chuan", '宁': "Ning", '琼': "Qiong",
	'警': "Jing", '学': "Xue", '挂': "Gua", '使': "Shi", '领': "Ling", '港': "Gang", '澳': "Ao",
}

// StripText makes s printable in Hershey fonts: Chinese plate characters
// become pinyin in brackets, other non-ASCII runes "?".
func StripText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case provincePinyin[r] != "":
			b.WriteString("[" + provincePinyin[r] + "]")
		case r == '–' || r == '—':
			b.WriteByte('-')
		case r == '≥':
			b.WriteString(">=")
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}
