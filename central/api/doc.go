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
//	GET /api/v1/cases?station=&status=&limit=&cursor=
//	GET /api/v1/cases/{id}
//	GET /api/v1/cases/{id}/package                    the zip; 404 until built
//	GET /healthz
//	GET /metrics                                      Prometheus
//
// Lists are newest first; pass the response's next_cursor as cursor for the
// next page. The read API is open for now: officer accounts and their
// authorisation come in a later issue, and until then central must only
// listen where officers' networks can reach it.
//
// # Errors
//
// Every error is {"error": {"code": …, "message": …}}, with the status
// mapped from the plume error code in one place (writeError). Internal
// errors are logged and answered with a generic message.
package api
