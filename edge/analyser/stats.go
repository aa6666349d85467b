package analyser

import (
	"errors"
	"sync/atomic"
)

// Reason says why input was quarantined. Reasons are counted separately in
// Stats and written into each quarantine entry.
type Reason string

const (
	ReasonGarbage     Reason = "garbage"      // bytes between frames that are not a frame
	ReasonBadLength   Reason = "bad_length"   // ErrBadLength
	ReasonBadCRC      Reason = "bad_crc"      // ErrBadCRC
	ReasonMalformed   Reason = "malformed"    // ErrMalformed
	ReasonUnknownKind Reason = "unknown_kind" // ErrUnknownKind: unmapped HJ 212 CN or NDJSON type
	ReasonInvalid     Reason = "invalid"      // ErrInvalid: decodes but fails validation
)

// Reasons lists every reason, for exporters that want zero-valued series.
var Reasons = []Reason{ReasonGarbage, ReasonBadLength, ReasonBadCRC, ReasonMalformed, ReasonUnknownKind, ReasonInvalid}

// reasonOf classifies a decode error.
func reasonOf(err error) Reason {
	switch {
	case errors.Is(err, ErrBadCRC):
		return ReasonBadCRC
	case errors.Is(err, ErrBadLength):
		return ReasonBadLength
	case errors.Is(err, ErrUnknownKind):
		return ReasonUnknownKind
	case errors.Is(err, ErrInvalid):
		return ReasonInvalid
	}
	return ReasonMalformed
}

// Stats are plain counters of one Server, Client or Serial since it was
// created. The agent exports them as Prometheus metrics.
type Stats struct {
	Connections      uint64            // connections accepted or made (serial: port opens)
	Active           int64             // connections open now
	BytesRead        uint64            // bytes read from analysers
	RecordsOK        uint64            // records decoded, validated and stored by the handler
	Malformed        map[Reason]uint64 // records quarantined, by reason
	AcksSent         uint64            // acknowledgements written (HJ 212 9014, NDJSON ack)
	NaksSent         uint64            // rejections written (HJ 212 9011, NDJSON nak)
	HandlerErrors    uint64            // records the handler failed to store (not acknowledged)
	QuarantineErrors uint64            // quarantine writes that failed (the item was logged instead)
}

type counters struct {
	connections, bytesRead, ok, acks, naks, handlerErrors, quarantineErrors atomic.Uint64
	active                                                                  atomic.Int64
	malformed                                                               [6]atomic.Uint64
}

func (c *counters) reject(r Reason) {
	for i, x := range Reasons {
		if x == r {
			c.malformed[i].Add(1)
		}
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Connections: c.connections.Load(), Active: c.active.Load(), BytesRead: c.bytesRead.Load(),
		RecordsOK: c.ok.Load(), AcksSent: c.acks.Load(), NaksSent: c.naks.Load(),
		HandlerErrors: c.handlerErrors.Load(), QuarantineErrors: c.quarantineErrors.Load(),
		Malformed: make(map[Reason]uint64, len(Reasons)),
	}
	for i, r := range Reasons {
		s.Malformed[r] = c.malformed[i].Load()
	}
	return s
}

// MalformedTotal returns the sum of the per-reason counts.
func (s Stats) MalformedTotal() uint64 {
	var n uint64
	for _, v := range s.Malformed {
		n += v
	}
	return n
}
