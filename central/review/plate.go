package review

import (
	"strings"
	"unicode/utf8"

	"github.com/plume-emissions/plume"
)

// provinces open a GA 36 plate.
const provinces = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

// checkPlate checks an officer's plate correction against the GA 36
// shape: a province, a letter, then letters (no I or O) and digits, 7
// characters in all (the last may be 学警港澳挂领) or 8 for new energy.
func checkPlate(p string) error {
	r := []rune(p)
	bad := func(why string) error { return plume.Errorf(plume.EINVALID, "plate %q: %s", p, why) }
	if !utf8.ValidString(p) || (len(r) != 7 && len(r) != 8) {
		return bad("want 7 characters (8 for new-energy plates)")
	}
	if !strings.ContainsRune(provinces, r[0]) {
		return bad("the first character must be a province")
	}
	letter := func(c rune) bool { return c >= 'A' && c <= 'Z' && c != 'I' && c != 'O' }
	if !letter(r[1]) {
		return bad("the second character must be a letter (not I or O)")
	}
	for i, c := range r[2:] {
		last := i+2 == len(r)-1
		if letter(c) || (c >= '0' && c <= '9') || (last && len(r) == 7 && strings.ContainsRune("学警港澳挂领", c)) {
			continue
		}
		return bad("only letters (not I or O) and digits after the second character")
	}
	return nil
}
