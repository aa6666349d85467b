// Package firmwareconfig embeds Plume's shipped configuration data — station
// files, limit profiles and analyser device profiles — so that the binaries
// run on these defaults with nothing else installed. The files themselves
// are the documentation of the formats; edge/config loads and checks them.
package firmwareconfig

import "embed"

// FS holds stations/*.yaml, profiles/*.yaml and devices/*.yaml.
//
//go:embed stations/*.yaml profiles/*.yaml devices/*.yaml
var FS embed.FS
