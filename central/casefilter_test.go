package central_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// TestParseCaseFilter: the API and the web queue read a filter the same
// way; a value that cannot be read is an error, never dropped or capped.
func TestParseCaseFilter(t *testing.T) {
	sh := time.FixedZone("UTC+8", 8*3600)
	t.Run("OK", func(t *testing.T) {
		q, _ := url.ParseQuery("station=GD-SZ-0001&status=open&kind=smoke&pollutant=NO&plate=+%E7%B2%A4b12345+&from=2026-06-01&to=2026-06-02&grade=2&limit=200&sort=-grade&cursor=x")
		f, err := central.ParseCaseFilter(q, sh, central.KindUnlinked)
		if err != nil {
			t.Fatal(err)
		}
		if f.Station != "GD-SZ-0001" || f.Status != central.CaseOpen || f.Kind != central.KindSmoke || f.ExcludeKind != "" ||
			f.Pollutant != "NO" || f.Plate != "粤B12345" || f.MinGrade != 2 || f.Limit != 200 || f.Cursor != "x" ||
			f.SortBy != central.SortGrade || !f.Descending {
			t.Fatalf("filter %+v", f)
		}
		if want := time.Date(2026, 6, 1, 0, 0, 0, 0, sh); !f.From.Equal(want) {
			t.Errorf("from %v, want %v", f.From, want)
		}
		if want := time.Date(2026, 6, 3, 0, 0, 0, 0, sh); !f.To.Equal(want) {
			t.Errorf("to %v, want %v (the to day is included)", f.To, want)
		}
	})
	t.Run("Defaults", func(t *testing.T) {
		f, err := central.ParseCaseFilter(url.Values{}, sh, central.KindUnlinked)
		if err != nil || f.ExcludeKind != central.KindUnlinked || f.Limit != central.DefaultPageSize {
			t.Fatalf("web defaults %+v, %v", f, err)
		}
		f, err = central.ParseCaseFilter(url.Values{}, sh, "")
		if err != nil || f.ExcludeKind != "" || f.Kind != "" {
			t.Fatalf("API defaults %+v, %v", f, err)
		}
		f, err = central.ParseCaseFilter(url.Values{"kind": {"all"}}, sh, central.KindUnlinked)
		if err != nil || f.ExcludeKind != "" || f.Kind != "" {
			t.Fatalf("kind=all %+v, %v", f, err)
		}
	})
	for name, raw := range map[string]string{
		"ErrStatus":    "status=OPEN",
		"ErrKind":      "kind=bogus",
		"ErrStation":   "station=../x",
		"ErrDay":       "from=2026-13-01",
		"ErrGrade":     "grade=6",
		"ErrLimitHigh": "limit=501",
		"ErrLimitZero": "limit=0",
		"ErrSort":      "sort=nope",
	} {
		t.Run(name, func(t *testing.T) {
			q, _ := url.ParseQuery(raw)
			_, err := central.ParseCaseFilter(q, sh, "")
			if plume.ErrorCode(err) != plume.EINVALID {
				t.Fatalf("%s: got %v, want an EINVALID error", raw, err)
			}
		})
	}
}
