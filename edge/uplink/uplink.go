// Package uplink pushes the edge spool to central over the station ingest
// protocol (central/api/PROTOCOL.md): media blobs, then signed evidence
// manifests, then batches of compact records. Every request is signed with
// the station key (plume.SignRequest) and retried with jittered exponential
// backoff through go-retryablehttp, honouring Retry-After. Bodies are
// rewindable: media streams from its spool file and is re-read with Seek on
// each attempt, never loaded into memory.
//
// Outcomes follow the protocol's table: 2xx marks the item delivered;
// transport errors, 401, 429 and 5xx leave it queued and retry later;
// 409 missing_media re-uploads the listed blobs and retries the manifest
// once; any other 4xx dead-letters the item in the spool with central's
// code and message.
package uplink

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
)

// Protocol limits for a records batch.
const (
	maxBatchRecords = 1000
	maxBatchBytes   = 4 << 20
	maxRetryAfter   = 15 * time.Minute
)

// Config configures an Uplink.
type Config struct {
	CentralURL string          // e.g. "https://central.example/", from the enrollment
	Station    plume.StationID // this station
	Key        ed25519.PrivateKey
	Spool      *spool.Spool
	Logger     *slog.Logger     // nil discards
	Now        func() time.Time // nil means time.Now

	// HTTPClient is the client for each attempt; nil means a pooled client
	// with sensible timeouts. Tests pass one for httptest servers.
	HTTPClient *http.Client
	// RecordBatch is the most records per request (default 200, at most
	// 1000).
	RecordBatch int
	// BackoffMin and BackoffMax bound the jittered exponential backoff
	// between attempts (default 1 s and 5 min).
	BackoffMin, BackoffMax time.Duration
	// RetryMax is the number of retries of one request before the uplink
	// sets the item aside and comes back to it after a backoff (default 4).
	RetryMax int
	// PollInterval is how often an idle uplink looks at the spool when no
	// notification arrives (default 10 s).
	PollInterval time.Duration
}

// Stats are plain counters and gauges for metrics.
type Stats struct {
	EvidenceDelivered int64
	RecordsDelivered  int64
	BlobsUploaded     int64
	BlobBytes         int64
	DeadLettered      int64
	Retries           int64 // attempts after the first, inside retryablehttp
	Failures          int64 // rounds that ended in a transient failure
	LastSuccess       time.Time
	LastError         string
	ClockOffset       time.Duration // edge clock minus central's, from Date headers
	ClockOffsetKnown  bool
}

// Uplink delivers the spool's outboxes to central.
type Uplink struct {
	cfg    Config
	base   *url.URL
	client *retryablehttp.Client
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	lastOK  time.Time
	lastErr string

	evidenceDelivered, recordsDelivered, blobsUploaded, blobBytes atomic.Int64
	deadLettered, retries, failures                               atomic.Int64
	offset                                                        atomic.Int64
	offsetKnown                                                   atomic.Bool
	rtt, measuredAt                                               atomic.Int64
	precise                                                       atomic.Bool
}

// errTransient marks a round that should be retried later.
var errTransient = errors.New("transient failure")

// New checks cfg and returns an Uplink. Nothing runs until Run.
func New(cfg Config) (*Uplink, error) {
	if cfg.Spool == nil {
		return nil, errors.New("new uplink: spool is required")
	}
	if err := cfg.Station.Validate(); err != nil {
		return nil, fmt.Errorf("new uplink: %w", err)
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("new uplink: an Ed25519 station key is required")
	}
	base, err := url.Parse(cfg.CentralURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("new uplink: central URL %q is not an http(s) URL", cfg.CentralURL)
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RecordBatch <= 0 {
		cfg.RecordBatch = 200
	}
	cfg.RecordBatch = min(cfg.RecordBatch, maxBatchRecords)
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(5*time.Minute, cfg.BackoffMin)
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 4
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Second
	}
	u := &Uplink{cfg: cfg, base: base, log: cfg.Logger.With("component", "uplink"), now: cfg.Now}

	hc := &http.Client{Timeout: 0}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	rt := hc.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 2 * time.Minute,
			ExpectContinueTimeout: time.Second,
		}
	}
	hc.Transport = &clockTransport{next: rt, u: u}
	u.client = &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       nil,
		RetryWaitMin: cfg.BackoffMin,
		RetryWaitMax: cfg.BackoffMax,
		RetryMax:     cfg.RetryMax,
		CheckRetry:   CheckRetry,
		Backoff:      u.backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		PrepareRetry: u.resign,
		RequestLogHook: func(_ retryablehttp.Logger, r *http.Request, attempt int) {
			if attempt > 0 {
				u.retries.Add(1)
				u.log.Debug("retrying", "method", r.Method, "path", r.URL.Path, "attempt", attempt)
			}
		},
	}
	return u, nil
}

