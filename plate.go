package plume

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// PlateProvinces are the province abbreviations that open a GA 36 plate.
const PlateProvinces = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

// plateLetters are the Latin letters GA 36 uses: A–Z without I and O.
const plateLetters = "ABCDEFGHJKLMNPQRSTUVWXYZ"

// plateSuffixes may end a 7-character plate: coach (学), police (警),
// Hong Kong (港), Macau (澳), trailer (挂), consulate (领).
const plateSuffixes = "学警港澳挂领"

// ErrPlateText is returned by ValidatePlateText when a text does not follow
// the GA 36 plate grammar. The wrapped message says which rule failed.
var ErrPlateText = errors.New("invalid plate text")

// ValidatePlateText checks text against the GA 36 plate grammar: a province
// character, a letter, then alphanumerics without I or O — 7 characters in
// all, or 8 for a new-energy plate (whose third or last character is D or F).
// A 7-character plate may end in one of 学警港澳挂领. Embassy plates (使…)
// are accepted as 使 followed by 6 digits.
func ValidatePlateText(text string) error {
	if !utf8.ValidString(text) {
		return fmt.Errorf("%w: not UTF-8", ErrPlateText)
	}
	r := []rune(text)
	if len(r) != 7 && len(r) != 8 {
		return fmt.Errorf("%w: %d characters, want 7 or 8", ErrPlateText, len(r))
	}
	if r[0] == '使' && len(r) == 7 {
		for i, c := range r[1:] {
			if c < '0' || c > '9' {
				return fmt.Errorf("%w: character %d of an embassy plate is %q, want a digit", ErrPlateText, i+2, c)
			}
		}
		return nil
	}
	if !strings.ContainsRune(PlateProvinces, r[0]) {
		return fmt.Errorf("%w: first character %q is not a province", ErrPlateText, r[0])
	}
	if !strings.ContainsRune(plateLetters, r[1]) {
		return fmt.Errorf("%w: second character %q is not a letter (I and O excluded)", ErrPlateText, r[1])
	}
	alnum := func(c rune) bool { return (c >= '0' && c <= '9') || strings.ContainsRune(plateLetters, c) }
	for i := 2; i < len(r); i++ {
		c := r[i]
		if alnum(c) {
			continue
		}
		if i == len(r)-1 && len(r) == 7 && strings.ContainsRune(plateSuffixes, c) {
			continue
		}
		return fmt.Errorf("%w: character %d %q is not allowed", ErrPlateText, i+1, c)
	}
	if len(r) == 8 && !strings.ContainsRune("DF", r[2]) && !strings.ContainsRune("DF", r[7]) {
		return fmt.Errorf("%w: new-energy plate needs D or F third or last", ErrPlateText)
	}
	return nil
}
