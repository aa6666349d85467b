package testservers_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plume-emissions/plume/central/internal/testservers"
)

func TestPostgres(t *testing.T) {
	pg := testservers.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := pg.CreateDatabase(t, "plume_test")
	if !strings.Contains(dsn, "/plume_test?") {
		t.Fatalf("dsn %q", dsn)
	}
	got, err := pg.Query(ctx, "plume_test", "select current_database() || ' ' || current_setting('listen_addresses')")
	if err != nil {
		t.Fatal(err)
	}
	if got != "plume_test 127.0.0.1" {
		t.Fatalf("got %q, want the test database on loopback", got)
	}
	dir := pg.DataDir
	pg.Stop()
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), time.Second); err == nil {
		c.Close()
		t.Fatal("postgres still listening after Stop")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("data dir gone before cleanup: %v", err)
	}
}

func TestMinIO(t *testing.T) {
	m := testservers.StartMinIO(t)
	c, err := net.DialTimeout("tcp", m.Endpoint, time.Second)
	if err != nil {
		t.Fatalf("minio not listening: %v", err)
	}
	c.Close()
	if !strings.HasPrefix(m.Endpoint, "127.0.0.1:") {
		t.Fatalf("endpoint %q is not loopback", m.Endpoint)
	}
	m.Stop()
	if c, err := net.DialTimeout("tcp", m.Endpoint, time.Second); err == nil {
		c.Close()
		t.Fatal("minio still listening after Stop")
	}
}
