package vision

import (
	"unicode/utf8"

	"github.com/plume-emissions/plume"
)

// Vote is the combined reading of one tracked vehicle over several frames.
type Vote struct {
	Plate    Plate // combined text and confidences; Crop, Box and Corners from the best single read
	Reads    int   // reads considered
	Agreeing int   // reads whose text equals the combined text
}

// VotePlates combines reads of one vehicle's plate across frames. The plate
// length (7 or 8) with the largest total confidence wins; then, per
// character position, the character with the largest summed confidence
// among reads of that length. A character's combined confidence is its
// summed confidence divided by the number of those reads, the plate's the
// product. Colour and double-row are voted the same way. The best single
// read (highest confidence, preferring one that matches the combined text)
// supplies the crop and geometry. It returns false when reads is empty or
// every read is empty.
func VotePlates(reads []Plate) (Vote, bool) {
	byLen := map[int]float64{}
	for _, p := range reads {
		if n := len(p.Chars); n > 0 {
			byLen[n] += p.Confidence + 1e-9
		}
	}
	n, bestW := 0, -1.0
	for l, w := range byLen {
		if w > bestW || (w == bestW && l < n) {
			n, bestW = l, w
		}
	}
	if n == 0 {
		return Vote{}, false
	}
	type tally map[string]float64
	pos := make([]tally, n)
	for i := range pos {
		pos[i] = tally{}
	}
	colours := map[plume.PlateColour]float64{}
	double := 0.0
	count := 0
	for _, p := range reads {
		if len(p.Chars) != n {
			continue
		}
		count++
		w := p.Confidence + 1e-9
		colours[p.Colour] += w
		if p.DoubleRow {
			double += w
		} else {
			double -= w
		}
		for i, c := range p.Chars {
			pos[i][c.Char] += c.Confidence + 1e-9
		}
	}
	var out Plate
	out.Confidence = 1
	for _, t := range pos {
		best, bw := "", -1.0
		for ch, w := range t {
			if w > bw || (w == bw && ch < best) {
				best, bw = ch, w
			}
		}
		c := Char{Char: best, Confidence: min(1, bw/float64(count))}
		out.Chars = append(out.Chars, c)
		out.Text += best
		out.Confidence *= c.Confidence
	}
	bestC, cw := plume.PlateColour(""), -1.0
	for c, w := range colours {
		if w > cw || (w == cw && c < bestC) {
			bestC, cw = c, w
		}
	}
	out.Colour = bestC
	out.DoubleRow = double > 0
	out.Valid = plume.ValidatePlateText(out.Text) == nil
	out.Kind = kind(out.Colour, out.DoubleRow, utf8.RuneCountInString(out.Text))

	v := Vote{Reads: len(reads)}
	bi := -1
	for i, p := range reads {
		if p.Text == out.Text {
			v.Agreeing++
		}
		if bi < 0 || better(p, reads[bi], out.Text) {
			bi = i
		}
	}
	b := reads[bi]
	out.Crop, out.Box, out.Corners, out.LocateScore = b.Crop, b.Box, b.Corners, b.LocateScore
	v.Plate = out
	return v, true
}

// better reports whether a is a better representative read than b.
func better(a, b Plate, text string) bool {
	am, bm := a.Text == text, b.Text == text
	if am != bm {
		return am
	}
	return a.Confidence > b.Confidence
}
