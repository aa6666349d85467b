// Package sim simulates a roadside remote-sensing station's analyser.
//
// A Generator produces a seeded, realistic stream of plume records: passes
// of petrol cars and diesel trucks and buses, device status and
// calibration/standard-gas audits. A Player plays that stream to an edge
// agent over TCP as HJ 212-2017 frames or NDJSON lines, encoded through a
// device profile exactly as an analyser of that profile would, waits for
// each acknowledgement and resends whatever was not acknowledged after
// reconnecting, so a test or the demo can kill and restart the edge and
// check that no pass is lost. It can also inject malformed frames.
//
// The generator knows nothing about limits: how many simulated vehicles
// exceed them is for the edge to judge.
package sim
