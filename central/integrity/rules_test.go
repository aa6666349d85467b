package integrity_test

import (
	"context"
	"strings"
	"testing"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/integrity"
)

func TestDefaultRules(t *testing.T) {
	rs := mustRules(t)
	kinds := map[string]bool{}
	for _, r := range rs.Rules {
		kinds[r.Kind] = true
		if r.Category() == "" {
			t.Errorf("rule %s has no category", r.ID)
		}
	}
	for _, k := range []string{integrity.KindMissingPasses, integrity.KindMissingStatus, integrity.KindDuplicateRecords,
		integrity.KindConstantValue, integrity.KindIdenticalSignature, integrity.KindImpossibleValue, integrity.KindSuddenJump,
		integrity.KindRatioAnomaly, integrity.KindLimitHugging, integrity.KindCameraCounts, integrity.KindReplay} {
		if !kinds[k] {
			t.Errorf("shipped rule set has no %s rule", k)
		}
	}
}

func TestParseRules(t *testing.T) {
	const head = "version: \"1\"\ntitle: t\nrules:\n"
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"OK", head + "  - {id: a, kind: replay, version: 1, severity: critical, title: A, params: {min_run: 7}}\n", ""},
		{"OKDefaults", head + "  - {id: a, kind: sudden_jump, version: 2, severity: info, title: A}\n", ""},
		{"ErrUnknownParam", head + "  - {id: a, kind: replay, version: 1, severity: critical, title: A, params: {min_runs: 7}}\n", "min_runs"},
		{"ErrUnknownField", head + "  - {id: a, kind: replay, version: 1, severity: critical, title: A, colour: red}\n", "colour"},
		{"ErrUnknownKind", head + "  - {id: a, kind: astrology, version: 1, severity: critical, title: A}\n", "unknown kind"},
		{"ErrDuplicateID", head + "  - {id: a, kind: replay, version: 1, severity: info, title: A}\n  - {id: a, kind: replay, version: 1, severity: info, title: A}\n", "twice"},
		{"ErrNoVersion", head + "  - {id: a, kind: replay, severity: info, title: A}\n", "version"},
		{"ErrBadSeverity", head + "  - {id: a, kind: replay, version: 1, severity: dire, title: A}\n", "severity"},
		{"ErrBadParam", head + "  - {id: a, kind: limit_hugging, version: 1, severity: info, title: A, params: {band: 1.2}}\n", "band"},
		{"ErrUnknownGasField", head + "  - {id: a, kind: constant_value, version: 1, severity: info, title: A, params: {fields: [xenon]}}\n", "xenon"},
		{"ErrNoRules", "version: \"1\"\ntitle: t\nrules: []\n", "at least one rule"},
		{"ErrNoSetVersion", "title: t\nrules:\n  - {id: a, kind: replay, version: 1, severity: info, title: A}\n", "version is required"},
		{"ErrTwoDocuments", head + "  - {id: a, kind: replay, version: 1, severity: info, title: A}\n---\nx: 1\n", "more than one"},
		{"ErrBadZone", "version: \"1\"\ntitle: t\nlocation: Mars/Olympus\nrules:\n  - {id: a, kind: replay, version: 1, severity: info, title: A}\n", "location"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := integrity.ParseRules([]byte(tc.yaml))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("accepted; want an error about %q", tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Fatalf("error %q does not mention %q", err, tc.err)
			case tc.err != "" && plume.ErrorCode(err) != plume.EINVALID:
				t.Fatalf("error code %q, want invalid", plume.ErrorCode(err))
			case tc.err == "" && rs.Rules[0].Ref() == "":
				t.Fatal("no ref")
			}
		})
	}
}

func TestOnlyUnknownRule(t *testing.T) {
	if _, err := mustRules(t).Only("no-such-rule"); plume.ErrorCode(err) != plume.ENOTFOUND {
		t.Fatalf("got %v, want not found", err)
	}
}

func TestChartSVG(t *testing.T) {
	c := integrity.Chart{Title: `NO <&"'>`, Unit: "ppm", Series: []integrity.ChartSeries{{Name: "v", Points: []integrity.ChartPoint{
		{T: t0, V: 1}, {T: t0.Add(time32), V: 3, Hit: true}}}}, Thresholds: []integrity.ChartLine{{Label: "limit", Value: 2}}}
	svg := c.SVG()
	for _, want := range []string{"<svg", "</svg>", "polyline", "stroke-dasharray", "&lt;&amp;", `fill="#c0392b"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if strings.Contains(svg, `NO <&`) {
		t.Error("title not escaped")
	}
	empty := (&integrity.Chart{Title: "none"}).SVG()
	if !strings.HasSuffix(empty, "</svg>") {
		t.Error("empty chart did not render")
	}
}

const time32 = 32 * 60 * 1e9

func FuzzParseRules(f *testing.F) {
	b, err := integrity.IntegrityRulesFile()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("version: \"1\"\ntitle: t\nrules:\n  - {id: a, kind: replay, version: 1, severity: info, title: A, params: {min_lag: 2h}}\n"))
	f.Add([]byte("rules: [{params: [1, 2]}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := integrity.ParseRules(b)
		if err != nil {
			return
		}
		// Whatever parses must evaluate without panicking.
		s := newSeries()
		s.traffic(t0, 3*60*1e9, 20, nil)
		if _, _, err := integrity.New(rs, nil).Evaluate(context.Background(), station, integrity.Series{Records: s.recs}); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkEvaluate measures evaluation throughput of the shipped rule
// set over clean hand-made traffic; b.N counts passes.
func BenchmarkEvaluate(b *testing.B) {
	s := newSeries()
	s.traffic(t0, 24*3600*1e9, 50000, nil)
	eng := integrity.New(mustRules(b), nil)
	b.ReportAllocs()
	b.ResetTimer()
	st := eng.Stream(station)
	for i := 0; i < b.N; i++ {
		rec := s.recs[i%len(s.recs)]
		if i%len(s.recs) == 0 && i > 0 {
			st = eng.Stream(station)
		}
		st.Add(&rec)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "passes/s")
}
