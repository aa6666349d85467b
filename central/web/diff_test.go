package web

import (
	"fmt"
	"strings"
	"testing"
)

// renderDiff writes a diff one line per entry: the mark, the old and new
// line numbers ("-" for none), the text.
func renderDiff(d []diffLine) string {
	num := func(n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%02d", n)
	}
	var b strings.Builder
	for _, l := range d {
		fmt.Fprintf(&b, "%c %s,%s %s\n", l.Op, num(l.Old), num(l.New), l.Text)
	}
	return b.String()
}

func TestLineDiff(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"BothEmpty", "", "", ""},
		{"AllNew", "", "a\nb\n", "+ -,01 a\n+ -,02 b\n"},
		{"AllGone", "a\nb", "", "- 01,- a\n- 02,- b\n"},
		{"Same", "a\nb\n", "a\nb", "  01,01 a\n  02,02 b\n"},
		{"ChangedMiddle", "a\nb\nc\n", "a\nB\nc\n", "  01,01 a\n- 02,- b\n+ -,02 B\n  03,03 c\n"},
		{"Inserted", "a\nc\n", "a\nb\nc\n", "  01,01 a\n+ -,02 b\n  02,03 c\n"},
		{"Removed", "a\nb\nc\n", "a\nc\n", "  01,01 a\n- 02,- b\n  03,02 c\n"},
		{"CRLF", "a\r\nb\r\n", "a\nb\n", "  01,01 a\n  02,02 b\n"},
		// The common subsequence keeps x and y; only the moved z changes.
		{"Moved", "z\nx\ny\n", "x\ny\nz\n", "- 01,- z\n  02,01 x\n  03,02 y\n+ -,03 z\n"},
		{"YAML", "profiles:\n  - GB3847\nzones:\n  rear: [0, 0, 10, 10]\n", "profiles:\n  - GB3847\n  - HJ845\nzones:\n  rear: [0, 0, 12, 10]\n",
			"  01,01 profiles:\n  02,02   - GB3847\n+ -,03   - HJ845\n  03,04 zones:\n- 04,-   rear: [0, 0, 10, 10]\n+ -,05   rear: [0, 0, 12, 10]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := lineDiff(tc.old, tc.new)
			if got := renderDiff(d); got != tc.want {
				t.Fatalf("lineDiff:\n%s\nwant:\n%s", got, tc.want)
			}
			// Rebuilding both texts from the diff gives them back.
			var o, n []string
			for _, l := range d {
				if l.Op != '+' {
					o = append(o, l.Text)
				}
				if l.Op != '-' {
					n = append(n, l.Text)
				}
			}
			if !equalLines(o, splitLines(tc.old)) || !equalLines(n, splitLines(tc.new)) {
				t.Fatalf("the diff does not rebuild its texts: %q %q", o, n)
			}
		})
	}
}

// TestLineDiffLarge: texts too large for the LCS table still diff, as
// the differing middle removed and added, around the common head and tail.
func TestLineDiffLarge(t *testing.T) {
	var a, b strings.Builder
	for i := range 3000 {
		a.WriteString("a" + strings.Repeat("x", i%7) + "\n")
		b.WriteString("b" + strings.Repeat("y", i%5) + "\n")
	}
	old, new := "head\n"+a.String()+"tail\n", "head\n"+b.String()+"tail\n"
	d := lineDiff(old, new)
	added, removed := diffChanged(d)
	if added != 3000 || removed != 3000 || len(d) != 6002 || d[0].Text != "head" || d[len(d)-1].Text != "tail" || d[len(d)-1].Old != 3002 || d[len(d)-1].New != 3002 {
		t.Fatalf("large diff: +%d −%d in %d lines, first %+v, last %+v", added, removed, len(d), d[0], d[len(d)-1])
	}
}

func equalLines(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n") && len(a) == len(b)
}
