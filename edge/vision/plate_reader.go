package vision

import (
	"context"

	"gocv.io/x/gocv"
)

// Reader implements PlateReader for the camera pipeline.
var _ PlateReader = (*Reader)(nil)

// ReadVehicle reads the best plate in an image of one vehicle (a frame or
// a vehicle region). Unlike Read, it never treats a small image as a plate
// crop unless Options.Crop is set.
func (r *Reader) ReadVehicle(ctx context.Context, img gocv.Mat) (PlateRead, bool, error) {
	res, err := r.read(ctx, img, r.opt.Crop)
	if err != nil {
		return PlateRead{}, false, err
	}
	if len(res.Plates) == 0 {
		return PlateRead{}, false, nil
	}
	return plateRead(res.Plates[0]), true, nil
}

// Vote combines reads of one vehicle with VotePlates.
func (r *Reader) Vote(reads []PlateRead) (PlateRead, bool) {
	ps := make([]Plate, 0, len(reads))
	for _, rd := range reads {
		if p, ok := rd.raw.(Plate); ok {
			ps = append(ps, p)
			continue
		}
		// A read from elsewhere: rebuild the characters from the text.
		p := Plate{Text: rd.Plate.Text, Colour: rd.Plate.Colour, DoubleRow: rd.Plate.DoubleRow, Confidence: rd.Plate.Confidence}
		for i, c := range []rune(rd.Plate.Text) {
			conf := rd.Plate.Confidence
			if i < len(rd.Chars) {
				conf = rd.Chars[i]
			}
			p.Chars = append(p.Chars, Char{Char: string(c), Confidence: conf})
		}
		p.Box = Box{rd.Box.Min.X, rd.Box.Min.Y, rd.Box.Dx(), rd.Box.Dy()}
		ps = append(ps, p)
	}
	v, ok := VotePlates(ps)
	if !ok {
		return PlateRead{}, false
	}
	return plateRead(v.Plate), true
}

func plateRead(p Plate) PlateRead {
	chars := make([]float64, len(p.Chars))
	for i, c := range p.Chars {
		chars[i] = c.Confidence
	}
	return PlateRead{Plate: p.Plume(), Chars: chars, Box: p.Box.Rect(), raw: p}
}
