package profile_test

import (
	"testing"
	"time"

	"github.com/plume-emissions/plume/central/profile"
	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

func TestEmbedded(t *testing.T) {
	s, err := profile.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	p := s.Lookup("hj845-2017-diesel@2026.11-1")
	if p == nil {
		t.Fatal("the shipped diesel profile is not found by its reference")
	}
	if p.Repeat.Count != 2 || p.Repeat.Window != 4380*time.Hour {
		t.Fatalf("repeat rule %+v, want 2 within 4380h", p.Repeat)
	}
	if r, ok := s.Repeat("nope@1"); ok || r != profile.DefaultRepeat {
		t.Fatalf("unknown profile: %+v %v", r, ok)
	}
}

func TestDecodeRejectsUnknownFields(t *testing.T) {
	if _, err := firmwareconfig.DecodeProfile([]byte("name: x\nversion: '1'\nbogus: 1\n")); err == nil {
		t.Fatal("unknown field accepted")
	}
}
