// Package policetest is a traffic-police receiver that follows
// central/export/POLICE-CONTRACT.md, for tests: it checks signatures and
// packages, deduplicates by idempotency key, issues receipts, and sends
// signed disposition callbacks. The real police system is one we cannot
// run; this is the contract in executable form.
package policetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/plume-emissions/plume/central/export"
)

// Case is one case the receiver accepted.
type Case struct {
	Key     string
	Record  export.Record
	Package []byte
	Receipt export.Receipt
}

// Receiver is the fake police system.
type Receiver struct {
	Secret []byte
	Now    func() time.Time
	// BeforeAnswer, if set, runs after a new case is stored and before the
	// answer is written (a test can block here and kill central).
	BeforeAnswer func(number string)
	// FailNext answers the next n pushes with 503.
	FailNext int
	// Refuse answers every push with 422 while true.
	Refuse bool

	mu         sync.Mutex
	cases      map[string]*Case // by idempotency key
	order      []string
	deliveries int
}

// New returns a receiver with the shared secret.
func New(secret []byte) *Receiver {
	return &Receiver{Secret: secret, Now: time.Now, cases: map[string]*Case{}}
}

// Cases returns the accepted cases in order.
func (r *Receiver) Cases() []*Case {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Case, 0, len(r.order))
	for _, k := range r.order {
		out = append(out, r.cases[k])
	}
	return out
}

// Deliveries counts push requests that passed authentication, resends
// included.
func (r *Receiver) Deliveries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deliveries
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// ServeHTTP implements the push endpoint.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	number, ok := strings.CutPrefix(req.URL.Path, "/plume/v1/cases/")
	if req.Method != http.MethodPut || !ok || number == "" {
		fail(w, http.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 256<<20))
	if err != nil {
		fail(w, http.StatusBadRequest, "invalid", "read body")
		return
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	if digest != req.Header.Get(export.HeaderContentSHA256) {
		fail(w, http.StatusUnauthorized, "unauthorized", "body does not match its digest")
		return
	}
	if err := export.Verify(r.Secret, req.Method, req.URL.EscapedPath(), req.Header.Get(export.HeaderDate), digest, req.Header.Get(export.HeaderAuthorization), r.Now()); err != nil {
		fail(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	r.mu.Lock()
	r.deliveries++
	if r.FailNext > 0 {
		r.FailNext--
		r.mu.Unlock()
		w.Header().Set("Retry-After", "0")
		fail(w, http.StatusServiceUnavailable, "unavailable", "try later")
		return
	}
	refuse := r.Refuse
	r.mu.Unlock()
	if refuse {
		fail(w, http.StatusUnprocessableEntity, "invalid", "refused by test")
		return
	}
	key := req.Header.Get(export.HeaderIdempotency)
	if key == "" {
		fail(w, http.StatusBadRequest, "invalid", "Idempotency-Key is required")
		return
	}
	rec, pkg, err := parse(req.Header.Get("Content-Type"), body)
	if err != nil {
		fail(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if rec.Schema != export.RecordSchema || rec.CaseNumber != number {
		fail(w, http.StatusBadRequest, "invalid", "record schema or case number wrong")
		return
	}
	ps := sha256.Sum256(pkg)
	if hex.EncodeToString(ps[:]) != rec.Package.SHA256 || int64(len(pkg)) != rec.Package.Size {
		fail(w, http.StatusUnprocessableEntity, "invalid", "package does not match the record")
		return
	}
	r.mu.Lock()
	if c, ok := r.cases[key]; ok {
		r.mu.Unlock()
		if c.Record.CaseNumber != number {
			fail(w, http.StatusConflict, "conflict", "idempotency key used for another case")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		json.NewEncoder(w).Encode(c.Receipt)
		return
	}
	c := &Case{Key: key, Record: *rec, Package: pkg, Receipt: export.Receipt{ID: fmt.Sprintf("TP-%06d", len(r.order)+1), ReceivedAt: r.Now().UTC()}}
	r.cases[key] = c
	r.order = append(r.order, key)
	hook := r.BeforeAnswer
	r.mu.Unlock()
	if hook != nil {
		hook(number)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(c.Receipt)
}

func parse(ctype string, body []byte) (*export.Record, []byte, error) {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil || mt != "multipart/form-data" {
		return nil, nil, fmt.Errorf("want multipart/form-data")
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var rec export.Record
	var pkg []byte
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case i == 0 && p.FormName() == "record":
			if err := json.Unmarshal(b, &rec); err != nil {
				return nil, nil, fmt.Errorf("record: %v", err)
			}
		case i == 1 && p.FormName() == "package":
			pkg = b
		default:
			return nil, nil, fmt.Errorf("unexpected part %q", p.FormName())
		}
	}
	if pkg == nil {
		return nil, nil, fmt.Errorf("package part missing")
	}
	return &rec, pkg, nil
}

// Disposition is the callback body.
type Disposition struct {
	CaseNumber string    `json:"case_number"`
	Receipt    string    `json:"receipt"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	Reference  string    `json:"reference,omitempty"`
	DecidedAt  time.Time `json:"decided_at"`
}

// Dispose sends a signed disposition to callbackURL and returns the status
// and body of the answer.
func (r *Receiver) Dispose(ctx context.Context, callbackURL string, d Disposition) (int, []byte, error) {
	body, err := json.Marshal(d)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callbackURL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	date := r.Now().UTC().Format(time.RFC3339)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(export.HeaderDate, date)
	req.Header.Set(export.HeaderContentSHA256, digest)
	req.Header.Set(export.HeaderAuthorization, export.Sign(r.Secret, http.MethodPost, req.URL.EscapedPath(), date, digest))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}
