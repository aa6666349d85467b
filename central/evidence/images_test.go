package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/internal/fixture"
)

// TRNSPNG returns the 79-byte PNG of the security review (issue 14): a
// 1×1 grey image with an empty tRNS chunk, which panics fpdf's PNG parser.
func tRNSPNG() []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(b, typ...)
		b = append(b, data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
	}
	ihdr := []byte{0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0} // 1×1, 8-bit grey
	// zlib stream of the one scanline (filter 0, pixel 0).
	idat := []byte{0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01}
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, chunk("IHDR", ihdr)...)
	b = append(b, chunk("tRNS", nil)...)
	b = append(b, chunk("IDAT", idat)...)
	return append(b, chunk("IEND", nil)...)
}

// fakeJPEG begins like a JPEG and is not one.
var fakeJPEG = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00 this is not really a JPEG")

func goodJPEG(tb testing.TB) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 36))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func goodPNG(tb testing.TB) []byte {
	tb.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for x := range 40 {
		img.SetNRGBA(x, x%30, color.NRGBA{200, 30, 30, 128}) // with alpha
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

var sheetFont = sync.OnceValues(func() ([]byte, error) { return LoadSheetFont(DefaultSheetFont) })

func mustSheetFont(tb testing.TB) []byte {
	tb.Helper()
	f, err := sheetFont()
	if err != nil {
		tb.Skipf("no sheet font, the PDF sheet is not built: %v", err)
	}
	return f
}

// hostileInput is a package input whose scene images are the given bytes.
func hostileInput(tb testing.TB, images ...[]byte) *Input {
	tb.Helper()
	station := plume.StationID("GD-SZ-0001")
	var media []fixture.Media
	for i, b := range images {
		media = append(media, fixture.NewMedia("scene-"+string(rune('1'+i))+".jpg", plume.MediaScene, b, fixture.Epoch.Add(time.Duration(i)*time.Second)))
	}
	in, _ := testInputFor(tb, fixture.NewEvidenceMedia(tb, fixture.Key(string(station)), station, fixture.Epoch, 2, true, media))
	in.SheetFont = mustSheetFont(tb)
	return in
}

// writeSheet builds the package of in, checks that it verifies and
// returns its PDF sheet.
func writeSheet(tb testing.TB, in *Input) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, in); err != nil {
		tb.Fatalf("build: %v", err)
	}
	if rep, err := verify(buf.Bytes(), VerifyOptions{CentralKey: centralKey.Public().(ed25519.PublicKey)}); err != nil {
		tb.Fatalf("%v\n%s", err, rep)
	}
	pdf, ok := unzip(tb, buf.Bytes()).get(fileSheetPDF)
	if !ok {
		tb.Fatal("package has no PDF sheet")
	}
	return pdf
}

// TestSheetHostileImages: the images of the security review are built
// into a package whose sheet shows the good images and a note for each
// bad one, instead of crashing central or failing the build.
func TestSheetHostileImages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		images [][]byte
		want   int // images embedded in the PDF
	}{
		{"EmptyTRNSPNG", [][]byte{tRNSPNG(), goodJPEG(t)}, 1},
		{"FakeJPEG", [][]byte{fakeJPEG, goodJPEG(t)}, 1},
		{"Truncated", [][]byte{goodJPEG(t)[:200], goodPNG(t)[:60]}, 0},
		{"GoodPNGAndJPEG", [][]byte{goodPNG(t), goodJPEG(t)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "EmptyTRNSPNG" && len(tc.images[0]) != 79 {
				t.Fatalf("the review's PNG is 79 bytes, this is %d", len(tc.images[0]))
			}
			pdf := writeSheet(t, hostileInput(t, tc.images...))
			if n := bytes.Count(pdf, []byte("/Subtype /Image")); n != tc.want {
				t.Fatalf("%d images embedded, want %d", n, tc.want)
			}
		})
	}
}

func TestSanitizeImage(t *testing.T) {
	for _, b := range [][]byte{tRNSPNG(), fakeJPEG, nil, []byte("GIF89a"), goodJPEG(t)[:100]} {
		if _, err := sanitizeImage(b); err == nil {
			t.Errorf("%.12q decoded", b)
		}
	}
	// A tiny PNG that declares a huge image is refused before decoding.
	huge := goodPNG(t)
	binary.BigEndian.PutUint32(huge[16:], 100000)
	binary.BigEndian.PutUint32(huge[20:], 100000)
	if _, err := sanitizeImage(huge); err == nil {
		t.Error("a 10^10-pixel PNG decoded")
	}
	for _, b := range [][]byte{goodJPEG(t), goodPNG(t)} {
		out, err := sanitizeImage(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, format, err := image.DecodeConfig(bytes.NewReader(out)); err != nil || format != "jpeg" {
			t.Fatalf("re-encoded as %s: %v", format, err)
		}
	}
}

// FuzzSheet puts arbitrary media bytes through the sheet's image path
// (sanitise, register with the PDF library, draw, write the PDF): it must
// never panic, and whatever decodes must embed. Only the image path is
// fuzzed, without the CJK font, whose embedding makes one whole sheet
// take seconds under the fuzzer; TestSheetHostileImages and the packer's
// FuzzPackageBuild run the whole builder.
func FuzzSheet(f *testing.F) {
	f.Add(tRNSPNG())
	f.Add(fakeJPEG)
	f.Add(goodJPEG(f))
	f.Add(goodPNG(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		im := sheetImage{ref: plume.MediaRef{Name: "scene-1.jpg", Kind: plume.MediaScene}}
		im.data, im.bad = readSheetImage(bytes.NewReader(b))
		pdf := fpdf.New("P", "mm", "A4", "")
		pdf.AddPage()
		ih, err := registerSheetImage(pdf, "img-0", im, 88, 62)
		if err != nil {
			t.Fatalf("a sanitised image did not register: %v", err)
		}
		if ih <= 0 || ih > 62 {
			t.Fatalf("height %v", ih)
		}
		if !im.bad {
			drawSheetImage(pdf, "img-0", im, 15, 20, 88, ih)
		}
		if err := pdf.Output(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
}
