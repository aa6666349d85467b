package central

import (
	"context"
	"slices"
	"time"

	"github.com/plume-emissions/plume"
)

// Role is what an officer may do. Roles do not nest, except that a
// supervisor can do everything a reviewer can.
type Role string

// Officer roles.
const (
	RoleReviewer   Role = "reviewer"      // reviews cases: corrects plates, approves, rejects
	RoleSupervisor Role = "supervisor"    // a reviewer who also confirms second reviews and retries exports
	RoleAdmin      Role = "administrator" // manages officers; sees everything, decides nothing
	RoleAuditor    Role = "auditor"       // reads cases and the audit log; changes nothing
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleReviewer, RoleSupervisor, RoleAdmin, RoleAuditor:
		return true
	}
	return false
}

// Label returns the role's bilingual label.
func (r Role) Label() string {
	switch r {
	case RoleReviewer:
		return "审核员 Reviewer"
	case RoleSupervisor:
		return "复核主管 Supervisor"
	case RoleAdmin:
		return "管理员 Administrator"
	case RoleAuditor:
		return "审计员 Auditor"
	}
	return string(r)
}

// Officer is a person who signs in to central. PasswordHash is a PHC
// string (argon2id); it never leaves the store through any API.
type Officer struct {
	Username     string            `json:"username"` // the ID: [a-z0-9._-]{2,32}
	Name         string            `json:"name"`
	Role         Role              `json:"role"`
	Stations     []plume.StationID `json:"stations,omitempty"` // empty: every station
	PasswordHash string            `json:"password_hash"`
	Disabled     bool              `json:"disabled,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	CreatedBy    string            `json:"created_by,omitempty"`
	// SessionsNotBefore ends every session and API token of the officer
	// created before it (a password reset, or "revoke all").
	SessionsNotBefore time.Time `json:"sessions_not_before,omitzero"`
	// RevokedTokens lists the IDs (Session.TokenID) of revoked API tokens.
	RevokedTokens []string `json:"revoked_tokens,omitempty"`
}

// Admits reports whether a session of the officer is still good: the
// officer is enabled, the session is not older than SessionsNotBefore, and
// a token session is not revoked.
func (o *Officer) Admits(s *Session) bool {
	if o == nil || o.Disabled || s.CreatedAt.Before(o.SessionsNotBefore) {
		return false
	}
	return s.Kind != SessionToken || !slices.Contains(o.RevokedTokens, s.TokenID())
}

// Sees reports whether the officer may see the station's cases, passes and
// media. This is the one place station scoping is decided: the web pages
// and the JSON API both call it (directly or through ScopeCases).
func (o *Officer) Sees(station plume.StationID) bool {
	if o == nil || o.Disabled {
		return false
	}
	return len(o.Stations) == 0 || slices.Contains(o.Stations, station)
}

// Covers reports whether every station other may see, o sees too: an
// officer limited to some stations can grant no more than those ("no
// officer can grant more than it has").
func (o *Officer) Covers(other *Officer) bool {
	if o == nil || o.Disabled {
		return false
	}
	if len(o.Stations) == 0 {
		return true
	}
	if len(other.Stations) == 0 {
		return false
	}
	for _, s := range other.Stations {
		if !slices.Contains(o.Stations, s) {
			return false
		}
	}
	return true
}

// Decides reports whether the officer may change a case's outcome or its
// export (review, second review, retry an export) or administer central.
// An officer that does not is fit to be a service account.
func (o *Officer) Decides() bool {
	return o.Can(PermReview) || o.Can(PermSecondReview) || o.Can(PermRetryExport) || o.Can(PermAdmin)
}

// Scope returns the stations a list filtered on station (empty: any) may
// show this officer: nil for no limit, the officer's stations, or a
// station list that matches nothing when station is out of scope.
func (o *Officer) Scope(station plume.StationID) []plume.StationID {
	switch {
	case o == nil || len(o.Stations) == 0:
		return nil
	case station == "":
		return slices.Clone(o.Stations)
	case !o.Sees(station):
		return []plume.StationID{"\x00none"}
	}
	return nil // the filter's own station, which the officer sees
}

// ScopeCases narrows a case filter to the officer's stations. A filter
// asking for a station the officer may not see matches nothing.
func (o *Officer) ScopeCases(f *CaseFilter) { f.Stations = o.Scope(f.Station) }

// Permission is one thing an officer may do.
type Permission string

// Permissions.
const (
	PermReview       Permission = "review"        // correct plates, approve, reject
	PermSecondReview Permission = "second-review" // confirm or return a first approval
	PermRetryExport  Permission = "retry-export"
	PermAdmin        Permission = "admin"      // manage officers and tokens
	PermAudit        Permission = "audit"      // browse and export the audit log
	PermDashboard    Permission = "dashboard"  // see statistics
	PermReadCases    Permission = "read-cases" // see cases in scope
)

var rolePerms = map[Role][]Permission{
	RoleReviewer:   {PermReview, PermDashboard, PermReadCases},
	RoleSupervisor: {PermReview, PermSecondReview, PermRetryExport, PermDashboard, PermReadCases},
	RoleAdmin:      {PermAdmin, PermRetryExport, PermDashboard, PermReadCases, PermAudit},
	RoleAuditor:    {PermAudit, PermDashboard, PermReadCases},
}

// Can reports whether the officer holds permission p.
func (o *Officer) Can(p Permission) bool {
	if o == nil || o.Disabled {
		return false
	}
	return slices.Contains(rolePerms[o.Role], p)
}

// SessionKind says how a session authenticates.
type SessionKind string

// Session kinds.
const (
	SessionBrowser SessionKind = "browser" // a cookie, with a CSRF token
	SessionToken   SessionKind = "token"   // an API bearer token
)

// Session is a signed-in officer. The store keys it by the SHA-256 of the
// secret the client holds, so a copy of the database does not let anyone
// sign in.
type Session struct {
	Hash      string      `json:"hash"` // hex SHA-256 of the cookie or token
	Kind      SessionKind `json:"kind"`
	Officer   string      `json:"officer"`
	CSRF      string      `json:"csrf,omitempty"`
	Label     string      `json:"label,omitempty"` // tokens: what it is for
	CreatedAt time.Time   `json:"created_at"`
	ExpiresAt time.Time   `json:"expires_at"`
	IP        string      `json:"ip,omitempty"`
}

// TokenID names an API token in the audit log without revealing it: "tok_"
// and the first 16 hex digits of the hash the store keys it by. It is ""
// for a browser session.
func (s *Session) TokenID() string {
	if s == nil || s.Kind != SessionToken || len(s.Hash) < 16 {
		return ""
	}
	return "tok_" + s.Hash[:16]
}

// AuditEvent is one entry of the append-only audit log: who did what,
// when, from where, and the state before and after. Entries are hash
// chained like custody entries, so an edit or removal shows.
type AuditEvent struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Actor   string          `json:"actor"` // officer username, "central", "police", "station:<id>"
	Role    Role            `json:"role,omitempty"`
	IP      string          `json:"ip,omitempty"`
	Action  string          `json:"action"`           // e.g. "case.approve", "officer.create", "login.fail"
	Target  string          `json:"target,omitempty"` // e.g. case ID, username
	Station plume.StationID `json:"station,omitempty"`
	Before  string          `json:"before,omitempty"` // compact JSON or text
	After   string          `json:"after,omitempty"`
	Detail  string          `json:"detail,omitempty"`
	// Token is the ID (Session.TokenID) of the API token the action was
	// made with; empty for a browser session or central itself.
	Token      string `json:"token,omitempty"`
	PrevSHA256 string `json:"prev_sha256"`
}

// AuditFilter selects audit events, newest first.
type AuditFilter struct {
	Actor  string
	Action string // prefix match, e.g. "case."
	Target string
	From   time.Time
	To     time.Time
	Limit  int
	Cursor string
}

// Match reports whether e matches the filter (other than paging).
func (f *AuditFilter) Match(e *AuditEvent) bool {
	switch {
	case f.Actor != "" && e.Actor != f.Actor:
	case f.Action != "" && !hasPrefix(e.Action, f.Action):
	case f.Target != "" && e.Target != f.Target:
	case !f.From.IsZero() && e.Time.Before(f.From):
	case !f.To.IsZero() && !e.Time.Before(f.To):
	default:
		return true
	}
	return false
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// OfficerStore is the part of Store that holds accounts, sessions and the
// audit log.
type OfficerStore interface {
	// PutOfficer creates an officer; ErrConflict if the username is taken.
	PutOfficer(ctx context.Context, o *Officer) error
	// Officer returns one officer, or ErrNotFound.
	Officer(ctx context.Context, username string) (*Officer, error)
	// Officers returns every officer, ordered by username.
	Officers(ctx context.Context) ([]*Officer, error)
	// UpdateOfficer changes an officer atomically with fn and appends the
	// audit event fn returns (if any). ErrNotFound if there is none.
	UpdateOfficer(ctx context.Context, username string, fn func(o *Officer) (*AuditEvent, error)) (*Officer, error)

	// PutSession stores a session.
	PutSession(ctx context.Context, s *Session) error
	// Session returns a session by hash, or ErrNotFound.
	Session(ctx context.Context, hash string) (*Session, error)
	// DeleteSession removes a session; removing one that is gone is not an
	// error.
	DeleteSession(ctx context.Context, hash string) error

	// AppendAudit chains e after the last audit event and returns it as
	// stored (with Seq and PrevSHA256 set).
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// Audit lists audit events newest first and the cursor of the next
	// page.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, string, error)
}
