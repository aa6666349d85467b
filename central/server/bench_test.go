package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/server"
)

// BenchmarkIngestEvidence measures evidence items per second over loopback
// HTTP: per item one small media blob and one signed manifest of an
// exceedance (so a case is opened and a build queued; builds are off to
// measure intake alone).
func BenchmarkIngestEvidence(b *testing.B) {
	s := mustOpen(b, b.TempDir(), func(c *server.Config) { c.PackageWorkers = -1 })
	c := enrollClient(b, s, "GD-SZ-0001")
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	items := make([]*fixture.Evidence, b.N)
	for i := range items {
		items[i] = fixture.NewEvidence(b, c.Key, c.Station, fixture.Epoch.Add(time.Duration(i)*time.Millisecond), 1, true, 1)
	}
	b.ResetTimer()
	for _, ev := range items {
		r, err := c.PutEvidence(ev)
		if err != nil || r.Status != http.StatusCreated {
			b.Fatalf("%s %v", r, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkIngestRecords measures pass records per second over loopback
// HTTP, in batches of 500.
func BenchmarkIngestRecords(b *testing.B) {
	const batch = 500
	s := mustOpen(b, b.TempDir(), func(c *server.Config) { c.PackageWorkers = -1 })
	c := enrollClient(b, s, "GD-SZ-0001")
	recs := fixture.Records(c.Station, fixture.Epoch, batch*b.N)
	b.ResetTimer()
	for i := range b.N {
		r, err := c.PutRecords(fmt.Sprintf("b%d", i), recs[i*batch:(i+1)*batch])
		if err != nil || r.Status != http.StatusOK {
			b.Fatalf("%s %v", r, err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}
