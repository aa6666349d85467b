// Package api is central's HTTP API: the station ingest protocol
// (PROTOCOL.md in this directory), a JSON read API, health and metrics.
//
// # Station ingest
//
// Every /api/v1/stations/{station}/… write is signed by the station
// (plume.VerifyRequest): unknown or revoked station, bad signature, a
// Plume-Date outside the allowed skew, or a body that does not match
// Plume-Content-SHA256 get 401; a station naming another station in the
// path gets 403.
//
//	PUT /api/v1/stations/{station}/blobs/{sha256}     media, streamed and verified
//	PUT /api/v1/stations/{station}/evidence/{id}      signed manifest; may open a case
//	PUT /api/v1/stations/{station}/records/{batch}    compact records
//
// # Read API
//
//	GET /api/v1/stations
//	GET /api/v1/stations/{id}
//	GET /api/v1/passes?station=&outcome=&limit=&cursor=
//	GET /api/v1/cases?station=&status=&kind=&plate=&sort=&limit=&cursor=
//	    sort: newest (default), oldest, or captured|station|plate|kind|grade|status,
//	    "-" first for descending; ties by case ID; next_cursor keeps the order
//	GET /api/v1/cases/{id}
//	GET /api/v1/cases/{id}/package                    the zip; 404 until built
//	GET /healthz
//	GET /metrics                                      Prometheus (an officer with the dashboard permission: session or token)
//
// Lists are newest first; pass the response's next_cursor as cursor for the
// next page.
//
// # Officers
//
// The read API and the review actions need a signed-in officer: the web
// app's session cookie, or "Authorization: Bearer <token>" with a token an
// administrator issued. An officer limited to some stations sees only
// their cases, passes and packages (central.Officer.Sees, the one place
// scoping is decided); another station's case answers 404, exactly like a
// missing one. No read is anonymous: not on loopback, not before the first
// officer exists (tools such as the demo sign in with a token).
//
//	POST /api/v1/cases/{id}/{approve|reject|plate|confirm|return|retry-export}
//	     JSON {"comment", "reason", "plate", "colour"}; browser sessions send X-CSRF-Token
//
// # Police
//
//	POST /api/v1/police/dispositions   HMAC-signed (central/export/POLICE-CONTRACT.md)
//
// # Errors
//
// Every error is {"error": {"code": …, "message": …}}, with the status
// mapped from the plume error code in one place (writeError). Internal
// errors are logged and answered with a generic message.
package api
