package web

import "strings"

// diffLine is one line of a line diff: kept (' '), removed ('-') or added
// ('+'), with its number in the old and the new text (0 where it has
// none).
type diffLine struct {
	Op       byte
	Old, New int
	Text     string
}

// Class is the line's CSS class.
func (l diffLine) Class() string {
	switch l.Op {
	case '+':
		return "d-add"
	case '-':
		return "d-del"
	}
	return "d-same"
}

// Mark is the line's sign in the diff column.
func (l diffLine) Mark() string {
	switch l.Op {
	case '+':
		return "+"
	case '-':
		return "−"
	}
	return ""
}

// Title names the change in words, Chinese first.
func (l diffLine) Title() string {
	switch l.Op {
	case '+':
		return "新增 added"
	case '-':
		return "删除 removed"
	}
	return "未变 unchanged"
}

// maxDiffCells bounds the LCS table; two texts whose differing middles
// are larger are shown as the old middle removed and the new one added.
const maxDiffCells = 4 << 20

// lineDiff compares two texts line by line (a longest common subsequence
// of lines) and returns every line of both, in order: the lines of old
// that new lacks marked '-', those new adds marked '+'.
func lineDiff(old, new string) []diffLine {
	a, b := splitLines(old), splitLines(new)
	// The common head and tail need no table.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	out := make([]diffLine, 0, len(a)+len(b))
	for i := range pre {
		out = append(out, diffLine{Op: ' ', Old: i + 1, New: i + 1, Text: a[i]})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(ma), len(mb)
	oi, ni := pre, pre // lines of a and b emitted so far
	del := func(i int) { oi++; out = append(out, diffLine{Op: '-', Old: oi, Text: ma[i]}) }
	add := func(j int) { ni++; out = append(out, diffLine{Op: '+', New: ni, Text: mb[j]}) }
	if (n+1)*(m+1) > maxDiffCells {
		for i := range n {
			del(i)
		}
		for j := range m {
			add(j)
		}
	} else {
		// lcs[i*(m+1)+j] is the LCS length of ma[i:] and mb[j:].
		lcs := make([]int32, (n+1)*(m+1))
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i*(m+1)+j] = lcs[(i+1)*(m+1)+j+1] + 1
				} else {
					lcs[i*(m+1)+j] = max(lcs[(i+1)*(m+1)+j], lcs[i*(m+1)+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && ma[i] == mb[j]:
				oi, ni = oi+1, ni+1
				out = append(out, diffLine{Op: ' ', Old: oi, New: ni, Text: ma[i]})
				i, j = i+1, j+1
			case j == m || i < n && lcs[(i+1)*(m+1)+j] >= lcs[i*(m+1)+j+1]:
				del(i)
				i++
			default:
				add(j)
				j++
			}
		}
	}
	for k := range suf {
		oi, ni = oi+1, ni+1
		out = append(out, diffLine{Op: ' ', Old: oi, New: ni, Text: a[len(a)-suf+k]})
	}
	return out
}

// splitLines splits a text into lines without their endings; a final
// line ending does not start another line, and "" has no lines.
func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffChanged counts the lines a diff adds and removes.
func diffChanged(d []diffLine) (added, removed int) {
	for _, l := range d {
		switch l.Op {
		case '+':
			added++
		case '-':
			removed++
		}
	}
	return added, removed
}
