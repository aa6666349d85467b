package web

import (
	"encoding/csv"
	"io"
	"io/fs"
	"net/http"
	"strings"
)

// csvWriter writes CSV whose cells a spreadsheet will not run: a cell
// starting with = + - @, a tab or a carriage return is prefixed with ' (a
// username "=HYPERLINK(…)" in audit.csv is then text, not a formula).
type csvWriter struct{ w *csv.Writer }

func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{w: csv.NewWriter(w)} }

func (c *csvWriter) Write(row []string) error {
	out := make([]string, len(row))
	for i, v := range row {
		out[i] = csvCell(v)
	}
	return c.w.Write(out)
}

func (c *csvWriter) Flush() { c.w.Flush() }

func csvCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// noListing serves fsys's files and answers 404 for directories, so
// /static/ does not list what it holds.
func noListing(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if st, err := fs.Stat(fsys, name); err != nil || st.IsDir() || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// safeNext returns next if it is a path on this site to go to after
// sign-in, else "/queue". Only paths starting with a single "/", without
// backslashes or control characters (a browser drops a tab, so "/\t/evil"
// would become "//evil", another site), are kept.
func safeNext(next string) string {
	if len(next) < 1 || next[0] != '/' || len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return "/queue"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/queue"
		}
	}
	return next
}
