// Package plume is the shared vocabulary of Plume, the roadside emissions
// enforcement system: analyser readings, passes, plates, smoke grades, limit
// profiles, verdicts, evidence manifests, records and identifiers.
//
// Both the edge agent and the central service speak these types. The package
// uses the standard library only; adapters (spool, uplink, store, blob, ...)
// live in edge/ and central/ and meet each other through these types.
//
// # Sections
//
//   - ids.go: station, pass, evidence and case identifiers.
//   - reading.go: what a remote-sensing analyser measures for one vehicle,
//     plus device status and calibration/audit records.
//   - profile.go: limit profiles (data in firmware-config/profiles).
//   - verdict.go: VSP, validity windows and the explained verdict.
//   - evidence.go: the signed evidence manifest and media references.
//   - record.go: the compact records every pass produces.
//   - pass.go: a pass (reading + plate + smoke + verdict), plates, smoke.
//   - plate.go: the GA 36 plate grammar.
//   - enrollment.go: the file central hands an enrolled station.
//   - auth.go: per-request station signatures (edge signs, central verifies).
//   - errors.go: coded errors shared by APIs.
package plume
