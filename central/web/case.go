package web

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/review"
)

// mediaView is one manifest media item as the case page shows it.
type mediaView struct {
	plume.MediaRef
	URL   string
	Image bool
	Label string
}

// servedTypes are the only content types media is served as; anything
// else is served as a download.
var servedTypes = map[string]bool{"image/jpeg": true, "image/png": true, "video/mp4": true, "text/plain": true, "application/json": true}

func mediaLabel(k plume.MediaKind) string {
	switch k {
	case plume.MediaScene:
		return "全景 Scene"
	case plume.MediaPlate:
		return "号牌特写 Plate close-up"
	case plume.MediaSmoke:
		return "黑烟特写 Smoke close-up"
	case plume.MediaClip:
		return "视频 Clip"
	case plume.MediaAnalyserRaw:
		return "分析仪原始帧 Analyser frame"
	}
	return string(k)
}

type validityRow struct {
	Name, Value, Window string
	OK                  bool
}

func (h *Handler) loadCase(r *http.Request, p *auth.Principal) (*central.Case, *central.StoredEvidence, *plume.Manifest, error) {
	c, err := h.cfg.Review.Case(r.Context(), p.Officer, plume.CaseID(r.PathValue("id")))
	if err != nil {
		return nil, nil, nil, err
	}
	ev, err := h.cfg.Store.Evidence(r.Context(), c.Station, c.EvidenceID)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := plume.DecodeManifest(ev.Manifest)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("stored manifest of %s: %w", c.ID, err)
	}
	return c, ev, m, nil
}

func (h *Handler) casePage(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	c, _, m, err := h.loadCase(r, p)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	ctx := r.Context()
	var media []mediaView
	hasCamera := false
	for _, md := range m.Media {
		v := mediaView{MediaRef: md, URL: fmt.Sprintf("/cases/%s/media/%s", c.ID, url.PathEscape(md.Name)), Label: mediaLabel(md.Kind)}
		v.Image = (md.Kind == plume.MediaScene || md.Kind == plume.MediaPlate || md.Kind == plume.MediaSmoke) && strings.HasPrefix(md.ContentType, "image/")
		hasCamera = hasCamera || v.Image || md.Kind == plume.MediaClip
		media = append(media, v)
	}
	history, err := h.cfg.Store.VehicleHistory(ctx, c.Plate, 30)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	visible := history[:0]
	for _, e := range history {
		if p.Officer.Sees(e.Station) {
			visible = append(visible, e)
		}
	}
	audits, err := h.cfg.Store.StationAudits(ctx, c.Station, m.Pass.Reading.Time, 6)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	calOK, calNote := calibrationStatus(audits, m.Pass.Reading.Time)
	trail, _, err := h.cfg.Store.Audit(ctx, central.AuditFilter{Target: string(c.ID), Limit: 50})
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	stationName := ""
	if st, err := h.cfg.Store.Station(ctx, c.Station); err == nil {
		stationName = st.Name
	}
	custody, err := h.cfg.Store.Custody(ctx, c.ID)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	prov := false
	for _, ck := range m.Pass.Verdict.Checks {
		prov = prov || ck.Provisional
	}
	// Neighbours in the queue the officer came from.
	backQ := r.URL.Query().Get("q")
	prev, next := h.neighbours(r, p, c, backQ)
	back := ""
	if backQ != "" {
		back = "?q=" + url.QueryEscape(backQ)
	}
	data := struct {
		view
		Case            *central.Case
		Pass            plume.Pass
		StationName     string
		Media           []mediaView
		HasCamera       bool
		History         []central.VehicleEntry
		Audits          []plume.Audit
		CalibrationOK   bool
		CalibrationNote string
		Validity        []validityRow
		Custody         []central.CustodyEntry
		Audit           []central.AuditEvent
		Reasons         []review.Reason
		Colours         []plume.PlateColour
		SecondReview    bool
		Provisional     bool
		Prev, Next      plume.CaseID
		BackQuery       string
		Q               string // the queue the officer came from, as its query
		CaseQuery       string // "?q=…" for links to the queue's other cases
	}{
		view: h.base(p, c.Number, "queue", r), Case: c, Pass: m.Pass, StationName: stationName, Media: media, HasCamera: hasCamera,
		History: visible, Audits: audits, CalibrationOK: calOK, CalibrationNote: calNote, Validity: h.validity(c, &m.Pass),
		Custody: custody, Audit: trail, Reasons: review.Reasons, SecondReview: h.cfg.Review.SecondReview(), Provisional: prov,
		Colours: []plume.PlateColour{plume.PlateBlue, plume.PlateYellow, plume.PlateGreen, plume.PlateWhite, plume.PlateBlack},
		Prev:    prev, Next: next, BackQuery: back, Q: backQ, CaseQuery: back,
	}
	if back != "" {
		data.BackQuery = "?" + backQ
	}
	h.render(w, http.StatusOK, "case", data)
	_ = back
}

