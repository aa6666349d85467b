package main

// The plate and eval-plates commands:
//
//	plume-edge plate [-model FILE] [-crop] IMAGE...      read plates, print JSON
//	plume-edge eval-plates [-model FILE] [-limit N] DIR...  accuracy on labelled folders

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plume-emissions/plume/edge/vision"
)

type plateOutput struct {
	Image    string             `json:"image"`
	Width    int                `json:"width,omitempty"`
	Height   int                `json:"height,omitempty"`
	Plates   []vision.Plate     `json:"plates"`
	TimingMS map[string]float64 `json:"timing_ms"`
	Error    string             `json:"error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runPlate implements `plume-edge plate IMAGE...`: one JSON object per
// image on stdout.
func runPlate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-edge plate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "recogniser ONNX file (default: $PLUME_PLATE_MODEL, the installed or checked-out "+vision.DefaultPlateModel+", else the one built in)")
	crop := fs.Bool("crop", false, "treat each image as one plate crop (skip localisation)")
	all := fs.Bool("all", false, "read every plate in the image (default: stop at the first confident, grammatical plate)")
	verbose := fs.Bool("v", false, "log candidates to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: plume-edge plate [flags] IMAGE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("plate: name at least one image")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	rd, err := vision.Open(vision.FindPlateModel(*model), vision.Options{Crop: *crop, AllPlates: *all}, logger)
	if err != nil {
		return fmt.Errorf("plate: %w", err)
	}
	defer rd.Close()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	failed := 0
	for _, path := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		out := plateOutput{Image: path, Plates: []vision.Plate{}, TimingMS: map[string]float64{}}
		t0 := time.Now()
		res, cfgW, cfgH, err := readPlateFile(ctx, rd, path)
		out.Width, out.Height = cfgW, cfgH
		if err != nil {
			out.Error = err.Error()
			failed++
		} else {
			out.Plates = res.Plates
			out.TimingMS["locate"] = ms(res.Locate)
			out.TimingMS["recognise"] = ms(res.Recognise)
		}
		out.TimingMS["total"] = ms(time.Since(t0))
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("plate: %w", err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("plate: %d of %d image(s) failed", failed, fs.NArg())
	}
	return nil
}

// maxFileBytes bounds what is read from disk before validation.
const maxFileBytes = vision.MaxImageBytes + 1

func readPlateFile(ctx context.Context, rd *vision.Reader, path string) (vision.Result, int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return vision.Result{}, 0, 0, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes))
	f.Close()
	if err != nil {
		return vision.Result{}, 0, 0, err
	}
	cfg, err := vision.CheckImage(data)
	if err != nil {
		return vision.Result{}, 0, 0, err
	}
	res, err := rd.ReadImage(ctx, data)
	return res, cfg.Width, cfg.Height, err
}

// evalItem is one labelled image.
type evalItem struct {
	path   string
	label  string
	box    [4]int // x1 y1 x2 y2, when known
	hasBox bool
}

// evalStats accumulates one set's results.
type evalStats struct {
	Set        string  `json:"set"`
	N          int     `json:"n"`
	Located    int     `json:"located"`
	Exact      int     `json:"exact"`
	OneOff     int     `json:"at_most_one_wrong"`
	Chinese    int     `json:"chinese_correct"`
	Errors     int     `json:"errors"`
	TotalMS    float64 `json:"total_ms"`
	MedianMS   float64 `json:"median_ms"` // per image, decoding included
	P90MS      float64 `json:"p90_ms"`
	times      []float64
	Confusions map[string]int `json:"confusions"` // "truth>read"
	Misses     []string       `json:"misses"`     // first few "truth read"
}

func pct(a, n int) float64 {
	if n == 0 {
		return 0
	}
	return 100 * float64(a) / float64(n)
}

// runPlateEval implements `plume-edge eval-plates DIR...`.
func runPlateEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-edge eval-plates", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "recogniser ONNX file (default: $PLUME_PLATE_MODEL, the installed or checked-out "+vision.DefaultPlateModel+", else the one built in)")
	limit := fs.Int("limit", 0, "evaluate at most N images per set (0: all)")
	crop := fs.Bool("crop", false, "treat every image as one plate crop")
	jsonOut := fs.Bool("json", false, "print the results as JSON instead of a table")
	holdout := fs.Bool("heldout", false, "only the held-out split of each set, never used in training (see models/plates/MODEL_CARD.md)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: plume-edge eval-plates [flags] DIR...")
		fmt.Fprintln(stderr, "labels come from DIR/labels.csv (columns path, plate, x1, y1, x2, y2) or from file names")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("eval-plates: name at least one folder")
	}
	rd, err := vision.Open(vision.FindPlateModel(*model), vision.Options{Crop: *crop}, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("eval-plates: %w", err)
	}
	defer rd.Close()
	var all []*evalStats
	for _, dir := range fs.Args() {
		items, err := evalItems(dir)
		if err != nil {
			return fmt.Errorf("eval-plates: %w", err)
		}
		set := filepath.Base(filepath.Clean(dir))
		if *holdout {
			items = slices.DeleteFunc(items, func(it evalItem) bool { return !heldOut(set, filepath.Base(it.path)) })
			set += " (held-out)"
		}
		if *limit > 0 && len(items) > *limit {
			items = items[:*limit]
		}
		st, err := evalSet(ctx, rd, set, items, stderr)
		if err != nil {
			return err
		}
		all = append(all, st)
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(all)
	}
	fmt.Fprintln(stdout, "| set | images | located % | exact % | ≤1 wrong % | Chinese char % | ms/image mean | median | p90 |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|")
	for _, s := range all {
		fmt.Fprintf(stdout, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", s.Set, s.N,
			pct(s.Located, s.N), pct(s.Exact, s.N), pct(s.OneOff, s.N), pct(s.Chinese, s.N), s.TotalMS/float64(max(1, s.N)), s.MedianMS, s.P90MS)
	}
	for _, s := range all {
		fmt.Fprintf(stdout, "\n%s: top confusions (truth>read): %s\n", s.Set, topConfusions(s.Confusions, 10))
		if len(s.Misses) > 0 {
			fmt.Fprintf(stdout, "%s: first misses (truth read): %s\n", s.Set, strings.Join(s.Misses, ", "))
		}
	}
	return nil
}

func topConfusions(m map[string]int, n int) string {
	type kv struct {
		k string
		v int
	}
	var s []kv
	for k, v := range m {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].v != s[j].v {
			return s[i].v > s[j].v
		}
		return s[i].k < s[j].k
	})
	var parts []string
	for i, e := range s {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", e.k, e.v))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func evalSet(ctx context.Context, rd *vision.Reader, name string, items []evalItem, stderr io.Writer) (*evalStats, error) {
	st := &evalStats{Set: name, Confusions: map[string]int{}}
	every := max(1, len(items)/20)
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		res, _, _, err := readPlateFile(ctx, rd, it.path)
		took := ms(time.Since(t0))
		st.TotalMS += took
		st.times = append(st.times, took)
		st.N++
		read := ""
		if err != nil {
			st.Errors++
		} else if len(res.Plates) > 0 {
			best := res.Plates[0]
			if it.hasBox {
				// The read that overlaps the labelled plate, if any.
				for _, p := range res.Plates {
					if boxIoU(p.Box, it.box) >= 0.3 {
						best = p
						st.Located++
						break
					}
				}
			} else {
				st.Located++
			}
			read = best.Text
		}
		scorePlate(st, it.label, read)
		if (i+1)%every == 0 || i+1 == len(items) {
			fmt.Fprintf(stderr, "eval %s: %d/%d  located %.1f%%  exact %.1f%%  %.1f ms/image\n",
				name, i+1, len(items), pct(st.Located, st.N), pct(st.Exact, st.N), st.TotalMS/float64(st.N))
		}
	}
	st.MedianMS, st.P90MS = quantile(st.times, 0.5), quantile(st.times, 0.9)
	return st, nil
}

func scorePlate(st *evalStats, label, read string) {
	lr, rr := []rune(label), []rune(read)
	if read == label {
		st.Exact++
	} else if len(st.Misses) < 12 {
		st.Misses = append(st.Misses, label+" "+orDash(read))
	}
	if editDistance(lr, rr) <= 1 {
		st.OneOff++
	}
	if len(rr) > 0 && len(lr) > 0 && rr[0] == lr[0] {
		st.Chinese++
	}
	if len(lr) == len(rr) {
		for i := range lr {
			if lr[i] != rr[i] {
				st.Confusions[string(lr[i])+">"+string(rr[i])]++
			}
		}
	} else if len(rr) == 0 {
		st.Confusions["not read"]++
	} else {
		st.Confusions[fmt.Sprintf("length %d>%d", len(lr), len(rr))]++
	}
}

// quantile returns the q-quantile (nearest rank) of xs, or 0 when empty.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func editDistance(a, b []rune) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func boxIoU(b vision.Box, g [4]int) float64 {
	x1, y1 := max(b.X, g[0]), max(b.Y, g[1])
	x2, y2 := min(b.X+b.W, g[2]), min(b.Y+b.H, g[3])
	if x2 <= x1 || y2 <= y1 {
		return 0
	}
	in := float64((x2 - x1) * (y2 - y1))
	return in / (float64(b.W*b.H+(g[2]-g[0])*(g[3]-g[1])) - in)
}

// evalItems lists a folder's labelled images: from labels.csv when present
// (CCPD style), else every .jpg/.jpeg/.png whose name starts with a plate.
func evalItems(dir string) ([]evalItem, error) {
	csvPath := filepath.Join(dir, "labels.csv")
	if f, err := os.Open(csvPath); err == nil {
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", csvPath, err)
		}
		if len(rows) < 1 {
			return nil, fmt.Errorf("%s: empty", csvPath)
		}
		col := map[string]int{}
		for i, h := range rows[0] {
			col[strings.TrimSpace(h)] = i
		}
		pi, ok1 := col["path"]
		li, ok2 := col["plate"]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s: need columns path and plate", csvPath)
		}
		var items []evalItem
		for _, r := range rows[1:] {
			if len(r) != len(rows[0]) {
				continue
			}
			it := evalItem{path: filepath.Join(dir, filepath.FromSlash(r[pi])), label: r[li]}
			if _, ok := col["x1"]; ok {
				var b [4]int
				good := true
				for k, name := range []string{"x1", "y1", "x2", "y2"} {
					ci, ok := col[name]
					if !ok {
						good = false
						break
					}
					v, err := strconv.Atoi(strings.TrimSpace(r[ci]))
					if err != nil {
						good = false
						break
					}
					b[k] = v
				}
				it.box, it.hasBox = b, good
			}
			items = append(items, it)
		}
		return items, nil
	}
	var items []evalItem
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := strings.ToLower(filepath.Ext(p))
		if d.IsDir() || (ext != ".jpg" && ext != ".jpeg" && ext != ".png") {
			return nil
		}
		if label := labelFromName(filepath.Base(p)); label != "" {
			items = append(items, evalItem{path: p, label: label})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(items, func(a, b evalItem) int { return strings.Compare(a.path, b.path) })
	return items, nil
}

// labelFromName takes the plate from a file name: the leading run of
// characters in the recogniser's alphabet ("皖A00E66.jpg", "皖A00E66_2.jpg").
func labelFromName(name string) string {
	name = strings.TrimSuffix(name, filepath.Ext(name))
	var b strings.Builder
	for _, r := range name {
		if !strings.ContainsRune(vision.Charset, r) {
			break
		}
		b.WriteRune(r)
	}
	if n := len([]rune(b.String())); n < 7 || n > 8 {
		return ""
	}
	return b.String()
}

// heldOut reports whether a file is in the split of its set that the
// recogniser never trained on: tollbooth crc32(name) % 10 < 5
// (models/plates/mine.py), any other set < 3 (lprnet-crops,
// models/plates/train.py real_split). ccpd is never trained on.
func heldOut(set, name string) bool {
	if set == "tollbooth" {
		return crc32.ChecksumIEEE([]byte(name))%10 < 5
	}
	return crc32.ChecksumIEEE([]byte(name))%10 < 3
}
