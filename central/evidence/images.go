package evidence

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png" // PNG media decodes for the sheet
	"io"

	"github.com/go-pdf/fpdf"
)

// Every media byte comes from a station and is hostile input. The PDF
// library parses images itself and can panic on malformed ones (an empty
// tRNS chunk in a PNG indexes out of range inside fpdf), so no station
// byte ever reaches it: each image is decoded with the standard library,
// bounded in size, and re-encoded as a baseline JPEG that central wrote.
// An image that does not decode is shown on the sheet as a framed note,
// and the package is built all the same: the original bytes stay in the
// package's media with their digests, for anyone to examine.

// maxSheetPixels bounds the decoded size of one sheet image (about 16
// megapixels; cameras deliver 1080p), so a small file declaring a huge
// image cannot exhaust memory.
const maxSheetPixels = 16 << 20

// errImageUndecodable is returned by sanitizeImage for bytes that are not
// a PNG or JPEG image the standard library decodes within the bounds.
var errImageUndecodable = errors.New("image could not be decoded")

// sanitizeImage decodes b as a PNG or JPEG image and returns it re-encoded
// as a JPEG.
func sanitizeImage(b []byte) ([]byte, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errImageUndecodable, err)
	}
	if format != "png" && format != "jpeg" {
		return nil, fmt.Errorf("%w: format %s", errImageUndecodable, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxSheetPixels {
		return nil, fmt.Errorf("%w: %d×%d pixels", errImageUndecodable, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errImageUndecodable, err)
	}
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("%w: empty image", errImageUndecodable)
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil, fmt.Errorf("re-encode image: %w", err)
	}
	return out.Bytes(), nil
}

// readSheetImage reads one media item for the sheet and sanitises it; an
// item that does not decode comes back marked bad, not as an error.
func readSheetImage(rc io.Reader) (data []byte, bad bool) {
	b, err := io.ReadAll(io.LimitReader(rc, maxSheetImage))
	if err != nil {
		return nil, true
	}
	out, err := sanitizeImage(b)
	if err != nil {
		return nil, true
	}
	return out, false
}

// undecodableHeight is the height (mm) of the note that stands in for an
// image that could not be decoded.
const undecodableHeight = 30.0

// registerSheetImage registers im with pdf under name and returns its
// height when drawn iw wide, at most maxH.
func registerSheetImage(pdf *fpdf.Fpdf, name string, im sheetImage, iw, maxH float64) (float64, error) {
	if im.bad {
		return undecodableHeight, nil
	}
	info := pdf.RegisterImageOptionsReader(name, fpdf.ImageOptions{ImageType: "JPG"}, bytes.NewReader(im.data))
	if pdf.Err() || info == nil || info.Width() <= 0 {
		return 0, fmt.Errorf("evidence sheet image %s: %w", im.ref.Name, pdf.Error())
	}
	return min(iw*info.Height()/info.Width(), maxH), nil
}

// drawSheetImage draws a registered image at (x, y), ih high, or the note
// for an image that could not be decoded, iw wide.
func drawSheetImage(pdf *fpdf.Fpdf, name string, im sheetImage, x, y, iw, ih float64) {
	if !im.bad {
		pdf.ImageOptions(name, x, y, 0, ih, false, fpdf.ImageOptions{ImageType: "JPG"}, 0, "")
		return
	}
	pdf.SetDrawColor(150, 80, 0)
	pdf.Rect(x, y, iw, ih, "D")
	pdf.SetDrawColor(0, 0, 0)
	pdf.SetXY(x+2, y+ih/2-4)
	pdf.SetFont("zh", "", 8)
	pdf.SetTextColor(150, 80, 0)
	pdf.MultiCell(iw-4, 4, "图像无法解码 image could not be decoded\n(原始文件见证据包 media/ the original is in the package)", "", "C", false)
	pdf.SetTextColor(20, 20, 20)
}
