package vision

import (
	"testing"

	"github.com/plume-emissions/plume"
)

func read(text string, conf float64, colour plume.PlateColour, crop string) Plate {
	p := Plate{Text: text, Colour: colour, Confidence: conf, Crop: []byte(crop)}
	for _, r := range text {
		p.Chars = append(p.Chars, Char{Char: string(r), Confidence: conf})
	}
	return p
}

func TestVotePlates(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		v, ok := VotePlates([]Plate{
			read("皖A12345", 0.9, plume.PlateBlue, "a"),
			read("皖A12846", 0.5, plume.PlateBlue, "b"), // two characters wrong, low confidence
			read("皖A1234", 0.99, plume.PlateBlue, "c"), // too short: another length
			read("皖A12345", 0.8, plume.PlateBlue, "d"),
			read("鲁A12345", 0.4, plume.PlateYellow, "e"),
		})
		if !ok {
			t.Fatal("no vote")
		}
		if v.Plate.Text != "皖A12345" || v.Agreeing != 2 || v.Reads != 5 {
			t.Fatalf("vote = %q agreeing %d of %d", v.Plate.Text, v.Agreeing, v.Reads)
		}
		if string(v.Plate.Crop) != "a" {
			t.Fatalf("best crop %q, want the 0.9 read's", v.Plate.Crop)
		}
		if v.Plate.Colour != plume.PlateBlue || !v.Plate.Valid {
			t.Fatalf("colour %s valid %v", v.Plate.Colour, v.Plate.Valid)
		}
		if c := v.Plate.Chars[0].Confidence; c <= 0 || c > 1 {
			t.Fatalf("char confidence %v", c)
		}
	})
	t.Run("CombinesCharacters", func(t *testing.T) {
		// No single read is right; per-character voting is.
		a := read("皖A12345", 0.8, plume.PlateBlue, "a")
		a.Chars[6] = Char{"8", 0.3}
		b := read("皖A12345", 0.8, plume.PlateBlue, "b")
		b.Chars[0] = Char{"鲁", 0.3}
		c := read("皖A12345", 0.8, plume.PlateBlue, "c")
		c.Chars[3] = Char{"7", 0.2}
		for _, p := range []*Plate{&a, &b, &c} {
			p.Text = ""
			for _, ch := range p.Chars {
				p.Text += ch.Char
			}
		}
		v, _ := VotePlates([]Plate{a, b, c})
		if v.Plate.Text != "皖A12345" || v.Agreeing != 0 {
			t.Fatalf("vote = %q agreeing %d", v.Plate.Text, v.Agreeing)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		if _, ok := VotePlates(nil); ok {
			t.Fatal("vote from nothing")
		}
		if _, ok := VotePlates([]Plate{{}}); ok {
			t.Fatal("vote from empty reads")
		}
	})
}
