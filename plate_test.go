package plume

import (
	"errors"
	"testing"
)

func TestValidatePlateText(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		ok         bool
	}{
		{"OK", "皖A00E66", true},
		{"OKNewEnergySmall", "皖AD11166", true},
		{"OKNewEnergyLarge", "粤B12345F", true},
		{"OKPolice", "浙FA096警", true},
		{"OKCoach", "苏A1234学", true},
		{"OKHongKong", "粤Z1234港", true},
		{"OKEmbassy", "使123456", true},
		{"ErrEmpty", "", false},
		{"ErrShort", "皖A1234", false},
		{"ErrLong", "皖A12345678", false},
		{"ErrNoProvince", "XA12345", false},
		{"ErrLetterI", "皖I12345", false},
		{"ErrTailO", "皖A1O345", false},
		{"ErrSuffixInMiddle", "皖A12警45", false},
		{"ErrEightWithoutDF", "皖A123456", false},
		{"ErrSuffixOnEight", "皖AD1234警", false},
		{"ErrBadUTF8", "皖A\xff2345", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePlateText(tt.text)
			if tt.ok && err != nil {
				t.Fatalf("ValidatePlateText(%q) = %v, want nil", tt.text, err)
			}
			if !tt.ok && !errors.Is(err, ErrPlateText) {
				t.Fatalf("ValidatePlateText(%q) = %v, want ErrPlateText", tt.text, err)
			}
		})
	}
}

func FuzzValidatePlateText(f *testing.F) {
	f.Add("皖A00E66")
	f.Add("粤B12345F")
	f.Fuzz(func(t *testing.T, s string) {
		if err := ValidatePlateText(s); err != nil && !errors.Is(err, ErrPlateText) {
			t.Fatalf("unexpected error type: %v", err)
		}
	})
}
