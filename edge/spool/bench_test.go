package spool_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/spool"
	"github.com/plume-emissions/plume/edge/spool/spooltest"
)

// BenchmarkAddRecord measures durable appends: one bbolt transaction with
// fsync per record.
func BenchmarkAddRecord(b *testing.B) {
	s := spooltest.Open(b, spool.Options{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.AddRecord(ctx, spooltest.Record(t0.Add(time.Duration(i)*time.Millisecond), plume.OutcomePass)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPutMedia measures storing 1 MiB media items (write, fsync,
// rename, directory fsync).
func BenchmarkPutMedia(b *testing.B) {
	s := spooltest.Open(b, spool.Options{})
	item := bytes.Repeat([]byte{0x5a}, 1<<20)
	b.SetBytes(int64(len(item)))
	i := uint64(0)
	for b.Loop() {
		binary.BigEndian.PutUint64(item, i) // distinct content each time
		if _, _, err := s.PutMedia(ctx, bytes.NewReader(item)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
