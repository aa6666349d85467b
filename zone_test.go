package plume_test

import (
	"testing"
	"time"

	"github.com/plume-emissions/plume"
)

func TestFormatTime(t *testing.T) {
	at := time.Date(2026, 12, 4, 14, 6, 5, 680e6, time.UTC)
	sh, err := plume.LoadZone("")
	if err != nil {
		t.Fatal(err)
	}
	if got := plume.FormatTime(at, sh); got != "2026-12-04 22:06:05 UTC+8" {
		t.Errorf("Asia/Shanghai: %q", got)
	}
	for _, tc := range []struct {
		loc  *time.Location
		want string
	}{
		{time.UTC, "2026-12-04 14:06:05 UTC"},
		{time.FixedZone("x", -(3*3600 + 1800)), "2026-12-04 10:36:05 UTC-3:30"},
		{time.FixedZone("y", 5*3600+45*60), "2026-12-04 19:51:05 UTC+5:45"},
	} {
		if got := plume.FormatTime(at, tc.loc); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if _, err := plume.LoadZone("Mars/Olympus"); err == nil {
		t.Error("unknown zone accepted")
	}
}
