package firmwareconfig_test

import (
	"os"
	"testing"

	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

func FuzzDecodeProfile(f *testing.F) {
	b, _ := os.ReadFile("profiles/hj845-2017-diesel.yaml")
	f.Add(b)
	f.Add([]byte("name: x\nlimits: [{pollutant: no, max: .nan}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := firmwareconfig.DecodeProfile(b)
		if err == nil && p.Validate() != nil {
			t.Fatal("decoded profile does not validate")
		}
	})
}
