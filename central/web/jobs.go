package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/packer"
)

// failedJob is a job whose worker gave up (central.Job.Failed), with its
// case's number, for the administrator's page.
type failedJob struct {
	central.Job
	Number string
}

// failedJobs returns the failed jobs of the cases o sees.
func (h *Handler) failedJobs(ctx context.Context, o *central.Officer) ([]failedJob, error) {
	jobs, err := h.cfg.Store.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	var out []failedJob
	for _, j := range jobs {
		if !j.Failed() {
			continue
		}
		c, err := h.cfg.Store.Case(ctx, j.CaseID)
		if err != nil || !o.Sees(c.Station) {
			continue
		}
		out = append(out, failedJob{Job: j, Number: c.Number})
	}
	return out, nil
}

// retryJob puts a failed job back in the queue (administrators), audited.
func (h *Handler) retryJob(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		h.fail(w, r, p, plume.Errorf(plume.ENOTFOUND, "no such job"))
		return
	}
	failed, err := h.failedJobs(r.Context(), p.Officer)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	for _, j := range failed {
		if j.ID != id {
			continue
		}
		nj, err := packer.RetryFailed(r.Context(), h.cfg.Store, id, h.cfg.Now())
		if err != nil {
			h.fail(w, r, p, err)
			return
		}
		h.audit1(r.Context(), central.AuditEvent{Time: h.cfg.Now(), Actor: p.Officer.Username, Role: p.Officer.Role, IP: auth.ClientIP(r),
			Action: "job.retry", Target: string(j.CaseID), Before: j.LastError, After: fmt.Sprintf("job %d", nj.ID)})
		if h.cfg.OnJobs != nil {
			h.cfg.OnJobs()
		}
		http.Redirect(w, r, "/admin/officers?flash="+url.QueryEscape("已重试 Retrying "+j.Number), http.StatusSeeOther)
		return
	}
	h.fail(w, r, p, plume.Errorf(plume.ENOTFOUND, "no such failed job"))
}

// officerTokens is one token row of the administrator's page.
type officerTokens struct {
	Officer string
	auth.TokenInfo
}

// tokensOf lists the API tokens of the officers o may administer.
func (h *Handler) tokensOf(ctx context.Context, o *central.Officer, officers []*central.Officer) ([]officerTokens, error) {
	var out []officerTokens
	for _, of := range officers {
		if !o.Covers(of) {
			continue
		}
		ts, err := h.cfg.Auth.Tokens(ctx, of)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			out = append(out, officerTokens{Officer: of.Username, TokenInfo: t})
		}
	}
	return out, nil
}

// changeOfficer disables or enables an officer, sets its password, or
// revokes its sessions and tokens (administrators; audited by auth).
func (h *Handler) changeOfficer(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	action := r.PostFormValue("action")
	arg := r.PostFormValue("token")
	if action == auth.ActionSetPassword {
		arg = r.PostFormValue("password")
	}
	o, err := h.cfg.Auth.ChangeOfficer(r.Context(), p.Officer, r.PathValue("username"), action, arg, auth.ClientIP(r))
	if err != nil {
		if plume.ErrorCode(err) == plume.EINVALID {
			h.officersPage(w, r, p, "", plume.ErrorMessage(err))
			return
		}
		h.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/admin/officers?flash="+url.QueryEscape(o.Username+": "+action), http.StatusSeeOther)
}
