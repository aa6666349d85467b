package export

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// HTTPPush sends cases to the police system's push endpoint
// (POLICE-CONTRACT.md §1).
type HTTPPush struct {
	base   string
	secret []byte
	client *retryablehttp.Client
	now    func() time.Time
}

// PushConfig configures HTTPPush.
type PushConfig struct {
	BaseURL string // e.g. https://police.example/gateway
	Secret  []byte
	Logger  *slog.Logger
	Now     func() time.Time
	// RetryMax is the quick retries within one attempt (default 2); the
	// worker's queue retries after that.
	RetryMax int
	Timeout  time.Duration // per request (default 2 min)
}

// NewHTTPPush returns the HTTP push adapter.
func NewHTTPPush(cfg PushConfig) (*HTTPPush, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("police push URL %q: want http(s)://host/…", cfg.BaseURL)
	}
	if len(cfg.Secret) < 16 {
		return nil, fmt.Errorf("police shared secret: at least 16 bytes")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	c := retryablehttp.NewClient()
	c.RetryMax = cfg.RetryMax
	if c.RetryMax == 0 {
		c.RetryMax = 2
	}
	c.RetryWaitMin, c.RetryWaitMax = 200*time.Millisecond, 5*time.Second
	c.Backoff = retryablehttp.LinearJitterBackoff
	c.HTTPClient.Timeout = cfg.Timeout
	c.Logger = nil
	if cfg.Logger != nil {
		c.Logger = slogAdapter{cfg.Logger.With("component", "export-http")}
	}
	// Every attempt is signed again, so a retry carries a fresh date.
	secret := cfg.Secret
	c.PrepareRetry = func(req *http.Request) error {
		date := cfg.Now().UTC().Format(time.RFC3339)
		req.Header.Set(HeaderDate, date)
		req.Header.Set(HeaderAuthorization, Sign(secret, req.Method, req.URL.EscapedPath(), date, req.Header.Get(HeaderContentSHA256)))
		return nil
	}
	return &HTTPPush{base: strings.TrimRight(cfg.BaseURL, "/"), secret: cfg.Secret, client: c, now: cfg.Now}, nil
}

// Name implements Exporter.
func (h *HTTPPush) Name() string { return "http-push" }

// Export implements Exporter. The package is streamed from the blob store
// on every attempt, never held in memory.
func (h *HTTPPush) Export(ctx context.Context, key string, rec *Record, pkg Package) (*Receipt, error) {
	recJSON, err := json.Marshal(rec)
	if err != nil {
		return nil, &PermanentError{Err: fmt.Errorf("encode record: %w", err)}
	}
	var bnd [12]byte
	rand.Read(bnd[:])
	boundary := "plume-" + hex.EncodeToString(bnd[:])
	head := fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"record\"\r\nContent-Type: application/json\r\n\r\n%s\r\n--%s\r\nContent-Disposition: form-data; name=\"package\"; filename=\"%s\"\r\nContent-Type: application/zip\r\n\r\n",
		boundary, recJSON, boundary, pkg.File)
	tail := fmt.Sprintf("\r\n--%s--\r\n", boundary)
	open := func() (io.Reader, io.Closer, error) {
		f, err := pkg.Open()
		if err != nil {
			return nil, nil, err
		}
		return io.MultiReader(strings.NewReader(head), io.LimitReader(f, pkg.Size), strings.NewReader(tail)), f, nil
	}
	// The body's digest, streamed once.
	r, c, err := open()
	if err != nil {
		return nil, fmt.Errorf("open package: %w", err)
	}
	sum := sha256.New()
	n, err := io.Copy(sum, r)
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("read package: %w", err)
	}
	if want := int64(len(head)+len(tail)) + pkg.Size; n != want {
		return nil, &PermanentError{Err: fmt.Errorf("package is %d bytes, the case lists %d", n-int64(len(head)+len(tail)), pkg.Size)}
	}
	digest := hex.EncodeToString(sum.Sum(nil))

	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	body := retryablehttp.ReaderFunc(func() (io.Reader, error) {
		r, c, err := open()
		if err != nil {
			return nil, err
		}
		closers = append(closers, c)
		return r, nil
	})
	u := h.base + "/plume/v1/cases/" + url.PathEscape(rec.CaseNumber)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	date := h.now().UTC().Format(time.RFC3339)
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	req.Header.Set(HeaderIdempotency, key)
	req.Header.Set(HeaderDate, date)
	req.Header.Set(HeaderContentSHA256, digest)
	req.Header.Set(HeaderAuthorization, Sign(h.secret, http.MethodPut, req.URL.EscapedPath(), date, digest))
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", rec.CaseNumber, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated:
		var rc Receipt
		if err := json.Unmarshal(b, &rc); err != nil || rc.ID == "" {
			return nil, fmt.Errorf("push %s: answer without a receipt: %.200s", rec.CaseNumber, b)
		}
		return &rc, nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, fmt.Errorf("push %s: %s: %.200s", rec.CaseNumber, resp.Status, bytes.TrimSpace(b))
	default:
		return nil, &PermanentError{Err: fmt.Errorf("push %s refused: %s: %.200s", rec.CaseNumber, resp.Status, bytes.TrimSpace(b))}
	}
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Error(msg string, kv ...any) { a.l.Warn(msg, kv...) }
func (a slogAdapter) Info(msg string, kv ...any)  { a.l.Debug(msg, kv...) }
func (a slogAdapter) Debug(msg string, kv ...any) { a.l.Debug(msg, kv...) }
func (a slogAdapter) Warn(msg string, kv ...any)  { a.l.Warn(msg, kv...) }
