package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/plume-emissions/plume/central"
)

// Notifier delivers a new alert outside central. The officers' web app
// always lists alerts (with a badge for open ones); notifiers add webhook
// and e-mail delivery.
type Notifier interface {
	Notify(ctx context.Context, a *central.Alert) error
}

// DeliveryTimeout bounds one delivery of one alert by one notifier (the
// webhook's retries included), so a stuck mail relay or endpoint holds up
// nothing else.
const DeliveryTimeout = 60 * time.Second

// Notifiers delivers to every notifier at once, each with its own deadline
// (DeliveryTimeout), and joins their errors: a slow or stuck notifier
// never delays the others.
type Notifiers []Notifier

// Notify implements Notifier.
func (ns Notifiers) Notify(ctx context.Context, a *central.Alert) error {
	errs := make([]error, len(ns))
	var wg sync.WaitGroup
	for i, n := range ns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, DeliveryTimeout)
			defer cancel()
			errs[i] = n.Notify(ctx, a)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WebhookPayload is the JSON body a webhook receives.
type WebhookPayload struct {
	Event string         `json:"event"` // "alert.raised"
	Alert *central.Alert `json:"alert"`
	URL   string         `json:"url,omitempty"` // the alert's page at central
}

// Webhook POSTs each alert as JSON, retried with backoff
// (go-retryablehttp) on transport errors and 5xx.
type Webhook struct {
	URL     string
	BaseURL string // central's public URL, for links; may be empty
	client  *retryablehttp.Client
}

// NewWebhook returns a webhook notifier.
func NewWebhook(url, baseURL string, logger *slog.Logger) *Webhook {
	c := retryablehttp.NewClient()
	c.Logger = nil
	if logger != nil {
		// *slog.Logger has the leveled methods retryablehttp logs through.
		c.Logger = logger.With("component", "webhook")
	}
	c.RetryMax = 4
	c.RetryWaitMin, c.RetryWaitMax = 200*time.Millisecond, 10*time.Second
	c.HTTPClient.Timeout = 15 * time.Second
	return &Webhook{URL: url, BaseURL: strings.TrimRight(baseURL, "/"), client: c}
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, a *central.Alert) error {
	p := WebhookPayload{Event: "alert.raised", Alert: a}
	if w.BaseURL != "" {
		p.URL = w.BaseURL + "/alerts/" + a.ID
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: %s", w.URL, resp.Status)
	}
	return nil
}

// Email sends each alert as a plain-text message through an SMTP relay
// (net/smtp; no authentication, for a relay on the bureau's network).
type Email struct {
	Relay   string // host:port
	From    string
	To      []string
	BaseURL string
	// Timeout bounds the whole exchange with the relay: connecting,
	// greeting and sending (0 means 30 s).
	Timeout time.Duration
}

// Notify implements Notifier.
func (e *Email) Notify(ctx context.Context, a *central.Alert) error {
	if len(e.To) == 0 {
		return nil
	}
	var b strings.Builder
	subject := fmt.Sprintf("[Plume %s] %s", a.Severity, a.Title)
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		e.From, strings.Join(e.To, ", "), mime.BEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "%s\r\n\r\nStation: %s\r\nRaised: %s\r\nSource: %s %s\r\n", a.Explanation, a.Station, a.Raised.UTC().Format(time.RFC3339), a.Source, a.Rule)
	if e.BaseURL != "" {
		fmt.Fprintf(&b, "\r\n%s/alerts/%s\r\n", strings.TrimRight(e.BaseURL, "/"), a.ID)
	}
	if err := e.send(ctx, []byte(b.String())); err != nil {
		return fmt.Errorf("email via %s: %w", e.Relay, err)
	}
	return nil
}

// send delivers msg through the relay with one deadline on the connection,
// so a relay that accepts and never answers costs Timeout, not forever.
func (e *Email) send(ctx context.Context, msg []byte) error {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.Relay)
	if err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) }) // cancelled early
	defer stop()
	host, _, _ := net.SplitHostPort(e.Relay)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Mail(e.From); err != nil {
		return err
	}
	for _, to := range e.To {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
