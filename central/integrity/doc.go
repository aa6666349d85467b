// Package integrity runs data-integrity rules over each station's pass and
// analyser records at central: the "three-value" analysis (三值分析法) of
// missing, repeated and abnormal values that finds stations faking their
// monitoring data, plus limit-hugging (贴限), camera-count and replay
// checks. The rules are data (firmware-config/integrity/rules.yaml),
// versioned as a set and one by one.
//
// # Rules
//
// A RuleSet names each rule's detector kind, version, severity and
// parameters; ParseRules rejects unknown fields, parameters included. The
// kinds are:
//
//   - missing_passes: runs of hours far below the station's learned
//     traffic per hour of the week (hour of the day in the first week);
//     deficits are summed over the run, so quiet nights do not alarm but a
//     silent night does.
//   - missing_status: analyser status (heartbeat) records stop while
//     passes keep coming.
//   - duplicate_records: a pass repeats every measured value of another
//     under a new ID, or one pass ID comes back with different content.
//   - constant_value: a gas or opacity identical (or within a tolerance)
//     over N consecutive vehicles (恒值).
//   - identical_signature: the same CO2/CO/HC/NO/opacity vector on
//     different vehicles: one plume copied onto others.
//   - replay: a sequence of passes matching, in order, a sequence sent at
//     least min_lag earlier: old data replayed with new times.
//   - impossible_value: CO2 outside combustion, NO without CO2, carbon
//     balance, opacity over 100 %, impossible acceleration or power,
//     Ringelmann against opacity.
//   - sudden_jump: the hourly median of a gas per fuel jumps against the
//     trailing day by more than sampling noise and min_change (突升突降).
//   - ratio_anomaly: CO/CO2, NO/CO2 or HC/CO2 beyond combustion.
//   - limit_hugging: per limit (from the verdicts' checks, so per
//     profile), a binomial test of the share of readings in [0.9·L, L)
//     against its neighbouring bands (贴限).
//   - camera_counts: analyser passes against camera vehicle counts.
//
// # Evaluation
//
// An Engine holds a rule set and no station state. Engine.Stream returns a
// Stream for one station: feed it records in time order (Add), camera
// counts (AddCamera) and the clock (Advance), and it returns the alerts as
// they fire. Its state is bounded windows (the longest, replay's horizon,
// is eight days of fingerprints), so a month per station is a single
// pass over the data at a few hundred thousand passes a second.
// Engine.Evaluate runs a whole history at once, for backtests and batch
// jobs. Each rule fires once per episode (a run of low hours, a constant
// run, a replayed sequence, an hour of impossible readings), not once per
// record.
//
// # Alerts
//
// An Alert carries its evidence: the IDs of the records that fired it,
// the rule ID and version and the rule set's version, a human explanation
// with the numbers compared, and a Chart (rendered to a small standalone
// SVG by Chart.SVG) with the threshold drawn. Alert IDs are deterministic,
// so re-evaluation upserts rather than duplicates.
//
// # Wiring
//
// Central's ingest hands each station's accepted records to that
// station's Stream (one goroutine per station or a sharded worker), a
// ticker calls Advance with the injected clock, and the alerts go to the
// store for officers to acknowledge or escalate. cmd/plume-integrity
// backtests a rule set over an exported or simulated history.
package integrity
