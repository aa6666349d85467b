package objectstore_test

import (
	"strings"
	"testing"

	"github.com/plume-emissions/plume/central/objectstore"
)

func TestConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	t.Run("OK", func(t *testing.T) {
		cfg, err := objectstore.ConfigFromEnv(env(map[string]string{
			"PLUME_BLOB_ENDPOINT": "minio:9000", "PLUME_BLOB_RETENTION_MODE": "Compliance",
			"PLUME_BLOB_RETENTION_DAYS": "2555", "PLUME_BLOB_SECURE": "true", "PLUME_EXPORT_EXPIRY_DAYS": "90",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Endpoint != "minio:9000" || cfg.Mode != objectstore.Compliance || cfg.RetentionDays != 2555 || !cfg.Secure ||
			cfg.ExportExpiryDays != 90 || cfg.EvidenceBucket != "plume-evidence" {
			t.Fatalf("%+v", cfg)
		}
	})
	t.Run("ErrBadValues", func(t *testing.T) {
		_, err := objectstore.ConfigFromEnv(env(map[string]string{
			"PLUME_BLOB_RETENTION_MODE": "forever", "PLUME_BLOB_RETENTION_DAYS": "-1", "PLUME_BLOB_SECURE": "maybe",
		}))
		for _, want := range []string{"PLUME_BLOB_RETENTION_MODE", "PLUME_BLOB_RETENTION_DAYS", "PLUME_BLOB_SECURE"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not name %s", err, want)
			}
		}
	})
	t.Run("ErrNoMode", func(t *testing.T) {
		cfg, _ := objectstore.ConfigFromEnv(env(map[string]string{"PLUME_BLOB_ENDPOINT": "x:9000", "PLUME_BLOB_ACCESS_KEY": "a", "PLUME_BLOB_SECRET_KEY": "b"}))
		if _, err := objectstore.Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "retention mode") {
			t.Fatalf("open without a retention mode: %v", err)
		}
	})
}
