package web

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
)

func meanExport(d *central.DayStats) string {
	if d.Exported == 0 {
		return "—"
	}
	return humanDuration(time.Duration(d.ExportSeconds / float64(d.Exported) * float64(time.Second)))
}

// closed counts the cases the police closed (every disposition).
func closed(d *central.DayStats) int {
	n := 0
	for _, v := range d.Dispositions {
		n += v
	}
	return n
}

func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f d", d.Hours()/24)
	case d >= time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	case d >= time.Minute:
		return fmt.Sprintf("%.0f min", d.Minutes())
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}

// dashRange reads the dashboard's station and days (default: the last 30
// days) and returns the rows the officer may see.
func (h *Handler) dashRows(r *http.Request, p *auth.Principal) (station plume.StationID, from, to string, rows []central.DayStats, err error) {
	q := r.URL.Query()
	now := h.cfg.Now()
	from, to = q.Get("from"), q.Get("to")
	if parseDay(to, false).IsZero() {
		to = central.DayOf(now)
	}
	defaultFrom := parseDay(from, false).IsZero()
	if defaultFrom {
		from = central.DayOf(now.AddDate(0, 0, -29))
	}
	station = plume.StationID(q.Get("station"))
	// A young install shows from its first day (at least a week), not a
	// month of empty days with one bar at the end.
	defer func() {
		if !defaultFrom || err != nil {
			return
		}
		first := to
		for _, d := range rows {
			first = min(first, d.Day)
		}
		weekAgo := central.DayOf(parseDay(to, false).AddDate(0, 0, -6))
		from = max(from, min(first, weekAgo))
	}()
	all, err := h.cfg.Store.DailyStats(r.Context(), from, to)
	if err != nil {
		return
	}
	for _, d := range all {
		if p.Officer.Sees(d.Station) && (station == "" || d.Station == station) {
			rows = append(rows, d)
		}
	}
	return
}

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	station, from, to, rows, err := h.dashRows(r, p)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	var total central.DayStats
	byDay := map[string]*central.DayStats{}
	byStation := map[plume.StationID]*central.DayStats{}
	for i := range rows {
		d := &rows[i]
		total.Merge(d)
		if byDay[d.Day] == nil {
			byDay[d.Day] = &central.DayStats{Day: d.Day}
		}
		byDay[d.Day].Merge(d)
		if byStation[d.Station] == nil {
			byStation[d.Station] = &central.DayStats{Station: d.Station}
		}
		byStation[d.Station].Merge(d)
	}
	var days []*central.DayStats
	for t := parseDay(from, false); !t.IsZero() && central.DayOf(t) <= to && len(days) < 400; t = t.AddDate(0, 0, 1) {
		d := byDay[central.DayOf(t)]
		if d == nil {
			d = &central.DayStats{Day: central.DayOf(t)}
		}
		days = append(days, d)
	}
	var per []central.DayStats
	for _, d := range byStation {
		per = append(per, *d)
	}
	sort.Slice(per, func(i, j int) bool { return per[i].Station < per[j].Station })
	q := url.Values{"from": {from}, "to": {to}}
	if station != "" {
		q.Set("station", string(station))
	}
	data := struct {
		view
		Station                                                   plume.StationID
		From, To, Query, MeanExport                               string
		Stations                                                  []*central.Station
		Total                                                     central.DayStats
		PerStation                                                []central.DayStats
		Days                                                      []*central.DayStats // newest first, days with activity
		DailyChart, PollutantChart, DispositionChart, ExportChart template.HTML
	}{
		view: h.base(p, "Dashboard", "dashboard", r), Station: station, From: from, To: to, Query: q.Encode(),
		MeanExport: meanExport(&total), Stations: h.visibleStations(r.Context(), p.Officer), Total: total, PerStation: per,
		DailyChart: dailyChart(days), PollutantChart: barChart(pollutantBars(&total)), DispositionChart: barChart(dispositionBars(&total)),
		ExportChart: barChart(exportBars(&total)),
	}
	for i := len(days) - 1; i >= 0; i-- {
		if d := days[i]; d.Passes > 0 || d.Cases > 0 || d.Reviewed > 0 || d.Exported > 0 {
			data.Days = append(data.Days, d)
		}
	}
	h.render(w, http.StatusOK, "dashboard", data)
}

