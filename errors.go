package plume

import (
	"errors"
	"fmt"
)

// Error codes. Central maps them to HTTP statuses in one place; clients map
// them back.
const (
	ECONFLICT     = "conflict"      // the request conflicts with stored state
	EINTERNAL     = "internal"      // an internal error; never shown raw
	EINVALID      = "invalid"       // the input is malformed or fails validation
	ENOTFOUND     = "not_found"     // the entity does not exist
	EUNAUTHORIZED = "unauthorized"  // the caller is not authenticated
	EFORBIDDEN    = "forbidden"     // the caller may not do this
	ETOOLARGE     = "too_large"     // the body exceeds a limit
	EUNAVAILABLE  = "unavailable"   // try again later (disk full, shutting down)
	EMISSINGMEDIA = "missing_media" // a manifest references media central lacks
)

// Error is an application error with a machine-readable code and a message
// that is safe to show to a client.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("plume error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err. Errors without a code
// get a generic message so internal details never leak.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
