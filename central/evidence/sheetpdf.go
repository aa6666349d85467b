package evidence

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/go-pdf/fpdf"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// DefaultSheetFont is the CJK font the PDF evidence sheet is set in (Debian
// fonts-wqy-zenhei, installed by deploy/bootstrap).
const DefaultSheetFont = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"

// ErrNoSheetFont is returned by LoadSheetFont when the font file is
// missing or not a TrueType font.
var ErrNoSheetFont = errors.New("evidence sheet font not usable")

// LoadSheetFont reads a TrueType font (.ttf) or the first font of a
// TrueType collection (.ttc), which is what the PDF writer needs.
func LoadSheetFont(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (install fonts-wqy-zenhei, see deploy/bootstrap)", ErrNoSheetFont, err)
	}
	ttf, err := firstFont(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoSheetFont, path, err)
	}
	return ttf, nil
}

// firstFont returns b if it is a TrueType font, or the first font of a
// TrueType collection rewritten as a standalone font: the offset table and
// the tables it lists, with offsets made relative to the new file.
func firstFont(b []byte) ([]byte, error) {
	if len(b) < 12 {
		return nil, errors.New("too short")
	}
	if string(b[:4]) != "ttcf" {
		if binary.BigEndian.Uint32(b) != 0x00010000 {
			return nil, errors.New("not a TrueType font (CFF-flavoured OpenType is not supported)")
		}
		return b, nil
	}
	off := int(binary.BigEndian.Uint32(b[12:]))
	if off+12 > len(b) {
		return nil, errors.New("bad collection header")
	}
	n := int(binary.BigEndian.Uint16(b[off+4:]))
	if binary.BigEndian.Uint32(b[off:]) != 0x00010000 || off+12+16*n > len(b) {
		return nil, errors.New("first font of the collection is not TrueType")
	}
	out := make([]byte, 12+16*n)
	copy(out, b[off:off+12])
	for i := range n {
		rec := b[off+12+16*i : off+12+16*i+16]
		to, l := int(binary.BigEndian.Uint32(rec[8:])), int(binary.BigEndian.Uint32(rec[12:]))
		if to < 0 || l < 0 || to+l > len(b) {
			return nil, errors.New("table outside the file")
		}
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
		newOff := len(out)
		out = append(out, b[to:to+l]...)
		r := out[12+16*i:]
		copy(r, rec)
		binary.BigEndian.PutUint32(r[8:], uint32(newOff))
	}
	return out, nil
}

// maxSheetImage bounds the bytes of one image placed on the sheet.
const maxSheetImage = 12 << 20

type sheetImage struct {
	ref  plume.MediaRef
	data []byte // re-encoded by sanitizeImage (images.go)
	bad  bool   // the media did not decode; the sheet says so
}

// loadSheetImages reads up to four still images for the sheet, scenes
// first, then plate and smoke close-ups, each sanitised (images.go).
func loadSheetImages(ctx context.Context, in *Input, media []plume.MediaRef) []sheetImage {
	var out []sheetImage
	for _, kind := range []plume.MediaKind{plume.MediaScene, plume.MediaPlate, plume.MediaSmoke} {
		for _, md := range media {
			if md.Kind != kind || len(out) == 4 {
				continue
			}
			if md.Size > maxSheetImage {
				out = append(out, sheetImage{ref: md, bad: true})
				continue
			}
			rc, err := in.OpenMedia(ctx, md.SHA256)
			if err != nil {
				continue
			}
			data, bad := readSheetImage(rc)
			rc.Close()
			out = append(out, sheetImage{ref: md, data: data, bad: bad})
		}
	}
	return out
}

var decisionLabel = map[string]string{
	central.DecisionApprove: "批准 approved",
	central.DecisionReject:  "驳回 rejected",
	central.DecisionConfirm: "复核确认 confirmed",
	central.DecisionReturn:  "退回 returned",
	central.DecisionPlate:   "更正号牌 plate corrected",
}

