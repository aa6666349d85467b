// Package firmwareconfig embeds Plume's shipped configuration data — station
// files, limit profiles and analyser device profiles — so that the binaries
// run on these defaults with nothing else installed. The files themselves
// are the documentation of the formats. DecodeStrict and DecodeProfile are
// the one way every configuration file is read, on the edge and at central
// alike; edge/config loads and checks whole station files (the validator
// operators run is `plume-edge check-config`), and central/integrity loads
// the integrity rules.
package firmwareconfig

import "embed"

// FS holds stations/*.yaml, profiles/*.yaml, devices/*.yaml and
// integrity/*.yaml (central's data-integrity rules).
//
//go:embed stations/*.yaml profiles/*.yaml devices/*.yaml integrity/*.yaml
var FS embed.FS
