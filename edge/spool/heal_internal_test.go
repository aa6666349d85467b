package spool

import (
	"context"
	"testing"
	"time"

	"github.com/plume-emissions/plume"
	bolt "go.etcd.io/bbolt"
)

// TestHealWhileOpen damages values under a running spool: the uplink's
// next read gets the records back from records/, and Scrub heals the
// seen index, without a restart.
func TestHealWhileOpen(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		p := &plume.Pass{ID: plume.NewPassID("GD-SZ-0001", t0.Add(time.Duration(i)*time.Second), 1), Station: "GD-SZ-0001",
			Reading: plume.Reading{Time: t0.Add(time.Duration(i) * time.Second), Lane: 1, Fuel: plume.FuelDiesel,
				Gases: plume.Gases{CO2: 12, NO: 900}, PlumeCO2: 40, SpeedKmh: 50, Flag: plume.FlagNormal},
			Verdict: plume.Verdict{Outcome: plume.OutcomePass, ResultCode: 1}}
		r := plume.Record{Kind: plume.RecordPass, ID: string(p.ID), Station: p.Station, Time: p.Reading.Time, Pass: p}
		if err := s.AddRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	// Flip a byte in two record values and one seen entry.
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktRecords)
		for _, seq := range []uint64{2, 4} {
			v := append([]byte(nil), b.Get(itob(seq))...)
			v[len(v)/2] ^= 0x20
			if err := b.Put(itob(seq), v); err != nil {
				return err
			}
		}
		sb := tx.Bucket(bktSeen)
		k := seenKey(KindRecord, ids[0])
		v := append([]byte(nil), sb.Get(k)...)
		v[len(v)-3] ^= 0x01
		return sb.Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := s.PendingRecords(ctx, 100)
	if err != nil {
		t.Fatalf("pending after damage: %v", err)
	}
	got := map[string]int{}
	for _, it := range items {
		got[it.Record.ID]++
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("record %s queued %d times after healing: %v", id, got[id], got)
		}
	}
	// Three damaged values, plus the first record's entry, which its
	// damaged seen entry no longer vouches for.
	if len(got) != len(ids) || s.Stats().ValuesHealed != 4 {
		t.Fatalf("queued %v, healed %d", got, s.Stats().ValuesHealed)
	}
	res, err := s.Scrub(ctx, 1<<20)
	if err != nil || res.ValuesHealed != 0 {
		t.Fatalf("second scrub: %+v %v", res, err)
	}
}