// neighbours finds the cases before and after c in the officer's queue.
func (h *Handler) neighbours(r *http.Request, p *auth.Principal, c *central.Case, q string) (prev, next plume.CaseID) {
	vals, _ := url.ParseQuery(q)
	f, err := caseFilter(vals)
	if err != nil {
		return "", ""
	}
	p.Officer.ScopeCases(&f)
	f.Limit, f.Cursor = 1, string(c.ID)
	if f.SortBy != "" {
		f.Cursor = central.EncodeSortCursor(f.SortBy, c.Summarize())
	}
	if n, _, err := h.cfg.Store.Cases(r.Context(), f); err == nil && len(n) == 1 {
		next = n[0].ID
	}
	f.Oldest, f.Descending = !f.Oldest, !f.Descending
	if n, _, err := h.cfg.Store.Cases(r.Context(), f); err == nil && len(n) == 1 {
		prev = n[0].ID
	}
	return prev, next
}

// calibrationStatus judges the station's audits before a capture: the most
// recent audit of each gas must have passed, within 30 days.
func calibrationStatus(audits []plume.Audit, at time.Time) (bool, string) {
	if len(audits) == 0 {
		return false, "no calibration record"
	}
	seen := map[string]bool{}
	for _, a := range audits {
		if seen[a.Gas] {
			continue
		}
		seen[a.Gas] = true
		if !a.Passed {
			return false, fmt.Sprintf("最近一次 %s 校准不合格 The last %s %s before the capture FAILED (%s).", strings.ToUpper(a.Gas), strings.ToUpper(a.Gas), a.Kind, a.Time.In(zone).Format("2006-01-02 15:04"))
		}
	}
	age := at.Sub(audits[0].Time)
	if age > 30*24*time.Hour {
		return false, fmt.Sprintf("The last calibration was %.0f days before the capture (more than 30). 校准已超期。", age.Hours()/24)
	}
	return true, fmt.Sprintf("校准有效 The last audits before the capture passed; the latest was %s before it.", age.Round(time.Minute))
}

// validity lists the profile's validity windows against the reading.
func (h *Handler) validity(c *central.Case, pass *plume.Pass) []validityRow {
	r := pass.Reading
	out := []validityRow{}
	bad := map[string]string{}
	for _, iv := range pass.Verdict.Invalid {
		bad[iv.Check] = iv.Message
	}
	prof := h.cfg.Profiles.Lookup(c.Profile)
	win := func(rg plume.Range) string { return rg.String() }
	add := func(name, check, value, window string) {
		_, isBad := bad[check]
		out = append(out, validityRow{Name: name, Value: value, Window: window, OK: !isBad})
	}
	f := func(v float64) string { return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".") }
	if prof != nil {
		add("比功率 VSP (kW/t)", "vsp", f(pass.Verdict.VSP), win(prof.Validity.VSP))
		add("车速 Speed (km/h)", "speed", f(r.SpeedKmh), win(prof.Validity.SpeedKmh))
		add("加速度 Accel (m/s²)", "accel", f(r.AccelMS2), win(prof.Validity.AccelMS2))
		add("烟羽 CO₂ plume (%·cm)", "plume", f(r.PlumeCO2), "≥ "+f(prof.Validity.MinPlumeCO2))
		if prof.Validity.MaxWindMS != nil {
			add("风速 Wind (m/s)", "wind", f(r.Ambient.WindMS), "≤ "+f(*prof.Validity.MaxWindMS))
		}
		add("温度 Temp (°C)", "temp", f(r.Ambient.TempC), win(prof.Validity.TempC))
		rain := "无 no"
		if r.Ambient.Rain {
			rain = "有 yes"
		}
		add("降雨 Rain", "rain", rain, "none")
	} else {
		add("比功率 VSP (kW/t)", "vsp", f(pass.Verdict.VSP), "profile "+c.Profile+" not held at central")
	}
	add("设备状态 Analyser flag", "device", string(r.Flag)+" "+r.Flag.Describe(), "N normal")
	return out
}

