package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
)

// Revocation: an administrator disables or re-enables an officer, resets a
// password (which ends the officer's sessions and tokens), and lists and
// revokes API tokens; an officer revokes its own tokens. Every change is
// one audited store update. by is nil for central itself (the command
// line on a stopped central), which may change anyone.

// Officer changes.
const (
	ActionDisable      = "disable"      // the officer can no longer sign in; sessions and tokens stop working
	ActionEnable       = "enable"       // undo disable
	ActionRevokeAll    = "revoke-all"   // end every session and token the officer has now
	ActionSetPassword  = "set-password" // a new password; every session and token ends
	ActionRevokeToken  = "revoke-token" // one API token, by its ID
	actorCommandLine   = "plume-central officer"
	tokenIDPrefix      = "tok_"
	maxRevokedTokenIDs = 1000
)

// ChangeOfficer applies one change (the Action constants) to username on
// behalf of by. arg is the new password for ActionSetPassword and the
// token ID for ActionRevokeToken.
func (m *Manager) ChangeOfficer(ctx context.Context, by *central.Officer, username, action, arg, ip string) (*central.Officer, error) {
	return ChangeOfficer(ctx, m.cfg.Store, by, username, action, arg, ip, m.cfg.Now())
}

// ChangeOfficer is Manager.ChangeOfficer on a store (plume-central
// officer, on a stopped central).
func ChangeOfficer(ctx context.Context, st central.OfficerStore, by *central.Officer, username, action, arg, ip string, now time.Time) (*central.Officer, error) {
	username = strings.ToLower(strings.TrimSpace(username))
	var hash string
	switch action {
	case ActionDisable, ActionEnable, ActionRevokeAll:
	case ActionSetPassword:
		if err := ValidatePassword(arg); err != nil {
			return nil, err
		}
		h, err := HashPassword(arg)
		if err != nil {
			return nil, err
		}
		hash = h
	case ActionRevokeToken:
		if !strings.HasPrefix(arg, tokenIDPrefix) || len(arg) > 64 {
			return nil, plume.Errorf(plume.EINVALID, "a token ID looks like tok_0123456789abcdef")
		}
	default:
		return nil, plume.Errorf(plume.EINVALID, "unknown change %q", action)
	}
	actor, role := actorCommandLine, central.Role("")
	if by != nil {
		actor, role = by.Username, by.Role
	}
	o, err := st.UpdateOfficer(ctx, username, func(o *central.Officer) (*central.AuditEvent, error) {
		self := by != nil && by.Username == o.Username
		switch {
		case by == nil:
		case self && (action == ActionRevokeAll || action == ActionRevokeToken):
			// Anyone may revoke their own tokens and sessions.
		case !by.Can(central.PermAdmin) || !by.Covers(o):
			return nil, plume.Errorf(plume.EFORBIDDEN, "only an administrator whose stations cover %s's may change it", o.Username)
		case self && action == ActionDisable:
			return nil, plume.Errorf(plume.EINVALID, "you cannot disable yourself")
		}
		ev := &central.AuditEvent{Time: now, Actor: actor, Role: role, IP: ip, Action: "officer." + action, Target: o.Username}
		switch action {
		case ActionDisable:
			o.Disabled = true
		case ActionEnable:
			o.Disabled = false
		case ActionRevokeAll:
			o.SessionsNotBefore = now.UTC()
		case ActionSetPassword:
			o.PasswordHash, o.SessionsNotBefore = hash, now.UTC()
		case ActionRevokeToken:
			if !slices.Contains(o.RevokedTokens, arg) {
				if len(o.RevokedTokens) >= maxRevokedTokenIDs {
					return nil, plume.Errorf(plume.ECONFLICT, "too many revoked tokens listed; revoke all instead")
				}
				o.RevokedTokens = append(o.RevokedTokens, arg)
			}
			ev.Token = arg
		}
		return ev, nil
	})
	if errors.Is(err, central.ErrNotFound) {
		return nil, plume.Errorf(plume.ENOTFOUND, "no officer %s", username)
	} else if err != nil {
		return nil, fmt.Errorf("%s officer %s: %w", action, username, err)
	}
	return o, nil
}

// TokenInfo is one API token issued to an officer, as the audit log
// recorded its issue (the token itself is never stored).
type TokenInfo struct {
	ID       string
	Label    string
	IssuedBy string
	IssuedAt time.Time
	Revoked  bool // revoked by ID, or issued before SessionsNotBefore
}

// Tokens lists the API tokens issued to o, newest first, from the audit
// log (at most the last 200 issues).
func (m *Manager) Tokens(ctx context.Context, o *central.Officer) ([]TokenInfo, error) {
	evs, _, err := m.cfg.Store.Audit(ctx, central.AuditFilter{Action: "token.issue", Target: o.Username, Limit: 200})
	if err != nil {
		return nil, fmt.Errorf("list tokens of %s: %w", o.Username, err)
	}
	var out []TokenInfo
	for _, e := range evs {
		if e.Token == "" {
			continue // issued before token IDs were recorded
		}
		out = append(out, TokenInfo{ID: e.Token, Label: e.Detail, IssuedBy: e.Actor, IssuedAt: e.Time,
			Revoked: slices.Contains(o.RevokedTokens, e.Token) || e.Time.Before(o.SessionsNotBefore)})
	}
	return out, nil
}
