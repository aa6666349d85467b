package web

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/integrity"
	"github.com/plume-emissions/plume/central/ops"
)

// registerOps adds the station-operations pages: stations with their
// health and history, alerts with their evidence, and backtests.
func (h *Handler) registerOps() {
	h.mux.HandleFunc("GET /stations", h.page(central.PermReadCases, h.stationsPage))
	h.mux.HandleFunc("GET /stations/{id}", h.page(central.PermReadCases, h.stationPage))
	h.mux.HandleFunc("POST /stations/{id}/config", h.page(central.PermAdmin, h.setConfig))
	h.mux.HandleFunc("POST /stations/{id}/location", h.page(central.PermAdmin, h.setLocation))
	h.mux.HandleFunc("GET /alerts", h.page(central.PermReadCases, h.alertsPage))
	h.mux.HandleFunc("GET /alerts/{id...}", h.page(central.PermReadCases, h.alertPage))
	h.mux.HandleFunc("POST /alerts/{id...}", h.page(central.PermReview, h.alertAction))
	h.mux.HandleFunc("GET /backtest", h.page(central.PermReadCases, h.backtestPage))
}

func (h *Handler) stationsPage(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	vs, err := h.cfg.Ops.Stations(r.Context(), p.Officer)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	now := h.cfg.Now()
	ages := map[plume.StationID]string{}
	for _, v := range vs {
		if v.Health != nil {
			ages[v.Station.ID] = age(now.Sub(v.Health.ReceivedAt))
		}
	}
	h.render(w, http.StatusOK, "stations", struct {
		view
		Stations []ops.StationView
		Ages     map[plume.StationID]string
		Interval string
		Map      stationMap
	}{h.base(p, "站点 Stations", "stations", r), vs, ages, age(h.cfg.Ops.HeartbeatInterval()), plotStations(vs)})
}

// age writes a duration the way the pages do: "45 秒 s", "3 分钟 min",
// "2 小时 h", "4 天 d".
func age(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < time.Minute:
		return fmt.Sprintf("%d 秒 s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d 分钟 min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d 小时 h", int(d.Hours()))
	}
	return fmt.Sprintf("%d 天 d", int(d.Hours()/24))
}

// stationMap is a plain coordinate plot of the stations (no map tiles are
// reachable): longitude across, latitude up, in an SVG viewBox of W×H.
type stationMap struct {
	W, H   int
	Points []stationPoint
	Span   string // the degrees shown, for the caption
}

type stationPoint struct {
	X, Y  float64
	ID    plume.StationID
	State central.HealthState
}

func plotStations(vs []ops.StationView) stationMap {
	m := stationMap{W: 640, H: 320}
	var located []ops.StationView
	for _, v := range vs {
		if v.Station.Located() {
			located = append(located, v)
		}
	}
	if len(located) == 0 {
		return m
	}
	minLat, maxLat, minLon, maxLon := located[0].Station.Latitude, located[0].Station.Latitude, located[0].Station.Longitude, located[0].Station.Longitude
	for _, v := range located {
		minLat, maxLat = min(minLat, v.Station.Latitude), max(maxLat, v.Station.Latitude)
		minLon, maxLon = min(minLon, v.Station.Longitude), max(maxLon, v.Station.Longitude)
	}
	// At least 0.1° around, so one station sits in the middle.
	padLat, padLon := max(0.05, (maxLat-minLat)*0.15), max(0.05, (maxLon-minLon)*0.15)
	minLat, maxLat, minLon, maxLon = minLat-padLat, maxLat+padLat, minLon-padLon, maxLon+padLon
	for _, v := range located {
		m.Points = append(m.Points, stationPoint{
			X:  20 + (v.Station.Longitude-minLon)/(maxLon-minLon)*float64(m.W-40),
			Y:  20 + (maxLat-v.Station.Latitude)/(maxLat-minLat)*float64(m.H-40),
			ID: v.Station.ID, State: v.State,
		})
	}
	m.Span = fmt.Sprintf("%.3f–%.3f°N, %.3f–%.3f°E", minLat, maxLat, minLon, maxLon)
	return m
}

func (h *Handler) stationPage(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	h.station(w, r, p, nil)
}

// configDiff is the station page's view of a configuration change.
type configDiff struct {
	Caption        string
	Lines          []diffLine
	Added, Removed int
}

