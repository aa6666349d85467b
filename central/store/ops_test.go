package store_test

import (
	"path/filepath"
	"testing"

	"github.com/plume-emissions/plume/central/store/storetest"
)

func TestOpsContract(t *testing.T) {
	storetest.RunOps(t, func(tb testing.TB) storetest.OpsStore {
		return mustOpen(tb, filepath.Join(tb.TempDir(), "central.db"))
	})
}
