package spool

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// valueTag opens every value the spool writes to bbolt; it is followed by
// a CRC32C of the key and the JSON, then the JSON. Values written before
// checksums existed are bare JSON (they open with '{') and are read
// unchecked until rewritten (see migrateValues).
const valueTag = 0xc1

const valueHeader = 5

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// valueSum covers the key too, so that a flipped key byte is caught as well
// as a flipped value byte.
func valueSum(key, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body)
}

// encodeValue returns the stored form of v under key.
func encodeValue(key []byte, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return sealValue(key, body), nil
}

// sealValue puts the tag and checksum in front of the JSON body.
func sealValue(key, body []byte) []byte {
	out := make([]byte, valueHeader+len(body))
	out[0] = valueTag
	binary.BigEndian.PutUint32(out[1:valueHeader], valueSum(key, body))
	copy(out[valueHeader:], body)
	return out
}

// valueBody checks the stored value raw of key and returns its JSON. A
// value that fails its checksum returns an error wrapping ErrCorruptValue.
func valueBody(key, raw []byte) ([]byte, error) {
	switch {
	case len(raw) > 0 && raw[0] == '{':
		return raw, nil // written before checksums
	case len(raw) < valueHeader || raw[0] != valueTag:
		return nil, fmt.Errorf("key %q: unknown value format: %w", key, ErrCorruptValue)
	}
	body := raw[valueHeader:]
	if binary.BigEndian.Uint32(raw[1:valueHeader]) != valueSum(key, body) {
		return nil, fmt.Errorf("key %q: checksum mismatch: %w", key, ErrCorruptValue)
	}
	return body, nil
}

// decodeValue checks and decodes the stored value raw of key into dst.
func decodeValue(key, raw []byte, dst any) error {
	body, err := valueBody(key, raw)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("key %q: %w: %w", key, ErrCorruptValue, err)
	}
	return nil
}

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := decodeValue(k, raw, v); err != nil {
		return false, err
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := encodeValue(k, v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}