func newConfigDiff(caption string, old, new []byte) *configDiff {
	d := &configDiff{Caption: caption, Lines: lineDiff(string(old), string(new))}
	d.Added, d.Removed = diffChanged(d.Lines)
	return d
}

// stationDiff is the change the station page shows an administrator: a
// proposed configuration against the one set, or else the one set against
// the version it replaced (which the station runs until it applies the
// new one).
func stationDiff(dc *central.DesiredConfig, latest *central.StationHealth, proposed *string) *configDiff {
	switch {
	case proposed != nil && dc != nil:
		return newConfigDiff(fmt.Sprintf("预览：拟下发配置对比当前下发的第 %d 版 preview: proposed against version %d", dc.Version, dc.Version), dc.Body, []byte(*proposed))
	case proposed != nil:
		return newConfigDiff("预览：首个下发配置，每行均为新增 preview: the first configuration set, every line new", nil, []byte(*proposed))
	case dc == nil:
		return nil
	case dc.Version == 1 || len(dc.Previous) == 0:
		return newConfigDiff("第 1 版：首个下发配置，每行均为新增 version 1: the first configuration set, every line new", nil, dc.Body)
	}
	caption := fmt.Sprintf("第 %d 版对比第 %d 版 version %d against version %d", dc.Version, dc.Version-1, dc.Version, dc.Version-1)
	if latest != nil && latest.Heartbeat.ConfigHash == plume.ContentSHA256(dc.Previous) {
		caption += fmt.Sprintf("（站点仍运行第 %d 版 the station still runs version %d）", dc.Version-1, dc.Version-1)
	}
	return newConfigDiff(caption, dc.Previous, dc.Body)
}

// station renders a station's page; proposed is a configuration an
// administrator previews against the one set (nil: none).
func (h *Handler) station(w http.ResponseWriter, r *http.Request, p *auth.Principal, proposed *string) {
	id := plume.StationID(r.PathValue("id"))
	if err := id.Validate(); err != nil {
		h.fail(w, r, p, plume.Errorf(plume.ENOTFOUND, "no station %q", id))
		return
	}
	st, hist, err := h.cfg.Ops.StationHistory(r.Context(), p.Officer, id, 100)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	alerts, err := h.cfg.Ops.Alerts(r.Context(), p.Officer, central.AlertFilter{Station: id, Limit: 50})
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	var latest *central.StationHealth
	if len(hist) > 0 {
		latest = hist[0]
	}
	dc, err := h.cfg.Ops.DesiredConfig(r.Context(), id)
	if err != nil && plume.ErrorCode(err) != plume.ENOTFOUND {
		h.fail(w, r, p, err)
		return
	}
	edit := ""
	if proposed != nil {
		edit = *proposed
	} else if dc != nil {
		edit = string(dc.Body)
	}
	h.render(w, http.StatusOK, "station", struct {
		view
		Station *central.Station
		Latest  *central.StationHealth
		History []*central.StationHealth
		Alerts  []*central.Alert
		Desired *central.DesiredConfig
		Diff    *configDiff
		Edit    string
	}{h.base(p, string(id), "stations", r), st, latest, hist, alerts, dc, stationDiff(dc, latest, proposed), edit})
}

func (h *Handler) setConfig(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id := plume.StationID(r.PathValue("id"))
	body := strings.ReplaceAll(r.PostFormValue("config"), "\r\n", "\n")
	if r.PostFormValue("action") == "preview" {
		h.station(w, r, p, &body)
		return
	}
	dc, err := h.cfg.Ops.SetDesiredConfig(r.Context(), p.Officer.Username, id, []byte(body))
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/stations/"+url.PathEscape(string(id))+"?flash="+url.QueryEscape("配置已下发 Configuration version "+strconv.Itoa(dc.Version)+" set; the station applies it at its next heartbeat"), http.StatusSeeOther)
}