func (h *Handler) caseAction(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	a := review.Actor{Officer: p.Officer, IP: auth.ClientIP(r), Token: p.Session.TokenID()}
	id := plume.CaseID(r.PathValue("id"))
	ctx := r.Context()
	var err error
	flash := ""
	switch r.PathValue("action") {
	case "approve":
		_, err = h.cfg.Review.Approve(ctx, a, id, r.PostFormValue("comment"))
		flash = "已批准 Approved"
	case "reject":
		_, err = h.cfg.Review.Reject(ctx, a, id, r.PostFormValue("reason"), r.PostFormValue("comment"))
		flash = "已驳回 Rejected"
	case "plate":
		_, err = h.cfg.Review.CorrectPlate(ctx, a, id, r.PostFormValue("plate"), plume.PlateColour(r.PostFormValue("colour")), r.PostFormValue("comment"))
		flash = "号牌已更正 Plate corrected"
	case "confirm":
		_, err = h.cfg.Review.Confirm(ctx, a, id, r.PostFormValue("comment"))
		flash = "复核通过 Confirmed"
	case "return":
		_, err = h.cfg.Review.Return(ctx, a, id, r.PostFormValue("comment"))
		flash = "已退回 Returned"
	case "retry-export":
		_, err = h.cfg.Review.RetryExport(ctx, a, id)
		flash = "已重新排队 Export queued again"
	default:
		err = plume.Errorf(plume.ENOTFOUND, "no such action")
	}
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	// A decision made from the queue moves on to the queue's next case.
	if q := r.PostFormValue("q"); q != "" && (r.PathValue("action") == "approve" || r.PathValue("action") == "reject") {
		back := "?q=" + url.QueryEscape(q)
		if c, err := h.cfg.Store.Case(r.Context(), id); err == nil {
			if _, next := h.neighbours(r, p, c, q); next != "" {
				http.Redirect(w, r, fmt.Sprintf("/cases/%s%s&flash=%s", next, back, url.QueryEscape(flash+"，下一件 next case")), http.StatusSeeOther)
				return
			}
		}
		http.Redirect(w, r, "/queue?"+q+"&flash="+url.QueryEscape(flash+"；队列已审完 end of the queue"), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/cases/%s?flash=%s", id, url.QueryEscape(flash)), http.StatusSeeOther)
}

// media serves one media item of a case, looked up by the manifest's media
// name: the name is matched against the signed list, never used as a path.
func (h *Handler) media(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	c, _, m, err := h.loadCase(r, p)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	name := r.PathValue("name")
	var md *plume.MediaRef
	for i := range m.Media {
		if m.Media[i].Name == name {
			md = &m.Media[i]
		}
	}
	if md == nil {
		h.fail(w, r, p, plume.Errorf(plume.ENOTFOUND, "case %s has no media %q", c.Number, name))
		return
	}
	rc, info, err := h.cfg.Blobs.Open(r.Context(), md.SHA256)
	if err != nil {
		h.fail(w, r, p, fmt.Errorf("media %s of %s: %w", md.Name, c.ID, errors.New(err.Error())))
		return
	}
	defer rc.Close()
	ct := md.ContentType
	if !servedTypes[ct] {
		ct = "application/octet-stream"
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, md.Name))
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("ETag", `"`+md.SHA256+`"`)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_ = info
	http.ServeContent(w, r, "", md.CapturedAt, rc)
}

func (h *Handler) openPackage(r *http.Request, p *auth.Principal) (*central.Case, io.ReadSeekCloser, central.BlobInfo, error) {
	c, err := h.cfg.Review.Case(r.Context(), p.Officer, plume.CaseID(r.PathValue("id")))
	if err != nil {
		return nil, nil, central.BlobInfo{}, err
	}
	if c.PackageSHA256 == "" {
		return nil, nil, central.BlobInfo{}, plume.Errorf(plume.ENOTFOUND, "the package of case %s is not built yet", c.Number)
	}
	rc, info, err := h.cfg.Blobs.Open(r.Context(), c.PackageSHA256)
	if err != nil {
		return nil, nil, info, fmt.Errorf("package of %s: %s", c.ID, err)
	}
	return c, rc, info, nil
}

func (h *Handler) pkg(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	c, rc, _, err := h.openPackage(r, p)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.zip"`, c.Number))
	http.ServeContent(w, r, "", c.PackageBuiltAt, rc)
}

// sheet serves the PDF evidence sheet from inside the signed package.
func (h *Handler) sheet(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	c, rc, info, err := h.openPackage(r, p)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	defer rc.Close()
	ra, ok := rc.(io.ReaderAt)
	if !ok {
		h.fail(w, r, p, errors.New("blob store does not support random access"))
		return
	}
	zr, err := zip.NewReader(ra, info.Size)
	if err != nil {
		h.fail(w, r, p, fmt.Errorf("package of %s: %w", c.ID, err))
		return
	}
	want := c.Number + "/data/evidence-sheet.pdf"
	for _, f := range zr.File {
		if f.Name != want {
			continue
		}
		fr, err := f.Open()
		if err != nil {
			h.fail(w, r, p, err)
			return
		}
		defer fr.Close()
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s-evidence-sheet.pdf"`, c.Number))
		io.Copy(w, io.LimitReader(fr, 64<<20))
		return
	}
	h.fail(w, r, p, plume.Errorf(plume.ENOTFOUND, "the package of case %s has no PDF sheet (built without the sheet font)", c.Number))
}

func (h *Handler) vehicles(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	plate := strings.ToUpper(strings.TrimSpace(r.URL.Query().Get("plate")))
	var hist []central.VehicleEntry
	stations := map[plume.StationID]bool{}
	if plate != "" {
		all, err := h.cfg.Store.VehicleHistory(r.Context(), plate, 500)
		if err != nil {
			h.fail(w, r, p, err)
			return
		}
		for _, e := range all {
			if p.Officer.Sees(e.Station) {
				hist = append(hist, e)
				stations[e.Station] = true
			}
		}
	}
	// Without a plate the page lists the vehicles of the latest cases.
	var recent []recentVehicle
	if plate == "" {
		f := central.CaseFilter{ExcludeKind: central.KindUnlinked, Limit: 200}
		p.Officer.ScopeCases(&f)
		cases, _, err := h.cfg.Store.Cases(r.Context(), f)
		if err != nil {
			h.fail(w, r, p, err)
			return
		}
		seen := map[string]int{}
		for _, c := range cases {
			if c.Plate == "" {
				continue
			}
			if i, ok := seen[c.Plate]; ok {
				recent[i].Cases++
				continue
			}
			if len(recent) == 50 {
				continue
			}
			seen[c.Plate] = len(recent)
			recent = append(recent, recentVehicle{Plate: c.Plate, Colour: c.PlateColour, Last: c, Cases: 1})
		}
	}
	h.render(w, http.StatusOK, "vehicles", struct {
		view
		Plate        string
		History      []central.VehicleEntry
		StationCount int
		Recent       []recentVehicle
	}{h.base(p, "一车一档 Vehicle file", "vehicles", r), plate, hist, len(stations), recent})
}

// recentVehicle is one plate among the latest cases: its newest case and
// how many of the latest cases are its.
type recentVehicle struct {
	Plate  string
	Colour plume.PlateColour
	Last   *central.Case
	Cases  int
}