// renderSheetPDF writes the printable evidence sheet: one or two A4 pages
// for a police officer and a court.
func renderSheetPDF(ctx context.Context, in *Input, cf *CaseFile, custody []central.CustodyEntry) ([]byte, error) {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(cf.BuiltAt)
	pdf.SetModificationDate(cf.BuiltAt)
	pdf.SetTitle("Evidence sheet "+cf.Case.Number, true)
	pdf.SetAuthor(in.Organization, true)
	pdf.SetCreator("plume-central", true)
	pdf.AddUTF8FontFromBytes("zh", "", in.SheetFont)
	if err := pdf.Error(); err != nil {
		return nil, fmt.Errorf("evidence sheet font: %w", err)
	}
	pdf.SetMargins(15, 14, 15)
	pdf.SetAutoPageBreak(true, 16)
	pdf.AliasNbPages("{nb}")
	// Every time on the sheet is in one zone, named, to the second: the
	// same second as the pages and the images' strips.
	local := func(t time.Time) string { return plume.FormatTime(t, sheetZone) }
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("zh", "", 7)
		pdf.SetTextColor(90, 90, 90)
		pdf.CellFormat(120, 5, fmt.Sprintf("%s · %s · 本页由 plume-central 生成，证据包可用 plume-central verify 离线校验", cf.Case.Number, in.Organization), "", 0, "L", false, 0, "")
		pdf.CellFormat(60, 5, fmt.Sprintf("第 %d 页 / 共 {nb} 页  Page %d/{nb}", pdf.PageNo(), pdf.PageNo()), "", 0, "R", false, 0, "")
	})
	pdf.AddPage()
	const W = 180.0

	// Header band.
	pdf.SetFillColor(22, 52, 96)
	pdf.Rect(15, 14, W, 17, "F")
	pdf.SetTextColor(255, 255, 255)
	pdf.SetXY(18, 15.5)
	pdf.SetFont("zh", "", 15)
	pdf.CellFormat(120, 7, "机动车排放违法证据单", "", 0, "L", false, 0, "")
	pdf.SetFont("zh", "", 9)
	pdf.CellFormat(56, 7, "案件编号 Case No.", "", 1, "R", false, 0, "")
	pdf.SetX(18)
	pdf.CellFormat(110, 6, "Vehicle emissions violation — evidence sheet", "", 0, "L", false, 0, "")
	pdf.SetFont("zh", "", 12)
	pdf.CellFormat(66, 6, cf.Case.Number, "", 1, "R", false, 0, "")
	pdf.SetTextColor(20, 20, 20)
	pdf.SetY(34)

	row := func(label, value string, hi bool) {
		valueSize := 9.0
		if hi {
			valueSize = 9.5
		}
		// Both columns are measured in the font they are set in, so the
		// row is as tall as its taller cell.
		pdf.SetFont("zh", "", 8.5)
		labelLines := wrapText(pdf, label, 45)
		pdf.SetFont("zh", "", valueSize)
		valueLines := wrapText(pdf, value, W-53)
		h := float64(max(len(labelLines), len(valueLines), 1))*4.6 + 1.2
		x, y := pdf.GetX(), pdf.GetY()
		if y+h > 280 {
			pdf.AddPage()
			y = pdf.GetY()
		}
		pdf.SetFillColor(236, 240, 246)
		pdf.SetDrawColor(170, 178, 190)
		pdf.Rect(x, y, 48, h, "FD")
		pdf.Rect(x+48, y, W-48, h, "D")
		pdf.SetFont("zh", "", 8.5)
		for i, l := range labelLines {
			pdf.SetXY(x+1.5, y+0.6+float64(i)*4.6)
			pdf.CellFormat(45, 4.6, l, "", 0, "L", false, 0, "")
		}
		pdf.SetFont("zh", "", valueSize)
		if hi {
			pdf.SetTextColor(170, 0, 0)
		}
		for i, l := range valueLines {
			pdf.SetXY(x+50, y+0.6+float64(i)*4.6)
			pdf.CellFormat(W-53, 4.6, l, "", 0, "L", false, 0, "")
		}
		pdf.SetTextColor(20, 20, 20)
		pdf.SetXY(x, y+h)
	}
	section := func(title string) {
		if pdf.GetY() > 262 {
			pdf.AddPage()
		}
		pdf.Ln(2.5)
		pdf.SetFont("zh", "", 10.5)
		pdf.SetTextColor(22, 52, 96)
		pdf.CellFormat(W, 6, title, "B", 1, "L", false, 0, "")
		pdf.SetTextColor(20, 20, 20)
		pdf.Ln(1.2)
	}

	c := cf.Case
	plate := "未识别 not read"
	if c.Plate != "" {
		plate = c.Plate
		if c.PlateColour != "" {
			plate += "  (" + plateColourLabel(c.PlateColour) + ")"
		}
		if c.PlateRead != "" && c.PlateRead != c.Plate {
			plate += "  — 系统识别 read by the station: " + c.PlateRead + "，经审核员更正 corrected by the reviewer"
		}
	}
	place := fmt.Sprintf("%s %s, 车道 lane %d", cf.Station.ID, cf.Station.Name, cf.Pass.Reading.Lane)
	row("违法代码 Violation", ViolationCode+"  "+ViolationText, true)
	row("案件类型 Case kind", kindText(c), false)
	row("号牌 Vehicle plate", plate, false)
	row("检测时间 Time", local(cf.Pass.Reading.Time)+"（过车时刻 time of the pass）", false)
	row("检测地点 Place", place, false)
	row("判定依据 Standard cited", fmt.Sprintf("%s, limit profile %s@%s; 结果代码 result code %d (%s)", cf.Verdict.Standard, cf.Verdict.Profile, cf.Verdict.ProfileVersion, cf.Verdict.ResultCode, cf.Verdict.Outcome.Label()), false)

	section("测量值与限值  Measured values against the limits")
	pdf.SetFont("zh", "", 8.5)
	pdf.SetFillColor(22, 52, 96)
	pdf.SetTextColor(255, 255, 255)
	cols := []float64{52, 38, 48, 42}
	for i, h := range []string{"污染物 Pollutant", "测量值 Measured", "限值 Limit", "结果 Result"} {
		pdf.CellFormat(cols[i], 6, h, "1", 0, "C", true, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetTextColor(20, 20, 20)
	provisional := false
	for _, ck := range cf.Verdict.Checks {
		name := ck.Pollutant.Label()
		limit := num(ck.Limit) + " " + ck.Unit
		if ck.Source == plume.SourceCamera {
			name += " (摄像 camera)"
			limit = "≥ " + limit
		}
		if ck.Provisional {
			limit += " *"
			provisional = true
		}
		res := "未超标 within"
		if ck.Exceeded {
			res = "超标 EXCEEDED"
			pdf.SetFillColor(253, 232, 232)
		} else {
			pdf.SetFillColor(255, 255, 255)
		}
		pdf.SetFont("zh", "", 9)
		pdf.CellFormat(cols[0], 6, name, "1", 0, "L", true, 0, "")
		pdf.CellFormat(cols[1], 6, num(ck.Value)+" "+ck.Unit, "1", 0, "R", true, 0, "")
		pdf.CellFormat(cols[2], 6, limit, "1", 0, "R", true, 0, "")
		if ck.Exceeded {
			pdf.SetTextColor(170, 0, 0)
		}
		pdf.CellFormat(cols[3], 6, res, "1", 1, "C", true, 0, "")
		pdf.SetTextColor(20, 20, 20)
	}
	r := cf.Pass.Reading
	pdf.SetFont("zh", "", 8)
	pdf.Ln(1)
	notes := fmt.Sprintf("工况 Driving: %s km/h, %s m/s², slope %s %%, VSP %s kW/t.  环境 Ambient: %s °C, RH %s %%, wind %s m/s, %s kPa%s.",
		num(r.SpeedKmh), num(r.AccelMS2), num(r.SlopePct), num(cf.Verdict.VSP), num(r.Ambient.TempC), num(r.Ambient.HumidityPct), num(r.Ambient.WindMS), num(r.Ambient.PressureKPa), map[bool]string{true: ", rain", false: ""}[r.Ambient.Rain])
	if s := cf.Pass.SmokeSeen; s != nil && s.Smoky {
		notes += fmt.Sprintf("  摄像黑烟 Camera smoke: Ringelmann grade %d.", s.Grade)
	}
	pdf.MultiCell(W, 4.4, notes, "", "L", false)
	if provisional {
		pdf.SetTextColor(150, 80, 0)
		pdf.MultiCell(W, 4.4, "* 限值为暂定值（来自二手资料），执法前须与标准原文核对。Limit marked provisional (secondary sources): check it against the standard before enforcement.", "", "L", false)
		pdf.SetTextColor(20, 20, 20)
	}

	imgs := loadSheetImages(ctx, in, mediaRefs(cf.Media))
	if len(imgs) > 0 {
		section("现场图像  Images")
		const iw = 88.0
		for i, im := range imgs {
			name := fmt.Sprintf("img-%d", i)
			ih, err := registerSheetImage(pdf, name, im, iw, 62)
			if err != nil {
				return nil, err
			}
			x := 15 + float64(i%2)*(iw+4)
			if i%2 == 0 && pdf.GetY()+ih+8 > 280 {
				pdf.AddPage()
			}
			y := pdf.GetY()
			drawSheetImage(pdf, name, im, x, y, iw, ih)
			pdf.SetXY(x, y+ih+0.5)
			pdf.SetFont("zh", "", 6.5)
			pdf.CellFormat(iw, 3.4, fmt.Sprintf("%s  %s  %s", mediaKindLabel(im.ref.Kind), im.ref.Name, local(im.ref.CapturedAt)), "", 0, "L", false, 0, "")
			pdf.SetXY(x, y+ih+3.9)
			pdf.CellFormat(iw, 3.4, "sha256 "+im.ref.SHA256, "", 0, "L", false, 0, "")
			if i%2 == 1 || i == len(imgs)-1 {
				pdf.SetXY(15, y+ih+9)
			} else {
				pdf.SetXY(15, y)
			}
		}
	}

	section("审核记录  Reviewers")
	if len(c.Reviews) == 0 {
		pdf.SetFont("zh", "", 9)
		pdf.CellFormat(W, 6, "尚未审核 Not reviewed yet", "1", 1, "L", false, 0, "")
	}
	for _, rv := range c.Reviews {
		txt := rv.Comment
		if rv.Reason != "" {
			txt = strings.TrimSpace(rv.Reason + " " + txt)
		}
		row(local(rv.Time), fmt.Sprintf("%s  %s (%s, %s)  %s", decisionLabel[rv.Decision], rv.Name, rv.Officer, rv.Role, txt), false)
	}

	section("完整性  Integrity")
	row("证据编号 Evidence ID", string(cf.Evidence.ID), false)
	row("签名清单 Manifest SHA-256", cf.Evidence.ManifestSHA256, false)
	row("站点公钥 Station key", cf.Station.PublicKey, false)
	for _, md := range cf.Media {
		row("媒体 "+md.Name, fmt.Sprintf("%s  %d B  %s", md.SHA256, md.Size, md.Kind), false)
	}
	if n := len(custody); n > 0 {
		last := custody[n-1]
		row("监管链 Custody", fmt.Sprintf("%d entries, last: %s by %s at %s; its sha256 %s", n, central.ActionLabel(last.Action), last.Actor, local(last.Time), central.CustodyHash(central.EncodeCustody(last))), false)
	}
	row("接收 Received", local(cf.Evidence.ReceivedAt)+";  证据包生成 package built "+local(cf.BuiltAt), false)
	pdf.Ln(2)
	pdf.SetFont("zh", "", 7.5)
	pdf.MultiCell(W, 4, "站点在采集时以 Ed25519 密钥签署清单；清单列出每个媒体文件的 SHA-256。中心签署整个证据包（BagIt）。The station signed the manifest at capture; the manifest lists every media file's SHA-256; central signed the whole BagIt package, whose custody log only grows.", "", "L", false)

	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("evidence sheet pdf: %w", err)
	}
	return buf.Bytes(), nil
}