func (h *Handler) setLocation(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id := plume.StationID(r.PathValue("id"))
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(r.PostFormValue("latitude")), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(r.PostFormValue("longitude")), 64)
	if err1 != nil || err2 != nil {
		h.fail(w, r, p, plume.Errorf(plume.EINVALID, "latitude and longitude must be decimal degrees, e.g. 22.543096 and 114.057865"))
		return
	}
	if _, err := h.cfg.Ops.SetLocation(r.Context(), p.Officer, auth.ClientIP(r), id, lat, lon); err != nil {
		h.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/stations/"+url.PathEscape(string(id))+"?flash="+url.QueryEscape("位置已更新 Location set"), http.StatusSeeOther)
}

func (h *Handler) alertsPage(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	q := r.URL.Query()
	f := central.AlertFilter{Station: plume.StationID(q.Get("station")), Source: q.Get("source"), State: central.AlertState(q.Get("state")), Limit: 200}
	as, err := h.cfg.Ops.Alerts(r.Context(), p.Officer, f)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	h.render(w, http.StatusOK, "alerts", struct {
		view
		F      central.AlertFilter
		Alerts []*central.Alert
		States []central.AlertState
		Srcs   []string
	}{h.base(p, "Alerts", "alerts", r), f, as,
		[]central.AlertState{central.AlertOpen, central.AlertAcknowledged, central.AlertEscalated, central.AlertResolved},
		[]string{central.AlertIntegrity, central.AlertHealth, central.AlertCloned, central.AlertConfig}})
}

func (h *Handler) alertPage(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	a, err := h.cfg.Ops.Alert(r.Context(), p.Officer, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	data := struct {
		view
		Alert     *central.Alert
		Integrity *integrity.Alert
		Chart     template.HTML
		Cloned    *ops.ClonedDetail
		Heartbeat *plume.Heartbeat
		Passes    []*central.PassRow
	}{view: h.base(p, a.Title, "alerts", r), Alert: a}
	switch a.Source {
	case central.AlertIntegrity:
		if data.Integrity, err = ops.IntegrityDetail(a); err == nil {
			// The chart is drawn by integrity.Chart.SVG, which escapes
			// every text it writes and carries no scripts.
			data.Chart = template.HTML(data.Integrity.SVG())
		}
	case central.AlertCloned:
		data.Cloned, err = ops.ClonedEvidence(a)
	}
	if err != nil {
		h.logger.Error("alert detail", "alert", a.ID, "err", err)
	}
	h.render(w, http.StatusOK, "alert", data)
}

func (h *Handler) alertAction(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id := r.PathValue("id")
	_, err := h.cfg.Ops.Act(r.Context(), p.Officer, auth.ClientIP(r), id, r.PostFormValue("action"), strings.TrimSpace(r.PostFormValue("comment")))
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/alerts/"+id+"?flash="+url.QueryEscape("已记录 Recorded: "+r.PostFormValue("action")), http.StatusSeeOther)
}

func (h *Handler) backtestPage(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	q := r.URL.Query()
	data := struct {
		view
		Stations      []*central.Station
		Rules         []integrity.Rule
		Station, Rule string
		From, To      string
		Ran           bool
		Alerts        []integrity.Alert
		Charts        []template.HTML
		Stats         []integrity.RuleStats
	}{view: h.base(p, "Backtest", "alerts", r), Stations: h.visibleStations(r.Context(), p.Officer), Rules: h.cfg.Ops.Rules().Rules,
		Station: q.Get("station"), Rule: q.Get("rule"), From: q.Get("from"), To: q.Get("to")}
	if data.Station != "" {
		id := plume.StationID(data.Station)
		if id.Validate() != nil || !p.Officer.Sees(id) {
			h.fail(w, r, p, plume.Errorf(plume.ENOTFOUND, "no station %q", data.Station))
			return
		}
		from, to := parseDay(data.From, false), parseDay(data.To, true)
		if to.IsZero() {
			to = h.cfg.Now()
		}
		if from.IsZero() {
			from = to.AddDate(0, 0, -8)
		}
		var rules []string
		if data.Rule != "" {
			rules = []string{data.Rule}
		}
		alerts, stats, err := h.cfg.Ops.Backtest(r.Context(), id, from, to, rules...)
		if err != nil {
			h.fail(w, r, p, err)
			return
		}
		data.Ran, data.Alerts, data.Stats = true, alerts, stats
		for i := range alerts {
			data.Charts = append(data.Charts, template.HTML(alerts[i].SVG()))
		}
	}
	h.render(w, http.StatusOK, "backtest", data)
}
