// Package analyser ingests the records of a roadside remote-sensing analyser
// (RSD): vehicle passes, device status and calibration/audit results. It
// reads HJ 212-2017 frames or NDJSON lines over TCP or a serial line, maps
// them through a device profile to Plume's types, hands each valid record
// to a Handler (the edge agent, which stores it), acknowledges it only once
// the handler has stored it, and quarantines everything else with a reason.
//
// # Sections
//
//   - hj212.go: HJ 212-2017 framing, CRC, Encode/Decode, SplitHJ212 and the
//     9011/9014 replies.
//   - ndjson.go: the NDJSON record format, its codec, acks and SplitNDJSON.
//   - profile.go: device profiles (firmware-config/devices/*.yaml).
//   - message.go: Message and Handler, and the mapping of HJ 212 frames to
//     Plume records (and back, for the simulator).
//   - stream.go: Config and the one ingest loop every transport shares:
//     read, split, decode, validate, handle, acknowledge or quarantine.
//   - transport.go: Server (the edge listens; analysers push), Client (the
//     edge dials an analyser that listens) and Serial (RS-232/RS-485).
//   - quarantine.go: the quarantine file.
//   - stats.go: counters and rejection reasons.
//
// # HJ 212-2017
//
// A frame is "##", four decimal digits giving the length of the data
// segment, the data segment, four uppercase hex digits of CRC and "\r\n".
// The data segment is "QN=…;ST=…;CN=…;PW=…;MN=…;Flag=…;CP=&&…&&"; CP holds
// groups separated by ';' of items separated by ','. The CRC covers the data
// segment only (see CRC; it is not CRC-16/MODBUS). Flag bit 0 asks for an
// acknowledgement.
//
// A record maps onto CP as follows (codes come from the device profile):
//
//	DataTime=20261128101530123;a05001-Rtd=13.9,a05001-Flag=N;x10004-Rtd=1,x10004-Flag=N;…
//
// DataTime is device-local time (the profile's utc_offset), 14 digits or 17
// with milliseconds; pass IDs are per millisecond, so analysers should send
// 17. Each "<code>-Rtd" item is a value, each "<code>-Flag" item a data
// flag; the reading takes the most severe flag (profile order). An audit
// frame carries one gas as "<gas>-Rtd" (measured) and "<gas>-Ref"
// (reference), plus the audit kind and result items. Split packets (Flag
// bit 1) are not supported and are quarantined.
//
// Replies: a stored record whose Flag asked for it gets a 9014 data reply
// quoting its QN. A frame with a bad CRC that still has a readable QN gets
// a 9011 reply with QnRtn=9 (whatever its Flag, which cannot be trusted). A
// frame that asked for a reply but was quarantined for its content gets a
// 9011 with QnRtn=8 (unknown CN) or QnRtn=2 (refused), so the analyser does
// not resend it forever.
//
// # NDJSON
//
// One JSON object per line, UTF-8, terminated by '\n' ("\r\n" accepted),
// at most MaxNDJSONLine bytes. Every record has "type" (string, required),
// "time" (RFC 3339 with an offset and up to nanoseconds, required), "id"
// (string of at most 96 bytes, optional) and "station" (string, optional,
// informational: it becomes Message.Device). Unknown keys are rejected
// unless the profile lists them under ndjson.ignore, and null is never a
// value.
//
// A pass record, "type":"pass":
//
//	{"type":"pass","station":"GD-SZ-0001","time":"2026-11-28T10:15:30.123+08:00",
//	 "lane":1,"seq":12,"fuel":"diesel","co2_pct":12.1,"co_pct":0.02,"hc_ppm":20,
//	 "no_ppm":480,"opacity":6.5,"ringelmann":0,"speed_kmh":42.5,"accel_ms2":0.4,
//	 "slope_pct":1.5,"plume_co2":38,"temp_c":18.2,"humidity_pct":61,"wind_ms":2.1,
//	 "pressure_kpa":101.3,"rain":false,"flag":"N"}
//
// Measurement keys are Plume's field names (FieldCO2, …) or the device's
// own names mapped by the profile's ndjson.keys (with scale and offset).
// Values are numbers; lane and seq are integers; fuel is "petrol",
// "diesel", "" or a numeric fuel code; rain is a boolean or 0/1; flag is a
// device data flag (default "N"). A missing ringelmann means not measured
// (-1). The profile's "required" fields must be present.
//
// A status record, "type":"status":
//
//	{"type":"status","time":"…","flag":"N","values":{"laser_power":0.97},"message":"ok"}
//
// An audit record, "type":"audit" (one gas per record):
//
//	{"type":"audit","time":"…","kind":"audit","gas":"co","reference":4.0,
//	 "measured":3.96,"unit":"%","passed":true}
//
// with kind "calibration" or "audit", gas one of co2, co, hc, no, opacity,
// and unit optional (it must match the gas when given). Type names can be
// changed per profile (ndjson.pass_types, …).
//
// After a record is stored the edge writes back {"ack":"<id>"}: the
// record's "id" when it has one, otherwise an ID derived from the time
// string exactly as sent: "<time>/L<lane>" for a pass, "<time>" for a
// status and "<time>/<gas>" for an audit. A quarantined line gets
// {"nak":"<id>","reason":"<reason>"} (id empty when it could not be read);
// the sender should not resend it. No reply means the edge could not store
// the record: the sender resends it after reconnecting.
//
// # Acknowledgement and delivery
//
// Handler returns nil only once the message is durably stored; only then
// is the record acknowledged. If it fails, the record is not acknowledged
// and the analyser resends it, so the edge may see a record twice (after a
// lost ack, too): the agent deduplicates passes by plume.NewPassID.
//
// # Quarantine
//
// Bad CRC, bad length, garbage between frames, unparsable records, unmapped
// CNs or types and records that fail validation are counted per Reason,
// logged, and appended to the Quarantiner. QuarantineFile writes one JSON
// object per line, each input once (as text when it is UTF-8, else base64),
// within a budget (QuarantineOptions.MaxBytes, 64 MiB by default) kept by
// rotating to path.1, and stops writing when the disk's free space falls
// to its floor, so garbage can fill only its own budget and never blocks
// passes. What the budget drops is counted (QuarantineStats), and when the
// quarantine refuses an input its first 256 bytes go to the log. Nothing is
// dropped silently.
package analyser
