package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/plume-emissions/plume"
)

// HealthReply is central's answer to a heartbeat (PROTOCOL.md).
type HealthReply struct {
	State      string   `json:"state"`
	Reasons    []string `json:"reasons,omitempty"`
	ConfigHash string   `json:"config_hash,omitempty"` // the desired configuration's hash, "" for none
	IntervalMS int64    `json:"interval_ms"`
}

// RemoteConfig is a station's desired configuration as central holds it.
type RemoteConfig struct {
	Version int    `json:"version"`
	Hash    string `json:"hash"`
	Body    []byte `json:"body"`
}

// PutHealth sends one heartbeat, once (the next heartbeat is the retry).
// Its round trip also measures the clock offset.
func (u *Uplink) PutHealth(ctx context.Context, hb *plume.Heartbeat) (*HealthReply, error) {
	body, err := json.Marshal(hb)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	var reply HealthReply
	if err := u.once(ctx, http.MethodPut, u.path("health", strconv.FormatUint(hb.Seq, 10)), body, &reply); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return &reply, nil
}

// GetConfig fetches the station's desired configuration; a plume
// ENOTFOUND error means central holds none.
func (u *Uplink) GetConfig(ctx context.Context) (*RemoteConfig, error) {
	var rc RemoteConfig
	if err := u.once(ctx, http.MethodGet, u.path("config"), nil, &rc); err != nil {
		return nil, fmt.Errorf("fetch configuration: %w", err)
	}
	return &rc, nil
}

// once sends one signed request without retries and decodes a 2xx JSON
// answer into out; an error answer becomes a *plume.Error with central's
// code and message.
func (u *Uplink) once(ctx context.Context, method, path string, body []byte, out any) error {
	ref := *u.base
	ref.Path, ref.RawPath = "", ""
	req, err := http.NewRequestWithContext(ctx, method, ref.String()+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(plume.HeaderContentSHA256, plume.ContentSHA256(body))
	if err := u.sign(req); err != nil {
		return err
	}
	resp, err := u.client.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var ae apiError
		_ = json.Unmarshal(raw, &ae)
		if ae.Error.Code == "" {
			ae.Error.Code, ae.Error.Message = plume.EUNAVAILABLE, resp.Status
		}
		return &plume.Error{Code: ae.Error.Code, Message: ae.Error.Message}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
