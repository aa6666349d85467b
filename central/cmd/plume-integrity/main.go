// Command plume-integrity backtests a data-integrity rule set over a
// station history and prints what it would have flagged, with each rule's
// counters and false-alarm rate.
//
//	plume-integrity [-rules FILE] [-rule ID]... [-camera FILE] [-svg DIR] [-json] HISTORY.ndjson
//
// HISTORY holds one plume.Record (JSON) a line, as central exports them
// or as edge/sim/cmd/plume-simhistory simulates them; "-" reads stdin.
// CAMERA holds one integrity.CameraCount a line. Progress goes to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/integrity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, time.Now); err != nil {
		fmt.Fprintln(os.Stderr, "plume-integrity:", err)
		os.Exit(1)
	}
}

type ruleList []string

func (l *ruleList) String() string     { return strings.Join(*l, ",") }
func (l *ruleList) Set(s string) error { *l = append(*l, s); return nil }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("plume-integrity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rulesFile := fs.String("rules", "", "rule set file [the shipped firmware-config/integrity/rules.yaml]")
	var only ruleList
	fs.Var(&only, "rule", "backtest only this rule (repeatable)")
	cameraFile := fs.String("camera", "", "camera counts, one JSON object a line")
	svgDir := fs.String("svg", "", "write each alert's chart as DIR/<n>-<rule>.svg")
	asJSON := fs.Bool("json", false, "print alerts as JSON lines instead of text")
	every := fs.Duration("progress", 2*time.Second, "progress report interval on stderr (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want exactly one history file (or -)")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var rs *integrity.RuleSet
	var err error
	if *rulesFile == "" {
		rs, err = integrity.DefaultRules()
	} else {
		rs, err = integrity.LoadRules(os.DirFS(filepath.Dir(*rulesFile)), filepath.Base(*rulesFile))
	}
	if err != nil {
		return err
	}
	if len(only) > 0 {
		if rs, err = rs.Only(only...); err != nil {
			return err
		}
	}

	in := stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("open history: %w", err)
		}
		defer f.Close()
		in = f
	}
	var cams []integrity.CameraCount
	if *cameraFile != "" {
		if cams, err = readCamera(*cameraFile); err != nil {
			return err
		}
	}

	eng := integrity.New(rs, log)
	streams := map[plume.StationID]*integrity.Stream{}
	camAt := map[plume.StationID]int{}
	var alerts []integrity.Alert
	var last time.Time
	started, lastReport := now(), now()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	lines, passes := 0, 0
	for sc.Scan() {
		lines++
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		var rec plume.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("history line %d: %w", lines, err)
		}
		st := streams[rec.Station]
		if st == nil {
			st = eng.Stream(rec.Station)
			streams[rec.Station] = st
		}
		// Camera counts go in as the history passes their end.
		for i := camAt[rec.Station]; i < len(cams) && !cams[i].To.After(rec.Time); i++ {
			if cams[i].Station == "" || cams[i].Station == rec.Station {
				alerts = append(alerts, st.AddCamera(cams[i])...)
			}
			camAt[rec.Station] = i + 1
		}
		if rec.Kind == plume.RecordPass {
			passes++
		}
		last = rec.Time
		alerts = append(alerts, st.Add(&rec)...)
		if *every > 0 && now().Sub(lastReport) >= *every {
			lastReport = now()
			el := lastReport.Sub(started).Seconds()
			fmt.Fprintf(stderr, "progress: %d records (%d passes), history at %s, %d alerts, %.0f records/s\n",
				lines, passes, last.UTC().Format(time.RFC3339), len(alerts), float64(lines)/el)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read history: %w", err)
	}
	ids := make([]plume.StationID, 0, len(streams))
	for id := range streams {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	stats := map[string]*integrity.RuleStats{}
	var order []string
	for _, id := range ids {
		st := streams[id]
		for i := camAt[id]; i < len(cams); i++ {
			if cams[i].Station == "" || cams[i].Station == id {
				alerts = append(alerts, st.AddCamera(cams[i])...)
			}
		}
		alerts = append(alerts, st.Close(last)...)
		for _, s := range st.Stats() {
			if stats[s.Rule] == nil {
				s := s
				stats[s.Rule] = &s
				order = append(order, s.Rule)
				continue
			}
			stats[s.Rule].Checks += s.Checks
			stats[s.Rule].Alerts += s.Alerts
		}
	}
	elapsed := now().Sub(started)
	fmt.Fprintf(stderr, "done: %d records (%d passes) from %d station(s) in %s\n", lines, passes, len(streams), elapsed.Round(time.Millisecond))

	for i, a := range alerts {
		if *asJSON {
			a.Chart = nil
			b, _ := json.Marshal(a)
			fmt.Fprintln(stdout, string(b))
		} else {
			fmt.Fprintln(stdout, a.String())
		}
		if *svgDir != "" && a.Chart != nil {
			if err := os.MkdirAll(*svgDir, 0o755); err != nil {
				return fmt.Errorf("svg dir: %w", err)
			}
			name := filepath.Join(*svgDir, fmt.Sprintf("%03d-%s.svg", i+1, a.Rule))
			if err := os.WriteFile(name, []byte(a.SVG()), 0o644); err != nil {
				return fmt.Errorf("write chart: %w", err)
			}
		}
	}
	if *asJSON {
		return nil
	}
	fmt.Fprintf(stdout, "\nrule set %s: %d alert(s)\n", rs.Version, len(alerts))
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tVERSION\tUNIT\tCHECKS\tALERTS\tRATE")
	for _, r := range order {
		s := stats[r]
		fmt.Fprintf(tw, "%s\tv%d\t%s\t%d\t%d\t%.2g\n", s.Rule, s.Version, s.Unit, s.Checks, s.Alerts, float64(s.Alerts)/max(1, float64(s.Checks)))
	}
	return tw.Flush()
}

func readCamera(name string) ([]integrity.CameraCount, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open camera counts: %w", err)
	}
	defer f.Close()
	var out []integrity.CameraCount
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var c integrity.CameraCount
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("camera counts line %d: %w", n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read camera counts: %w", err)
	}
	slices.SortStableFunc(out, func(a, b integrity.CameraCount) int { return a.To.Compare(b.To) })
	return out, nil
}
