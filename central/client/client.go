// Package client reads central's JSON API as a signed-in officer, with an
// API bearer token: the passes and cases central holds, and a case's
// evidence package, which it verifies offline against central's pinned
// key. The demo and the end-to-end tests use it; it writes nothing.
package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/evidence"
)

// maxBody is the most a single answer may hold (an evidence package with
// its clip).
const maxBody = 64 << 20

// Client reads one central.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the central at baseURL ("http://host:port")
// that sends token (issued by central to an officer) with every request.
// A nil hc means http.DefaultClient.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: hc}
}

// Get reads a path of central's ("/api/v1/…") or a full URL on it and
// returns the body of a 200 answer.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = c.base + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, nil
}

// Passes lists every pass central holds.
func (c *Client) Passes(ctx context.Context) ([]central.PassRow, error) {
	var all []central.PassRow
	err := c.pages(ctx, "/api/v1/passes", func(b []byte) (string, error) {
		var page struct {
			Passes []central.PassRow `json:"passes"`
			Next   string            `json:"next_cursor"`
		}
		err := json.Unmarshal(b, &page)
		all = append(all, page.Passes...)
		return page.Next, err
	})
	return all, err
}

// Cases lists every case central holds.
func (c *Client) Cases(ctx context.Context) ([]central.Case, error) {
	var all []central.Case
	err := c.pages(ctx, "/api/v1/cases", func(b []byte) (string, error) {
		var page struct {
			Cases []central.Case `json:"cases"`
			Next  string         `json:"next_cursor"`
		}
		err := json.Unmarshal(b, &page)
		all = append(all, page.Cases...)
		return page.Next, err
	})
	return all, err
}

func (c *Client) pages(ctx context.Context, path string, each func([]byte) (string, error)) error {
	cursor := ""
	for {
		q := url.Values{"limit": {"500"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		b, err := c.Get(ctx, path+"?"+q.Encode())
		if err != nil {
			return err
		}
		if cursor, err = each(b); err != nil {
			return fmt.Errorf("decode %s: %w", path, err)
		}
		if cursor == "" {
			return nil
		}
	}
}

// DownloadPackage fetches a case's evidence package into dir as
// NUMBER.zip and verifies it offline against central's public key. It
// returns the file's path and the verification report.
func (c *Client) DownloadPackage(ctx context.Context, k central.Case, dir string, centralKey []byte) (string, *evidence.Report, error) {
	b, err := c.Get(ctx, "/api/v1/cases/"+url.PathEscape(string(k.ID))+"/package")
	if err != nil {
		return "", nil, err
	}
	p := filepath.Join(dir, k.Number+".zip")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	rep, err := evidence.Verify(f, int64(len(b)), evidence.VerifyOptions{CentralKey: centralKey})
	if err != nil {
		return p, rep, fmt.Errorf("verify %s: %w", p, err)
	}
	return p, rep, nil
}
