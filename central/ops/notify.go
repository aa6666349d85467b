package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/smtp"
	"strings"
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

// Notifiers delivers to each notifier in turn and joins their errors.
type Notifiers []Notifier

// Notify implements Notifier.
func (ns Notifiers) Notify(ctx context.Context, a *central.Alert) error {
	var errs []error
	for _, n := range ns {
		if err := n.Notify(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
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
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(e.Relay, nil, e.From, e.To, []byte(b.String())) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("email via %s: %w", e.Relay, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("email via %s: %w", e.Relay, ctx.Err())
	}
}