type bar struct {
	Label string
	Value int
	Color string
}

func pollutantBars(t *central.DayStats) []bar {
	var out []bar
	for _, p := range []plume.Pollutant{plume.PollutantNO, plume.PollutantOpacity, plume.PollutantRingelmann, plume.PollutantCO, plume.PollutantHC} {
		out = append(out, bar{p.Label(), t.ByPollutant[p], "#b00020"})
	}
	out = append(out, bar{"黑烟 smoke (camera)", t.Smoke, "#333"})
	return out
}

func dispositionBars(t *central.DayStats) []bar {
	return []bar{
		{central.DispositionPenalty.Label(), t.Dispositions[central.DispositionPenalty], "#1d6b35"},
		{central.DispositionNotProcessed.Label(), t.Dispositions[central.DispositionNotProcessed], "#a15c00"},
		{central.DispositionNoVehicle.Label(), t.Dispositions[central.DispositionNoVehicle], "#5b6574"},
	}
}

func exportBars(t *central.DayStats) []bar {
	labels := []string{"< 1 h", "1–4 h", "4–24 h", "1–3 d", "> 3 d"}
	out := make([]bar, len(labels))
	for i, l := range labels {
		out[i] = bar{Label: l, Color: "#1f4a85"}
		if i < len(t.ExportBuckets) {
			out[i].Value = t.ExportBuckets[i]
		}
	}
	return out
}

