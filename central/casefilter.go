package central

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
)

// CaseKinds lists every kind of case.
var CaseKinds = []CaseKind{KindWarning, KindEnforcement, KindUnlinked, KindSmoke}

// Valid reports whether k is a known kind.
func (k CaseKind) Valid() bool { return slices.Contains(CaseKinds, k) }

// ParseCaseFilter reads a case filter from query parameters. The API
// (GET /api/v1/cases) and the web app's queue both use it, so a filter
// means the same in both:
//
//   - station: a station ID;
//   - status: a CaseStatus;
//   - kind: a CaseKind, or "all"; when empty, every kind but setAside (the
//     web queue sets unlinked cases aside; the API passes "" and lists all);
//   - pollutant: a pollutant code;
//   - plate: an exact plate, trimmed and upper-cased;
//   - from, to: days (YYYY-MM-DD) in loc, both included;
//   - grade: the lowest camera smoke grade, 0–5;
//   - sort: see ParseCaseSort; cursor: from a previous page;
//   - limit: 1 to MaxPageSize (DefaultPageSize when absent).
//
// A value it cannot read is an EINVALID error naming the parameter, never
// silently ignored or capped.
func ParseCaseFilter(q url.Values, loc *time.Location, setAside CaseKind) (CaseFilter, error) {
	f := CaseFilter{
		Station:   plume.StationID(q.Get("station")),
		Status:    CaseStatus(q.Get("status")),
		Pollutant: plume.Pollutant(q.Get("pollutant")),
		Plate:     strings.ToUpper(strings.TrimSpace(q.Get("plate"))),
		Cursor:    q.Get("cursor"),
		Limit:     DefaultPageSize,
	}
	if f.Station != "" {
		if err := f.Station.Validate(); err != nil {
			return f, err
		}
	}
	if f.Status != "" && !f.Status.Valid() {
		return f, plume.Errorf(plume.EINVALID, "unknown status %q", f.Status)
	}
	switch k := q.Get("kind"); k {
	case "":
		f.ExcludeKind = setAside
	case "all":
	default:
		if f.Kind = CaseKind(k); !f.Kind.Valid() {
			return f, plume.Errorf(plume.EINVALID, "unknown kind %q", k)
		}
	}
	if len(f.Pollutant) > 32 {
		return f, plume.Errorf(plume.EINVALID, "bad pollutant")
	}
	if len(f.Plate) > 16 {
		return f, plume.Errorf(plume.EINVALID, "plate is too long")
	}
	var err error
	if f.From, err = parseDay(q.Get("from"), loc, false); err != nil {
		return f, err
	}
	if f.To, err = parseDay(q.Get("to"), loc, true); err != nil {
		return f, err
	}
	if g := q.Get("grade"); g != "" {
		n, err := strconv.Atoi(g)
		if err != nil || n < 0 || n > 5 {
			return f, plume.Errorf(plume.EINVALID, "grade must be 0–5")
		}
		f.MinGrade = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			return f, plume.Errorf(plume.EINVALID, "limit must be 1–%d", MaxPageSize)
		}
		f.Limit = n
	}
	return f, ParseCaseSort(&f, q.Get("sort"))
}

// parseDay reads a day (YYYY-MM-DD) in loc: its start, or with end the start
// of the next day. An empty value is the zero time.
func parseDay(s string, loc *time.Location, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02", s, loc)
	if err != nil {
		return time.Time{}, plume.Errorf(plume.EINVALID, "bad day %q: want YYYY-MM-DD", s)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}
