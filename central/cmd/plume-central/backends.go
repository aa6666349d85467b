package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/objectstore"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/sqlstore"
)

// Environment variables that switch central to its scale-out stores. The
// PLUME_BLOB_* names are objectstore.Env.
const (
	// EnvStoreDSN is the PostgreSQL connection string; set, central keeps
	// its metadata there (central/sqlstore) instead of DATA/central.db.
	EnvStoreDSN = "PLUME_STORE_DSN"
	// EnvKeyFile is a file holding central's key seed (base64, as
	// central.key); replicas must share one key.
	EnvKeyFile = "PLUME_CENTRAL_KEY_FILE"
	// EnvBlobEndpoint, set, makes central keep media and packages in the
	// object store (central/objectstore) instead of DATA/blobs.
	EnvBlobEndpoint = "PLUME_BLOB_ENDPOINT"
)

// openBackends fills cfg.Store, cfg.Blobs and cfg.Key from the
// environment. Unset variables leave the embedded defaults. On error
// nothing stays open.
func openBackends(ctx context.Context, cfg *server.Config, getenv func(string) string) error {
	if path := getenv(EnvKeyFile); path != "" && cfg.Key == nil {
		key, err := loadKey(path)
		if err != nil {
			return err
		}
		cfg.Key = key
	}
	if dsn := getenv(EnvStoreDSN); dsn != "" && cfg.Store == nil {
		st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{Logger: cfg.Logger, Now: cfg.Now})
		if err != nil {
			return err
		}
		cfg.Store = st
	}
	if getenv(EnvBlobEndpoint) != "" && cfg.Blobs == nil {
		oc, err := objectstore.ConfigFromEnv(getenv)
		if err == nil {
			oc.Logger, oc.Now = cfg.Logger, cfg.Now
			var bs central.BlobStore
			if bs, err = objectstore.Open(ctx, oc); err == nil {
				cfg.Blobs = bs
			}
		}
		if err != nil {
			if cfg.Store != nil {
				cfg.Store.Close()
				cfg.Store = nil
			}
			return err
		}
	}
	return nil
}

// loadKey reads central's key seed from a file in central.key's format.
func loadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load central key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("load central key %s: not base64 of a %d-byte Ed25519 seed", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// enrollShared enrolls a station in the PostgreSQL store named by
// PLUME_STORE_DSN, signing with the shared key (PLUME_CENTRAL_KEY_FILE,
// else DATA/central.key).
func enrollShared(ctx context.Context, getenv func(string) string, data, centralURL string, station plume.StationID, name string, pub ed25519.PublicKey, opts ...server.EnrollOption) (*plume.Enrollment, error) {
	var (
		key ed25519.PrivateKey
		err error
	)
	if path := getenv(EnvKeyFile); path != "" {
		key, err = loadKey(path)
	} else {
		key, err = server.LoadOrCreateKey(data)
	}
	if err != nil {
		return nil, err
	}
	st, err := sqlstore.Open(ctx, getenv(EnvStoreDSN), sqlstore.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return server.EnrollStore(ctx, st, key, centralURL, station, name, pub, time.Now(), opts...)
}

// createAdminShared creates an administrator in the PostgreSQL store named
// by PLUME_STORE_DSN.
func createAdminShared(ctx context.Context, getenv func(string) string, username, name, password string) error {
	st, err := sqlstore.Open(ctx, getenv(EnvStoreDSN), sqlstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	return auth.CreateOfficer(ctx, st, &central.Officer{Username: username, Name: name, Role: central.RoleAdmin}, password, nil, "", time.Now())
}