// barChart draws horizontal bars as inline SVG.
func barChart(bars []bar) template.HTML {
	maxV := 1
	for _, b := range bars {
		maxV = max(maxV, b.Value)
	}
	const w, rowH, labelW = 520, 20, 170
	var s strings.Builder
	fmt.Fprintf(&s, `<svg viewBox="0 0 %d %d" width="100%%" role="img">`, w, len(bars)*rowH+4)
	for i, b := range bars {
		y := i*rowH + 2
		bw := float64(w-labelW-60) * float64(b.Value) / float64(maxV)
		fmt.Fprintf(&s, `<text x="0" y="%d" font-size="11.5" fill="#344154">%s</text>`, y+13, template.HTMLEscapeString(b.Label))
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%.1f" height="14" fill="%s" rx="2"/>`, labelW, y+2, bw, b.Color)
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" font-size="11.5" fill="#1b2330">%d</text>`, float64(labelW)+bw+5, y+13, b.Value)
	}
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

// dailyChart draws passes (bars) and exceedances and cases (lines) per day.
func dailyChart(days []*central.DayStats) template.HTML {
	const w, hgt, left, bottom, top = 640, 220, 44, 26, 10
	maxV := 1
	for _, d := range days {
		maxV = max(maxV, d.Passes)
	}
	n := max(len(days), 1)
	plotW, plotH := float64(w-left-8), float64(hgt-bottom-top)
	bw := plotW / float64(n)
	y := func(v int) float64 { return top + plotH - plotH*float64(v)/float64(maxV) }
	var s strings.Builder
	fmt.Fprintf(&s, `<svg viewBox="0 0 %d %d" width="100%%" role="img" aria-label="passes per day">`, w, hgt)
	for i := 0; i <= 4; i++ {
		v := maxV * i / 4
		fmt.Fprintf(&s, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e4e8ee"/><text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#5b6574">%d</text>`, left, w-8, y(v), y(v), left-4, y(v)+3, v)
	}
	var exc, cases strings.Builder
	for i, d := range days {
		x := float64(left) + float64(i)*bw
		fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#9fb8dc"><title>%s: %d passes, %d exceed, %d cases</title></rect>`, x+bw*0.12, y(d.Passes), bw*0.76, top+plotH-y(d.Passes), d.Day, d.Passes, d.Exceed, d.Cases)
		fmt.Fprintf(&exc, "%.1f,%.1f ", x+bw/2, y(d.Exceed))
		fmt.Fprintf(&cases, "%.1f,%.1f ", x+bw/2, y(d.Cases))
		if n <= 14 || i%max(n/10, 1) == 0 {
			fmt.Fprintf(&s, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#5b6574">%s</text>`, x+bw/2, hgt-10, d.Day[5:])
		}
	}
	fmt.Fprintf(&s, `<polyline points="%s" fill="none" stroke="#b00020" stroke-width="2"/>`, exc.String())
	fmt.Fprintf(&s, `<polyline points="%s" fill="none" stroke="#163460" stroke-width="1.5" stroke-dasharray="4 3"/>`, cases.String())
	fmt.Fprintf(&s, `<rect x="%d" y="2" width="10" height="8" fill="#9fb8dc"/><text x="%d" y="10" font-size="10.5">过车 passes</text>`, left+8, left+22)
	fmt.Fprintf(&s, `<line x1="%d" x2="%d" y1="6" y2="6" stroke="#b00020" stroke-width="2"/><text x="%d" y="10" font-size="10.5">超标 exceed</text>`, left+100, left+114, left+118)
	fmt.Fprintf(&s, `<line x1="%d" x2="%d" y1="6" y2="6" stroke="#163460" stroke-dasharray="4 3"/><text x="%d" y="10" font-size="10.5">案件 cases</text>`, left+190, left+204, left+208)
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

func (h *Handler) dashboardCSV(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	_, from, to, rows, err := h.dashRows(r, p)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="plume-dashboard-%s-%s.csv"`, from, to))
	cw := newCSVWriter(w)
	cw.Write([]string{"day", "station", "passes", "valid", "invalid", "exceed", "exceed_no", "exceed_opacity", "exceed_ringelmann", "smoke_cases", "cases", "warnings", "enforcements", "reviewed", "approved", "rejected", "exported", "penalty_issued", "not_processed", "vehicle_not_found", "mean_capture_to_export_s"})
	for _, d := range rows {
		mean := ""
		if d.Exported > 0 {
			mean = strconv.FormatFloat(d.ExportSeconds/float64(d.Exported), 'f', 0, 64)
		}
		it := strconv.Itoa
		cw.Write([]string{d.Day, string(d.Station), it(d.Passes), it(d.Valid), it(d.Invalid), it(d.Exceed),
			it(d.ByPollutant[plume.PollutantNO]), it(d.ByPollutant[plume.PollutantOpacity]), it(d.ByPollutant[plume.PollutantRingelmann]),
			it(d.Smoke), it(d.Cases), it(d.Warnings), it(d.Enforcements), it(d.Reviewed), it(d.Approved), it(d.Rejected), it(d.Exported),
			it(d.Dispositions[central.DispositionPenalty]), it(d.Dispositions[central.DispositionNotProcessed]), it(d.Dispositions[central.DispositionNoVehicle]), mean})
	}
	cw.Flush()
}

func auditFilter(q url.Values) central.AuditFilter {
	return central.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Cursor: q.Get("cursor"), Limit: 100}
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	f := auditFilter(r.URL.Query())
	evs, next, err := h.cfg.Store.Audit(r.Context(), f)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	evs = scopeAudit(p.Officer, evs)
	q := url.Values{"actor": {f.Actor}, "action": {f.Action}, "target": {f.Target}}
	nq := url.Values{"actor": {f.Actor}, "action": {f.Action}, "target": {f.Target}, "cursor": {next}}
	h.render(w, http.StatusOK, "audit", struct {
		view
		F             central.AuditFilter
		Events        []central.AuditEvent
		Next, NextURL string
		Query         string
	}{h.base(p, "Audit log", "audit", r), f, evs, next, "/audit?" + nq.Encode(), q.Encode()})
}

// scopeAudit hides events about stations the officer may not see.
func scopeAudit(o *central.Officer, evs []central.AuditEvent) []central.AuditEvent {
	out := evs[:0]
	for _, e := range evs {
		if e.Station == "" || o.Sees(e.Station) {
			out = append(out, e)
		}
	}
	return out
}

// auditCSV exports the whole matching log, newest first; the export is
// itself audited.
func (h *Handler) auditCSV(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	f := auditFilter(r.URL.Query())
	f.Cursor, f.Limit = "", central.MaxPageSize
	h.audit1(r.Context(), central.AuditEvent{Time: h.cfg.Now(), Actor: p.Officer.Username, Role: p.Officer.Role, IP: auth.ClientIP(r), Action: "audit.export",
		Detail: fmt.Sprintf("actor=%q action=%q target=%q", f.Actor, f.Action, f.Target)})
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="plume-audit.csv"`)
	cw := newCSVWriter(w)
	cw.Write([]string{"seq", "time", "actor", "role", "ip", "action", "target", "station", "before", "after", "detail", "prev_sha256", "token"})
	for n := 0; n < 1000; n++ {
		evs, next, err := h.cfg.Store.Audit(r.Context(), f)
		if err != nil {
			h.logger.Error("audit export", "err", err)
			break
		}
		for _, e := range scopeAudit(p.Officer, evs) {
			cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(time.RFC3339Nano), e.Actor, string(e.Role), e.IP, e.Action, e.Target, string(e.Station), e.Before, e.After, e.Detail, e.PrevSHA256, e.Token})
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	cw.Flush()
}

func (h *Handler) officers(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	h.officersPage(w, r, p, "", "")
}

func (h *Handler) officersPage(w http.ResponseWriter, r *http.Request, p *auth.Principal, token, errMsg string) {
	os, err := h.cfg.Store.Officers(r.Context())
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	failed, err := h.failedJobs(r.Context(), p.Officer)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	tokens, err := h.tokensOf(r.Context(), p.Officer, os)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	v := h.base(p, "Officers", "admin", r)
	v.Error = errMsg
	h.render(w, http.StatusOK, "officers", struct {
		view
		Officers []*central.Officer
		Roles    []central.Role
		Token    string
		Failed   []failedJob
		Tokens   []officerTokens
	}{v, os, []central.Role{central.RoleReviewer, central.RoleSupervisor, central.RoleAuditor, central.RoleAdmin}, token, failed, tokens})
}

func (h *Handler) addOfficer(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	o := &central.Officer{Username: r.PostFormValue("username"), Name: strings.TrimSpace(r.PostFormValue("name")), Role: central.Role(r.PostFormValue("role"))}
	for _, s := range strings.FieldsFunc(r.PostFormValue("stations"), func(c rune) bool { return c == ',' || c == ' ' }) {
		o.Stations = append(o.Stations, plume.StationID(s))
	}
	if err := auth.CreateOfficer(r.Context(), h.cfg.Store, o, r.PostFormValue("password"), p.Officer, auth.ClientIP(r), h.cfg.Now()); err != nil {
		if plume.ErrorCode(err) == plume.EINTERNAL {
			h.fail(w, r, p, err)
			return
		}
		h.officersPage(w, r, p, "", plume.ErrorMessage(err))
		return
	}
	http.Redirect(w, r, "/admin/officers?flash="+url.QueryEscape("已新增 Added "+o.Username), http.StatusSeeOther)
}

func (h *Handler) issueToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	o, err := h.cfg.Store.Officer(r.Context(), r.PostFormValue("officer"))
	if err != nil {
		h.fail(w, r, p, plume.Errorf(plume.ENOTFOUND, "no such officer"))
		return
	}
	label := strings.TrimSpace(r.PostFormValue("label"))
	if label == "" || len(label) > 100 {
		h.officersPage(w, r, p, "", "say what the token is for (at most 100 bytes)")
		return
	}
	tok, err := h.cfg.Auth.IssueToken(r.Context(), o, label, auth.ClientIP(r), p.Officer)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	h.officersPage(w, r, p, tok, "")
}
