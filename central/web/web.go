// Package web is the officers' web application: sign-in, the review queue,
// the case page (media, readings against limits, validity, calibration,
// the vehicle file, decisions), the dashboard, the audit log and officer
// administration. Pages are server-rendered HTML with a little JavaScript
// for keyboard triage; charts are server-rendered SVG.
//
// # Security
//
// Every page but the sign-in needs a session (auth.Manager); every POST
// needs the session's CSRF token and a same-origin Origin when one is
// sent; the session cookie is HttpOnly and SameSite=Strict. Station
// scoping is central.Officer.Sees, the same check the JSON API uses: a
// case of another station is answered exactly like a missing one. Media is
// served by case and manifest media name, never by a path, with the
// manifest's content type from a fixed list. Form bodies are capped
// (MaxFormBody).
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/api"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/ops"
	"github.com/plume-emissions/plume/central/profile"
	"github.com/plume-emissions/plume/central/review"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/*
var assetFS embed.FS

// MaxFormBody caps every form post.
const MaxFormBody = 64 << 10

// Config configures the web app.
type Config struct {
	Store    central.Store
	Blobs    central.BlobStore
	Auth     *auth.Manager
	Review   *review.Service
	Profiles *profile.Set
	Logger   *slog.Logger
	Now      func() time.Time
	// Ops serves the station, alert and backtest pages (ops.go); nil
	// leaves them out.
	Ops *ops.Service
	// OnJobs is called after an administrator re-queues a failed job, to
	// wake the package builders.
	OnJobs func()
}

// Handler serves the pages.
type Handler struct {
	cfg    Config
	logger *slog.Logger
	mux    *http.ServeMux
	pages  map[string]*template.Template
}

var zone = central.StatsZone

var funcs = template.FuncMap{
	"local": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(zone).Format("2006-01-02 15:04:05")
	},
	// stamp is a time with its zone named, to the second, as the
	// evidence images' strips write it.
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return plume.FormatTime(t, zone)
	},
	"custody": central.ActionLabel,
	// alertWord gives an alert's state, source or severity in Chinese
	// with the English word.
	"alertWord": func(v any) string {
		w := fmt.Sprint(v)
		zh := map[string]string{
			"open": "待处理", "acknowledged": "已确认", "escalated": "已上报", "resolved": "已恢复",
			"integrity": "数据完整性", "health": "站点状态", "cloned-plate": "疑似套牌", "config": "配置",
			"info": "提示", "warning": "警告", "critical": "严重",
		}[w]
		if zh == "" {
			return w
		}
		return zh + " " + w
	},
	"sub":      func(a, b int) int { return a - b },
	"zoneName": func() string { return plume.ZoneLabel(time.Now(), zone) },
	"upper":    func(v any) string { return strings.ToUpper(fmt.Sprint(v)) },
	"num":      func(v float64) string { return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".") },
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
	"size": func(n int64) string {
		switch {
		case n >= 1<<30:
			return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"pct": func(a, b int) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f %%", 100*float64(a)/float64(b))
	},
	"outcome": func(o plume.Outcome) template.HTML {
		switch o {
		case plume.OutcomeExceed:
			return `<span class="exceed">超标 exceed</span>`
		case plume.OutcomePass:
			return `<span class="ok">合格 pass</span>`
		}
		return `<span class="muted">无效 invalid</span>`
	},
	"exportLabel": func(s central.ExportStatus) string {
		switch s {
		case central.ExportSent:
			return "✓ 已移送 sent"
		case central.ExportQueued:
			return "排队 queued"
		case central.ExportFailing:
			return "重试中 failing"
		case central.ExportFailed:
			return "✗ 失败 failed"
		}
		return string(s)
	},
	"meanExport": func(d central.DayStats) string { return meanExport(&d) },
	"closed":     func(d central.DayStats) int { return closed(&d) },
	"hasPrefix":  strings.HasPrefix,
	"polN":       func(m map[plume.Pollutant]int, p string) int { return m[plume.Pollutant(p)] },
	"dispN":      func(m map[central.DispositionOutcome]int, d string) int { return m[central.DispositionOutcome(d)] },
	"sightings":  func(d *ops.ClonedDetail) []ops.Sighting { return []ops.Sighting{d.A, d.B} },
}

// New returns the web handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, logger: cfg.Logger.With("component", "web"), mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	for _, p := range []string{"login", "error", "queue", "case", "vehicles", "dashboard", "audit", "officers", "stations", "station", "alerts", "alert", "backtest"} {
		t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("web template %s: %w", p, err)
		}
		h.pages[p] = t
	}
	static := noListing(assetFS)
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		r.URL.Path = "assets/" + r.URL.Path
		static.ServeHTTP(w, r)
	})))
	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("POST /logout", h.page("", h.logout))
	h.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/queue", http.StatusSeeOther) })
	h.mux.HandleFunc("GET /queue", h.page(central.PermReadCases, h.queue))
	h.mux.HandleFunc("POST /queue/bulk", h.page(central.PermReview, h.bulk))
	h.mux.HandleFunc("GET /cases/{id}", h.page(central.PermReadCases, h.casePage))
	h.mux.HandleFunc("POST /cases/{id}/{action}", h.page(central.PermReadCases, h.caseAction))
	h.mux.HandleFunc("GET /cases/{id}/media/{name}", h.page(central.PermReadCases, h.media))
	h.mux.HandleFunc("GET /cases/{id}/sheet.pdf", h.page(central.PermReadCases, h.sheet))
	h.mux.HandleFunc("GET /cases/{id}/package.zip", h.page(central.PermReadCases, h.pkg))
	h.mux.HandleFunc("GET /vehicles", h.page(central.PermReadCases, h.vehicles))
	h.mux.HandleFunc("GET /dashboard", h.page(central.PermDashboard, h.dashboard))
	h.mux.HandleFunc("GET /dashboard.csv", h.page(central.PermDashboard, h.dashboardCSV))
	h.mux.HandleFunc("GET /audit", h.page(central.PermAudit, h.audit))
	h.mux.HandleFunc("GET /audit.csv", h.page(central.PermAudit, h.auditCSV))
	h.mux.HandleFunc("GET /admin/officers", h.page(central.PermAdmin, h.officers))
	h.mux.HandleFunc("POST /admin/officers", h.page(central.PermAdmin, h.addOfficer))
	h.mux.HandleFunc("POST /admin/tokens", h.page(central.PermAdmin, h.issueToken))
	h.mux.HandleFunc("POST /admin/jobs/{id}/retry", h.page(central.PermAdmin, h.retryJob))
	h.mux.HandleFunc("POST /admin/officers/{username}/change", h.page(central.PermAdmin, h.changeOfficer))
	if cfg.Ops != nil {
		h.registerOps()
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

type ctxKey struct{}

// page wraps a handler: it needs a session (else a redirect to sign in),
// the permission (when given), and for POSTs a capped body and the CSRF
// token.
func (h *Handler) page(perm central.Permission, fn func(w http.ResponseWriter, r *http.Request, p *auth.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		p, err := h.cfg.Auth.Authenticate(r)
		if err != nil {
			if errors.Is(err, auth.ErrNoSession) {
				if r.Method == http.MethodGet {
					http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				h.fail(w, r, nil, err)
				return
			}
			h.fail(w, r, nil, err)
			return
		}
		if r.Method == http.MethodPost {
			if r.ContentLength > MaxFormBody {
				h.fail(w, r, p, plume.Errorf(plume.ETOOLARGE, "form larger than %d bytes", MaxFormBody))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, MaxFormBody)
			if err := r.ParseForm(); err != nil {
				var mb *http.MaxBytesError
				if !errors.As(err, &mb) {
					err = plume.Errorf(plume.EINVALID, "bad form")
				}
				h.fail(w, r, p, err)
				return
			}
			if err := auth.CheckCSRF(r, p); err != nil {
				h.fail(w, r, p, err)
				return
			}
		}
		if perm != "" && !p.Officer.Can(perm) {
			h.fail(w, r, p, plume.Errorf(plume.EFORBIDDEN, "your role (%s) may not open this page", p.Officer.Role))
			return
		}
		fn(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)), p)
	}
}

// view is what every page template gets.
type view struct {
	Title, Nav, Flash, Error string
	Me                       *central.Officer
	CSRF                     string
	OpenAlerts               int // the alerts badge
}

func (h *Handler) base(p *auth.Principal, title, nav string, r *http.Request) view {
	v := view{Title: title, Nav: nav, Flash: r.URL.Query().Get("flash")}
	if p != nil {
		v.Me, v.CSRF = p.Officer, p.Session.CSRF
		if h.cfg.Ops != nil {
			v.OpenAlerts = h.cfg.Ops.OpenAlerts(r.Context(), p.Officer)
		}
	}
	if len(v.Flash) > 200 {
		v.Flash = ""
	}
	return v
}

func (h *Handler) render(w http.ResponseWriter, status int, page string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	if err := h.pages[page].ExecuteTemplate(&b, "layout", data); err != nil {
		h.logger.Error("render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	io.WriteString(w, b.String())
}

// fail answers an error as a page, with the status from the one mapping
// in api.Status; internal errors are logged and shown generically.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, p *auth.Principal, err error) {
	status, code := api.Status(err)
	msg := plume.ErrorMessage(err)
	if code == plume.EINTERNAL {
		h.logger.Error("internal error", "path", r.URL.Path, "err", err)
	} else if code == plume.ETOOLARGE {
		msg = "the form is too large"
	}
	h.render(w, status, "error", struct {
		view
		Status  int
		Message string
	}{h.base(p, "Error", "", r), status, msg})
}

func (h *Handler) audit1(ctx context.Context, e central.AuditEvent) {
	if _, err := h.cfg.Store.AppendAudit(ctx, e); err != nil {
		h.logger.Error("audit", "err", err)
	}
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if p, err := h.cfg.Auth.Authenticate(r); err == nil && p != nil {
		http.Redirect(w, r, "/queue", http.StatusSeeOther)
		return
	}
	h.render(w, http.StatusOK, "login", h.base(nil, "Sign in", "", r))
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxFormBody {
		h.fail(w, r, nil, plume.Errorf(plume.ETOOLARGE, "form too large"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBody)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, nil, plume.Errorf(plume.EINVALID, "bad form"))
		return
	}
	// A stale or planted session cookie is dropped: sign-in always makes a
	// new session.
	if c, err := r.Cookie(auth.CookieName); err == nil && c.Value != "" {
		h.cfg.Store.DeleteSession(r.Context(), auth.HashToken(c.Value))
	}
	p, tok, err := h.cfg.Auth.Login(r.Context(), r.PostFormValue("username"), r.PostFormValue("password"), auth.ClientIP(r))
	if err != nil {
		v := h.base(nil, "Sign in", "", r)
		status, _ := api.Status(err)
		v.Error = plume.ErrorMessage(err)
		h.render(w, status, "login", v)
		return
	}
	h.cfg.Auth.SetCookie(w, r, tok, p.Session.ExpiresAt)
	http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	h.cfg.Auth.Logout(r.Context(), p, auth.ClientIP(r))
	h.cfg.Auth.ClearCookie(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// visibleStations lists the stations the officer sees.
func (h *Handler) visibleStations(ctx context.Context, o *central.Officer) []*central.Station {
	all, err := h.cfg.Store.Stations(ctx)
	if err != nil {
		h.logger.Error("stations", "err", err)
	}
	var out []*central.Station
	for _, s := range all {
		if o.Sees(s.ID) {
			out = append(out, s)
		}
	}
	return out
}

func parseDay(s string, end bool) time.Time {
	t, err := time.ParseInLocation("2006-01-02", s, zone)
	if err != nil {
		return time.Time{}
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

// caseFilter reads the queue's filter from the query (central.ParseCaseFilter,
// as the API does); the queue sets unlinked cases aside unless asked for
// ("kind=unlinked", or "kind=all" for every case): they cannot be tied to
// the vehicle's other passes.
func caseFilter(q url.Values) (central.CaseFilter, error) {
	return central.ParseCaseFilter(q, zone, central.KindUnlinked)
}

// quickRange is a one-click time range over the queue.
type quickRange struct {
	Label, URL string
	On         bool
}

func (h *Handler) queue(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	start := time.Now()
	q := r.URL.Query()
	f, err := caseFilter(q)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	p.Officer.ScopeCases(&f)
	cases, next, err := h.cfg.Store.Cases(r.Context(), f)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	counts, err := h.cfg.Store.CaseCounts(r.Context(), f)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	// Pages of the current tab, and the quick time ranges.
	shown := total
	if f.Status != "" {
		shown = counts[f.Status]
	}
	pages := max(1, (shown+f.Limit-1)/f.Limit)
	page := 1
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 && f.Cursor != "" {
		page = min(n, pages)
	}
	today := h.cfg.Now().In(zone)
	var ranges []quickRange
	for _, qr := range []struct {
		label string
		days  int
	}{{"今天 Today", 1}, {"7 天 7 days", 7}, {"30 天 30 days", 30}} {
		from, to := today.AddDate(0, 0, 1-qr.days).Format("2006-01-02"), today.Format("2006-01-02")
		q2 := url.Values{}
		for key, vals := range q {
			q2[key] = vals
		}
		q2.Del("cursor")
		q2.Del("page")
		q2.Set("from", from)
		q2.Set("to", to)
		ranges = append(ranges, quickRange{Label: qr.label, URL: "/queue?" + q2.Encode(), On: q.Get("from") == from && q.Get("to") == to})
	}
	// How many unlinked cases the default view sets aside.
	setAside := 0
	if f.ExcludeKind != "" {
		uf := f
		uf.ExcludeKind, uf.Kind = "", f.ExcludeKind
		uc, err := h.cfg.Store.CaseCounts(r.Context(), uf)
		if err != nil {
			h.fail(w, r, p, err)
			return
		}
		for st, n := range uc {
			if f.Status == "" || st == f.Status {
				setAside += n
			}
		}
	}
	with := func(k, v string) string {
		q2 := url.Values{}
		for key, vals := range q {
			q2[key] = vals
		}
		q2.Del("cursor")
		q2.Del("page")
		if v == "" {
			q2.Del(k)
		} else {
			q2.Set(k, v)
		}
		return "/queue?" + q2.Encode()
	}
	self := r.URL.RequestURI()
	qq := url.Values{}
	for key, vals := range q {
		qq[key] = vals
	}
	qq.Del("cursor")
	qq.Del("page")
	if len(qq) == 0 {
		qq.Set("status", "") // the default queue, named, so its cases know where they came from
	}
	data := struct {
		view
		F           central.CaseFilter
		From, To    string
		Stations    []*central.Station
		Kinds       []central.CaseKind
		Pollutants  []plume.Pollutant
		Grades      []int
		Statuses    []central.CaseStatus
		Counts      map[central.CaseStatus]int
		Total       int
		Page, Pages int
		Ranges      []quickRange
		SetAside    int // unlinked cases the default view leaves out
		SetAsideURL string
		Kind        string // the kind parameter as given
		Cases       []*central.Case
		Next        string
		NextURL     string
		FirstURL    string
		Self        string
		Back        string
		Reasons     []review.Reason
		Elapsed     string
		TabURL      func(string) string
		Sort        string
		SortURL     func(string) string
		SortMark    func(string) string
	}{
		view: h.base(p, "Review queue", "queue", r), F: f, From: q.Get("from"), To: q.Get("to"),
		Stations:   h.visibleStations(r.Context(), p.Officer),
		Kinds:      []central.CaseKind{central.KindEnforcement, central.KindWarning, central.KindUnlinked, central.KindSmoke},
		Pollutants: []plume.Pollutant{plume.PollutantNO, plume.PollutantOpacity, plume.PollutantRingelmann, plume.PollutantCO, plume.PollutantHC},
		Grades:     []int{1, 2, 3, 4, 5}, Statuses: central.CaseStatuses, Counts: counts, Total: total,
		SetAside: setAside, SetAsideURL: with("kind", string(central.KindUnlinked)), Kind: q.Get("kind"),
		Page: page, Pages: pages, Ranges: ranges,
		Cases: cases, Next: next, NextURL: with("cursor", next) + "&page=" + strconv.Itoa(page+1), FirstURL: with("cursor", ""), Self: self,
		Back: "?q=" + url.QueryEscape(qq.Encode()), Reasons: review.Reasons,
		TabURL: func(s string) string { return with("status", s) },
		Sort:   q.Get("sort"),
		// A column header sorts by its column ascending, or descending
		// when it already sorts ascending.
		SortURL: func(key string) string {
			if f.SortBy == central.CaseSortKey(key) && !f.Descending {
				return with("sort", "-"+key)
			}
			return with("sort", key)
		},
		SortMark: func(key string) string {
			switch {
			case f.SortBy != central.CaseSortKey(key):
				return ""
			case f.Descending:
				return " ▼"
			}
			return " ▲"
		},
	}
	if f.Station == "" {
		data.F.Station = plume.StationID(q.Get("station"))
	}
	data.Elapsed = time.Since(start).Round(100 * time.Microsecond).String()
	w.Header().Set("Server-Timing", fmt.Sprintf("queue;dur=%.1f", float64(time.Since(start).Microseconds())/1000))
	h.render(w, http.StatusOK, "queue", data)
}

func (h *Handler) bulk(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	var ids []plume.CaseID
	for _, s := range r.PostForm["case"] {
		ids = append(ids, plume.CaseID(s))
	}
	if len(ids) == 0 {
		h.fail(w, r, p, plume.Errorf(plume.EINVALID, "select at least one case"))
		return
	}
	res := h.cfg.Review.BulkReject(r.Context(), review.Actor{Officer: p.Officer, IP: auth.ClientIP(r), Token: p.Session.TokenID()}, ids, r.PostFormValue("reason"), r.PostFormValue("comment"))
	ok, bad := 0, 0
	for _, x := range res {
		if x.Err != nil {
			bad++
		} else {
			ok++
		}
	}
	back := r.PostFormValue("back")
	if !strings.HasPrefix(back, "/queue") {
		back = "/queue"
	}
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	http.Redirect(w, r, back+sep+"flash="+url.QueryEscape(fmt.Sprintf("驳回 %d 件 Rejected %d case(s); %d could not be rejected", ok, ok, bad)), http.StatusSeeOther)
}
