package integrity

import (
	"io/fs"

	firmwareconfig "github.com/plume-emissions/plume/firmware-config"
)

var IntegrityRulesFile = func() ([]byte, error) { return fs.ReadFile(firmwareconfig.FS, DefaultRulesFile) }
