package firmwareconfig

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/plume-emissions/plume"
)

// DecodeStrict decodes one YAML document into v, rejecting unknown fields
// and trailing documents. Every configuration file of Plume — station files,
// limit profiles, device profiles, integrity rules — is read through it, on
// the edge and at central alike.
func DecodeStrict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return plume.Errorf(plume.EINVALID, "empty document")
		}
		return plume.Errorf(plume.EINVALID, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return plume.Errorf(plume.EINVALID, "more than one YAML document")
	}
	return nil
}

// DecodeProfile parses and validates a limit profile file.
func DecodeProfile(b []byte) (*plume.LimitProfile, error) {
	var p plume.LimitProfile
	if err := DecodeStrict(b, &p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}