// CheckRetry implements the retry column of PROTOCOL.md: transport errors,
// 401 (a station-wide problem), 429 and every 5xx are retried; every other
// status is final.
func CheckRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	if err != nil {
		// Retries transport errors; refuses bad schemes, headers and TLS
		// certificates, which no retry fixes.
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	switch c := resp.StatusCode; {
	case c == http.StatusUnauthorized, c == http.StatusTooManyRequests, c >= 500:
		return true, nil
	}
	return false, nil
}

// backoff is a retryablehttp.Backoff: Retry-After on 429 and 503 when given
// (capped at 15 min), otherwise exponential from min, capped at max, with
// equal jitter (half fixed, half random) so that stations do not retry in
// step after an outage.
func (u *Uplink) backoff(minD, maxD time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), u.now()); ok {
			return min(d, maxRetryAfter)
		}
	}
	return jitter(minD, maxD, attempt)
}

func jitter(minD, maxD time.Duration, attempt int) time.Duration {
	d := maxD
	if attempt < 32 {
		if e := minD << attempt; e > 0 && e < maxD {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// ClockOffset returns the edge clock minus central's clock, estimated from
// the latest response, and whether one was seen. With central's Plume-Time
// header (milliseconds) the estimate is good to half the round trip
// (ClockRoundTrip); from the Date header alone (one-second resolution) to
// about ±0.5 s more.
func (u *Uplink) ClockOffset() (time.Duration, bool) {
	return time.Duration(u.offset.Load()), u.offsetKnown.Load()
}

// clockTransport measures the clock offset on every response.
type clockTransport struct {
	next http.RoundTripper
	u    *Uplink
}

func (t *clockTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	sent := t.u.now()
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	recv := t.u.now()
	t.u.measure(resp.Header, sent, recv)
	return resp, nil
}

// Stats returns the current counters.
func (u *Uplink) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	off, known := u.ClockOffset()
	return Stats{
		EvidenceDelivered: u.evidenceDelivered.Load(), RecordsDelivered: u.recordsDelivered.Load(),
		BlobsUploaded: u.blobsUploaded.Load(), BlobBytes: u.blobBytes.Load(), DeadLettered: u.deadLettered.Load(),
		Retries: u.retries.Load(), Failures: u.failures.Load(), LastSuccess: u.lastOK, LastError: u.lastErr,
		ClockOffset: off, ClockOffsetKnown: known,
	}
}

// Run delivers the spool until ctx is cancelled or Close is called, then
// returns nil. Items that fail transiently stay queued and are retried after
// a backoff; delivery resumes from the spool after a restart.
func (u *Uplink) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	u.mu.Lock()
	if u.cancel != nil {
		u.mu.Unlock()
		cancel()
		return errors.New("uplink: already running")
	}
	u.cancel, u.done = cancel, done
	u.mu.Unlock()
	defer func() {
		cancel()
		close(done)
		u.mu.Lock()
		u.cancel, u.done = nil, nil
		u.mu.Unlock()
	}()

	failures := 0
	for {
		worked, err := u.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := time.Duration(0)
		switch {
		case err != nil:
			failures++
			u.failures.Add(1)
			u.setErr(err)
			if failures == unreachableAfter {
				u.cfg.Spool.SetCentralReachable(false)
			}
			wait = jitter(u.cfg.BackoffMin, u.cfg.BackoffMax, failures-1)
			u.log.Warn("delivery failed; will retry", "err", err, "wait", wait)
		case worked:
			failures = 0
			continue
		default:
			failures = 0
			wait = u.cfg.PollInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-u.cfg.Spool.Notify():
			if err != nil {
				// New items do not shorten a failure backoff.
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// Close stops a running Run and waits for it to return. The spool stays
// open; the caller closes it afterwards.
func (u *Uplink) Close() error {
	u.mu.Lock()
	cancel, done := u.cancel, u.done
	u.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// Flush delivers everything queued now, retrying transient failures with
// backoff, and returns nil once both outboxes are empty (dead letters
// aside). It returns ctx's error when ctx ends first; use it with a
// deadline to drain at shutdown.
func (u *Uplink) Flush(ctx context.Context) error {
	failures := 0
	for {
		worked, err := u.step(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("flush: %w", context.Cause(ctx))
		}
		if err != nil {
			failures++
			u.failures.Add(1)
			u.setErr(err)
			t := time.NewTimer(jitter(u.cfg.BackoffMin, u.cfg.BackoffMax, failures-1))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("flush: %w", context.Cause(ctx))
			case <-t.C:
			}
			continue
		}
		failures = 0
		if !worked {
			return nil
		}
	}
}

func (u *Uplink) setErr(err error) {
	u.mu.Lock()
	u.lastErr = err.Error()
	u.mu.Unlock()
}

func (u *Uplink) ok() {
	u.mu.Lock()
	u.lastOK = u.now()
	u.mu.Unlock()
	u.cfg.Spool.SetCentralReachable(true)
}

// unreachableAfter is how many deliveries in a row must fail before the
// spool is told central is unreachable (and may fold pass records).
const unreachableAfter = 3

// step delivers the oldest evidence item, or else one batch of records. It
// reports whether there was anything to do.
func (u *Uplink) step(ctx context.Context) (bool, error) {
	ev, err := u.cfg.Spool.PendingEvidence(ctx, 1)
	if err != nil {
		return false, err
	}
	if len(ev) > 0 {
		return true, u.deliverEvidence(ctx, &ev[0])
	}
	recs, err := u.cfg.Spool.PendingRecords(ctx, u.cfg.RecordBatch)
	if err != nil {
		return false, err
	}
	if len(recs) > 0 {
		return true, u.deliverRecords(ctx, recs)
	}
	return false, nil
}

// apiError is central's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Missing []string `json:"missing"`
}

// result is one finished request: a status, central's error if any.
type result struct {
	status int
	err    apiError
}

func (r *result) ok() bool { return r.status >= 200 && r.status < 300 }

func (r *result) reason() string {
	code, msg := r.err.Error.Code, r.err.Error.Message
	if code == "" {
		code = http.StatusText(r.status)
	}
	return fmt.Sprintf("central %d %s: %s", r.status, code, msg)
}

// permanent reports a final refusal (a 4xx other than 401 and 429).
func (r *result) permanent() bool {
	return r.status >= 400 && r.status < 500 && r.status != http.StatusUnauthorized && r.status != http.StatusTooManyRequests
}

func (u *Uplink) path(elem ...string) string {
	parts := []string{"api", "v1", "stations", url.PathEscape(string(u.cfg.Station))}
	for _, e := range elem {
		parts = append(parts, url.PathEscape(e))
	}
	return u.base.EscapedPath() + "/" + strings.Join(parts, "/")
}

// put sends one signed PUT. body is a []byte or an io.ReadSeeker of size
// bytes. A response that is neither 2xx nor a final 4xx becomes an error
// wrapping errTransient.
func (u *Uplink) put(ctx context.Context, path string, body any, size int64, contentSHA string, hdr http.Header) (*result, error) {
	ref := *u.base
	ref.Path, ref.RawPath = "", ""
	full := ref.String() + path
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPut, full, body)
	if err != nil {
		return nil, fmt.Errorf("put %s: %w", path, err)
	}
	req.ContentLength = size
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set(plume.HeaderContentSHA256, contentSHA)
	if size > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if err := u.sign(req.Request); err != nil {
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("put %s: %w: %w", path, errTransient, err)
	}
	defer resp.Body.Close()
	res := &result{status: resp.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if !res.ok() {
		_ = json.Unmarshal(raw, &res.err)
		if !res.permanent() {
			return res, fmt.Errorf("put %s: %w: %s", path, errTransient, res.reason())
		}
	}
	return res, nil
}

// sign sets the station authentication headers on r.
func (u *Uplink) sign(r *http.Request) error {
	date := plume.FormatRequestDate(u.now())
	r.Header.Set(plume.HeaderStation, string(u.cfg.Station))
	r.Header.Set(plume.HeaderDate, date)
	r.Header.Set(plume.HeaderSignature, plume.SignRequest(u.cfg.Key, r.Method, r.URL.EscapedPath(), date, r.Header.Get(plume.HeaderContentSHA256)))
	return nil
}

// resign is the PrepareRetry hook: a retry after a long Retry-After gets a
// fresh Plume-Date and signature. The header map is cloned because the
// previous attempt's request may still be referenced by the transport.
func (u *Uplink) resign(r *http.Request) error {
	r.Header = r.Header.Clone()
	return u.sign(r)
}

// deliverEvidence uploads an item's media, then its manifest.
func (u *Uplink) deliverEvidence(ctx context.Context, ev *spool.Evidence) error {
	log := u.log.With("evidence", ev.ID)
	seen := map[string]bool{}
	for _, md := range ev.Media {
		if seen[md.SHA256] {
			continue
		}
		seen[md.SHA256] = true
		res, err := u.putBlob(ctx, md.SHA256)
		if errors.Is(err, spool.ErrMediaMissing) {
			// Central may hold it from an earlier upload; the manifest
			// will tell.
			log.Warn("media missing in the spool; sending the manifest anyway", "sha256", md.SHA256)
			continue
		}
		if err != nil {
			return err
		}
		if res.permanent() {
			return u.deadLetter(ctx, spool.KindEvidence, string(ev.ID), fmt.Sprintf("blob %s: %s", md.SHA256, res.reason()))
		}
	}
	for try := 0; ; try++ {
		res, err := u.putManifest(ctx, ev)
		if err != nil {
			return err
		}
		if res.ok() {
			if err := u.cfg.Spool.MarkEvidenceDelivered(ctx, ev.ID); err != nil {
				return err
			}
			u.evidenceDelivered.Add(1)
			u.ok()
			log.Debug("evidence delivered", "status", res.status)
			return nil
		}
		if res.err.Error.Code != plume.EMISSINGMEDIA || try > 0 || len(res.err.Missing) == 0 {
			return u.deadLetter(ctx, spool.KindEvidence, string(ev.ID), res.reason())
		}
		log.Warn("central lacks media; uploading it again", "missing", res.err.Missing)
		for _, sha := range res.err.Missing {
			if !seen[sha] {
				return u.deadLetter(ctx, spool.KindEvidence, string(ev.ID), fmt.Sprintf("%s (not listed in the manifest: %s)", res.reason(), sha))
			}
			bres, err := u.putBlob(ctx, sha)
			if errors.Is(err, spool.ErrMediaMissing) {
				return u.deadLetter(ctx, spool.KindEvidence, string(ev.ID), fmt.Sprintf("media %s missing both in the spool and at central", sha))
			}
			if err != nil {
				return err
			}
			if bres.permanent() {
				return u.deadLetter(ctx, spool.KindEvidence, string(ev.ID), fmt.Sprintf("blob %s: %s", sha, bres.reason()))
			}
		}
	}
}

// putBlob streams one media file from the spool.
func (u *Uplink) putBlob(ctx context.Context, sha string) (*result, error) {
	f, size, err := u.cfg.Spool.OpenMedia(sha)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// *os.File is an io.ReadSeeker: retryablehttp rewinds it with Seek
	// before every attempt and never buffers it.
	res, err := u.put(ctx, u.path("blobs", sha), io.ReadSeeker(f), size, sha, nil)
	if err == nil && res.ok() {
		u.blobsUploaded.Add(1)
		u.blobBytes.Add(size)
	}
	return res, err
}

func (u *Uplink) putManifest(ctx context.Context, ev *spool.Evidence) (*result, error) {
	hdr := http.Header{}
	hdr.Set(plume.HeaderManifestSignature, plume.EncodeKey(ev.Signature))
	hdr.Set(plume.HeaderIdempotencyKey, string(ev.ID))
	hdr.Set("Content-Type", "application/json")
	return u.put(ctx, u.path("evidence", string(ev.ID)), ev.Manifest, int64(len(ev.Manifest)), plume.ContentSHA256(ev.Manifest), hdr)
}

func (u *Uplink) deadLetter(ctx context.Context, kind spool.Kind, id, reason string) error {
	if err := u.cfg.Spool.DeadLetter(ctx, kind, id, reason); err != nil {
		return err
	}
	u.deadLettered.Add(1)
	u.log.Warn("central refused an item; dead-lettered", "kind", kind, "id", id, "reason", reason)
	return nil
}

// deliverRecords sends one batch. A batch central refuses as a whole is
// split in halves to find the records at fault; a single refused record is
// dead-lettered.
func (u *Uplink) deliverRecords(ctx context.Context, items []spool.RecordItem) error {
	recs := make([]plume.Record, len(items))
	for i, it := range items {
		recs[i] = it.Record
	}
	body, err := json.Marshal(struct {
		Records []plume.Record `json:"records"`
	}{recs})
	if err != nil {
		return fmt.Errorf("encode records: %w", err)
	}
	if len(body) > maxBatchBytes && len(items) > 1 {
		return u.split(ctx, items)
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	res, err := u.put(ctx, u.path("records", BatchID(items)), body, int64(len(body)), plume.ContentSHA256(body), hdr)
	if err != nil {
		return err
	}
	if res.ok() {
		if err := u.cfg.Spool.MarkRecordsDelivered(ctx, items); err != nil {
			return err
		}
		u.recordsDelivered.Add(int64(len(items)))
		u.ok()
		return nil
	}
	if len(items) > 1 {
		u.log.Warn("central refused a records batch; splitting it", "records", len(items), "reason", res.reason())
		return u.split(ctx, items)
	}
	return u.deadLetter(ctx, spool.KindRecord, items[0].Record.ID, res.reason())
}

func (u *Uplink) split(ctx context.Context, items []spool.RecordItem) error {
	h := len(items) / 2
	if err := u.deliverRecords(ctx, items[:h]); err != nil {
		return err
	}
	return u.deliverRecords(ctx, items[h:])
}

// BatchID names a records batch after its contents (the record IDs), so a
// resent batch has the same name.
func BatchID(items []spool.RecordItem) string {
	h := sha256.New()
	for _, it := range items {
		h.Write([]byte(it.Record.ID))
		h.Write([]byte{0})
	}
	return "b-" + hex.EncodeToString(h.Sum(nil))[:40]
}