func mediaRefs(ms []MediaFile) []plume.MediaRef {
	out := make([]plume.MediaRef, len(ms))
	for i, m := range ms {
		out[i] = m.MediaRef
	}
	return out
}

func kindText(c *central.Case) string {
	s := c.Kind.Label()
	if s == "" {
		s = "—"
	}
	if c.RepeatNote != "" {
		s += ". " + c.RepeatNote
	}
	return s
}

func plateColourLabel(c plume.PlateColour) string {
	switch c {
	case plume.PlateBlue:
		return "蓝牌 blue"
	case plume.PlateYellow:
		return "黄牌 yellow"
	case plume.PlateGreen:
		return "绿牌 green"
	case plume.PlateWhite:
		return "白牌 white"
	case plume.PlateBlack:
		return "黑牌 black"
	}
	return string(c)
}

func mediaKindLabel(k plume.MediaKind) string {
	switch k {
	case plume.MediaScene:
		return "全景 scene"
	case plume.MediaPlate:
		return "号牌特写 plate"
	case plume.MediaSmoke:
		return "黑烟特写 smoke"
	case plume.MediaClip:
		return "视频 clip"
	}
	return string(k)
}

// wrapText breaks txt into lines that fit a cell w wide in the current
// font. It breaks at a space (dropped) or beside a CJK character (kept),
// never before closing punctuation, and inside a word only when the word
// alone is wider than the line. (fpdf's SplitText drops the character at
// a CJK break: "不合格" printed as "不合".)
func wrapText(pdf *fpdf.Fpdf, txt string, w float64) []string {
	avail := w - 2*pdf.GetCellMargin()
	var lines []string
	for _, para := range strings.Split(txt, "\n") {
		rs := []rune(para)
		if len(rs) == 0 {
			lines = append(lines, "")
		}
		for len(rs) > 0 {
			n, width := 0, 0.0
			for n < len(rs) {
				width += pdf.GetStringWidth(string(rs[n]))
				if width > avail {
					break
				}
				n++
			}
			if n == len(rs) {
				lines = append(lines, string(rs))
				break
			}
			cut, skip := max(n, 1), 0
			for k := n; k > 0; k-- {
				if rs[k] == ' ' {
					cut, skip = k, 1
					break
				}
				if (isCJK(rs[k]) || isCJK(rs[k-1])) && !strings.ContainsRune("，。；：、）)」』,.;:!?！？", rs[k]) {
					cut = k
					break
				}
			}
			lines = append(lines, strings.TrimRight(string(rs[:cut]), " "))
			rs = rs[cut+skip:]
		}
	}
	return lines
}

// isCJK reports whether r is a Han character or CJK punctuation, beside
// which a line may break.
func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || (r >= 0x3000 && r <= 0x303f) || (r >= 0xff00 && r <= 0xffef)
}

func num(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
