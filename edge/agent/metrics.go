package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plume-emissions/plume/edge/analyser"
)

// registerMetrics exports the agent's counters. Values are read from the
// components' own counters at scrape time, so adapters stay free of
// Prometheus.
func registerMetrics(reg prometheus.Registerer, a *Agent) {
	c := a.capture.Stats()
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "plume_edge", Name: name, Help: help}, f))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "plume_edge", Name: name, Help: help}, f))
	}
	counter("passes_total", "Passes judged.", func() float64 { return float64(c.Passes.Load()) })
	counter("violations_total", "Violation candidates captured as signed evidence.", func() float64 { return float64(c.Violations.Load()) })
	counter("passes_invalid_total", "Passes whose reading could not be judged.", func() float64 { return float64(c.Invalid.Load()) })
	counter("status_records_total", "Analyser status records stored.", func() float64 { return float64(c.Status.Load()) })
	counter("audit_records_total", "Calibration and audit records stored.", func() float64 { return float64(c.Audits.Load()) })
	counter("records_rejected_total", "Analyser records rejected by validation at capture.", func() float64 { return float64(c.Rejected.Load()) })

	an := a.analyserStats
	counter("analyser_records_total", "Analyser records decoded and stored.", func() float64 { return float64(an().RecordsOK) })
	counter("analyser_acks_total", "Acknowledgements sent to the analyser.", func() float64 { return float64(an().AcksSent) })
	counter("analyser_handler_errors_total", "Analyser records that could not be stored (not acknowledged).", func() float64 { return float64(an().HandlerErrors) })
	gauge("analyser_connections", "Analyser connections open now.", func() float64 { return float64(an().Active) })
	for _, r := range analyser.Reasons {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "plume_edge", Name: "analyser_malformed_total", Help: "Malformed analyser input quarantined, by reason.",
			ConstLabels: prometheus.Labels{"reason": string(r)},
		}, func() float64 { return float64(an().Malformed[r]) }))
	}

	gauge("spool_queued_evidence", "Evidence items waiting for central.", func() float64 { return float64(a.spool.Stats().QueuedEvidence) })
	gauge("spool_queued_records", "Records waiting for central.", func() float64 { return float64(a.spool.Stats().QueuedRecords) })
	gauge("spool_dead_letters", "Items central refused, kept with a reason.", func() float64 { return float64(a.spool.Stats().DeadLetters) })
	gauge("spool_missing_media", "Queued evidence whose media was missing at start-up.", func() float64 { return float64(a.spool.Stats().MissingMedia) })
	gauge("spool_bytes", "Bytes used by the spool.", func() float64 { return float64(a.spool.Stats().Bytes) })
	counter("spool_records_compacted_total", "Pass records folded into summaries under disk pressure.", func() float64 { return float64(a.spool.Stats().RecordsCompacted) })
	counter("spool_full_refusals_total", "Items refused because the spool was full.", func() float64 { return float64(a.spool.Stats().FullRefusals) })
	counter("spool_values_healed_total", "Spool database values that failed their checksum and were replaced from the files.", func() float64 { return float64(a.spool.Stats().ValuesHealed) })
	gauge("spool_media_damaged", "Queued media the scrub found not to match its hash.", func() float64 { return float64(a.spool.Stats().MediaDamaged) })
	gauge("analyser_quarantine_bytes", "Bytes of rejected analyser input kept (capped, rotating).", func() float64 { return float64(a.quar.Stats().Bytes) })
	counter("analyser_quarantine_dropped_total", "Rejected analyser inputs dropped: rotated out of the capped quarantine, or refused for disk space.", func() float64 { return float64(a.quar.Stats().DroppedItems) })

	counter("uplink_evidence_delivered_total", "Evidence items central acknowledged.", func() float64 { return float64(a.uplink.Stats().EvidenceDelivered) })
	counter("uplink_records_delivered_total", "Records central acknowledged.", func() float64 { return float64(a.uplink.Stats().RecordsDelivered) })
	counter("uplink_blob_bytes_total", "Media bytes uploaded.", func() float64 { return float64(a.uplink.Stats().BlobBytes) })
	counter("uplink_retries_total", "Request attempts after the first.", func() float64 { return float64(a.uplink.Stats().Retries) })
	gauge("clock_offset_seconds", "Edge clock minus central's, from response Date headers.", func() float64 { return a.uplink.Stats().ClockOffset.Seconds() })
}
