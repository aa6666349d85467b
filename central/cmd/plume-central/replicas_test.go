package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/export/policetest"
	"github.com/plume-emissions/plume/central/internal/fixture"
	"github.com/plume-emissions/plume/central/internal/testservers"
	"github.com/plume-emissions/plume/central/objectstore"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/sqlstore"
)

// scaleOut is one PostgreSQL database and one MinIO server, with the
// environment that points plume-central at them.
type scaleOut struct {
	pg    *testservers.Postgres
	minio *testservers.MinIO
	env   map[string]string
}

func startScaleOut(t *testing.T) *scaleOut {
	t.Helper()
	pg := testservers.StartPostgres(t)
	m := testservers.StartMinIO(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE plume"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	keyFile := filepath.Join(t.TempDir(), "central.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &scaleOut{pg: pg, minio: m, env: map[string]string{
		EnvStoreDSN:                 pg.DSN("plume"),
		EnvKeyFile:                  keyFile,
		"PLUME_BLOB_ENDPOINT":       m.Endpoint,
		"PLUME_BLOB_ACCESS_KEY":     m.AccessKey,
		"PLUME_BLOB_SECRET_KEY":     m.SecretKey,
		"PLUME_BLOB_RETENTION_MODE": "governance",
		"PLUME_BLOB_RETENTION_DAYS": "1",
	}}
}

func (so *scaleOut) getenv(name string) string { return so.env[name] }

// open opens the shared stores in the test process.
func (so *scaleOut) open(t *testing.T) (*sqlstore.Store, *objectstore.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, so.env[EnvStoreDSN], sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	oc, err := objectstore.ConfigFromEnv(so.getenv)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := objectstore.Open(ctx, oc)
	if err != nil {
		t.Fatal(err)
	}
	return st, bs
}

// TestReplicasKillMidExport runs two plume-central replicas as child
// processes on one PostgreSQL and one MinIO. Two stations upload through
// both replicas; an officer signs in on one replica and approves on both
// (one session); replica A is killed with SIGKILL after the police stored
// a case it pushed but before A recorded the receipt. Replica B takes over
// A's leased export when the lease runs out. Every case is opened once,
// every package built once per revision, every case reaches the police
// exactly once, and media and packages of approved cases are under legal
// hold.
func TestReplicasKillMidExport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, MinIO and two centrals")
	}
	so := startScaleOut(t)
	for k, v := range so.env {
		t.Setenv(k, v) // the children inherit the environment
	}
	st, bs := so.open(t)
	ctx := context.Background()

	// The police see which replica pushes by the door it comes in: each
	// replica has its own front to the one receiver.
	secret := []byte("police shared secret, 32 bytes!!")
	police := policetest.New(secret)
	aStored, aKilled := make(chan struct{}), make(chan struct{})
	var aOnce sync.Once
	frontA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		police.ServeHTTP(rec, r)
		if rec.Code/100 == 2 {
			aOnce.Do(func() { close(aStored) })
			<-r.Context().Done() // A dies before it hears the receipt
			return
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer frontA.Close()
	frontB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // B waits until A has been killed, so that A gets work
		case <-aKilled:
		case <-time.After(60 * time.Second):
		}
		police.ServeHTTP(w, r)
	}))
	defer frontB.Close()
	secretFile := filepath.Join(t.TempDir(), "police.secret")
	os.WriteFile(secretFile, secret, 0o600)

	addrA, addrB := freeAddr(t), freeAddr(t)
	common := []string{"-police-secret-file", secretFile, "-job-lease", "3s", "-sheet-font", "none"}
	childA := startChild(t, append([]string{"-addr", addrA, "-data", t.TempDir(), "-police-url", frontA.URL, "-public-url", "http://" + addrA}, common...)...)
	startChild(t, append([]string{"-addr", addrB, "-data", t.TempDir(), "-police-url", frontB.URL, "-public-url", "http://" + addrB}, common...)...)
	urlA, urlB := "http://"+addrA, "http://"+addrB
	for _, u := range []string{urlA, urlB} {
		waitFor(t, "replica "+u, 60*time.Second, func() bool {
			r, err := http.Get(u + "/healthz")
			if err == nil {
				r.Body.Close()
			}
			return err == nil && r.StatusCode == http.StatusOK
		})
	}

	// Enroll two stations and a reviewer in the shared store, as
	// plume-central enroll and the admin page do while replicas run.
	key, err := loadKey(so.env[EnvKeyFile])
	if err != nil {
		t.Fatal(err)
	}
	stations := []plume.StationID{"GD-SZ-0001", "GD-SZ-0002"}
	clients := map[plume.StationID][]*fixture.Client{}
	keys := map[plume.StationID]ed25519.PrivateKey{}
	for _, id := range stations {
		enr, err := server.EnrollStore(ctx, st, key, urlA, id, "gantry", nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		k, _ := enr.PrivateKey()
		keys[id] = k
		for _, u := range []string{urlA, urlB} {
			clients[id] = append(clients[id], &fixture.Client{BaseURL: u, Station: id, Key: k})
		}
	}
	if err := auth.CreateOfficer(ctx, st, &central.Officer{Username: "li.wei", Name: "李伟", Role: central.RoleReviewer}, "correct horse battery", nil, "", time.Now()); err != nil {
		t.Fatal(err)
	}

	// Ingest through both replicas, concurrently.
	const perStation = 6
	var wg sync.WaitGroup
	for _, id := range stations {
		wg.Go(func() {
			for i := range perStation {
				ev := fixture.NewEvidence(t, keys[id], id, fixture.Epoch.Add(time.Duration(i)*time.Minute), 1, true, 2)
				resp, err := clients[id][i%2].PutEvidence(ev)
				if err != nil || resp.Status != http.StatusCreated {
					t.Errorf("%s evidence %d: %v %v", id, i, resp, err)
				}
				// A station retrying through the other replica changes
				// nothing.
				if resp, err := clients[id][(i+1)%2].PutEvidence(ev); err != nil || resp.Status/100 != 2 {
					t.Errorf("%s evidence %d resent: %v %v", id, i, resp, err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	const n = 2 * perStation
	cases := func() []*central.Case {
		cs, _, err := st.Cases(ctx, central.CaseFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	waitFor(t, "every package built", 120*time.Second, func() bool {
		cs := cases()
		for _, c := range cs {
			if !c.PackageCurrent() {
				return false
			}
		}
		return len(cs) == n
	})

	// Sign in on A; approve through both replicas with that session.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	r, err := hc.PostForm(urlA+"/login", url.Values{"username": {"li.wei"}, "password": {"correct horse battery"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(r.Body)
	r.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token after sign-in")
	}
	for i, c := range cases() {
		base := []string{urlA, urlB}[i%2]
		r, err := hc.PostForm(base+"/cases/"+string(c.ID)+"/approve", url.Values{"csrf": {string(m[1])}})
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("approve %s on %s: %v %v", c.ID, base, r.Status, err)
		}
		r.Body.Close()
	}

	select {
	case <-aStored:
	case <-time.After(90 * time.Second):
		t.Fatal("replica A never pushed a case")
	}
	childA.Process.Signal(syscall.SIGKILL)
	childA.Wait()
	close(aKilled)

	waitFor(t, "every case exported by the surviving replica", 120*time.Second, func() bool {
		for _, c := range cases() {
			if c.Status != central.CaseExported {
				return false
			}
		}
		return true
	})

	// Nothing lost, nothing done twice.
	got := police.Cases()
	if len(got) != n {
		t.Fatalf("the police hold %d cases, want %d", len(got), n)
	}
	numbers := map[string]bool{}
	for _, pc := range got {
		if numbers[pc.Record.CaseNumber] {
			t.Fatalf("case %s reached the police twice", pc.Record.CaseNumber)
		}
		numbers[pc.Record.CaseNumber] = true
	}
	for _, c := range cases() {
		if !numbers[c.Number] {
			t.Fatalf("case %s never reached the police", c.Number)
		}
		log, err := st.Custody(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		built, exported := 0, 0
		for _, e := range log {
			switch e.Action {
			case central.ActionPackageBuilt:
				built++
			case central.ActionExported:
				exported++
			}
		}
		// One build at ingest, one after the approval changed the case.
		if built != 2 || exported != 1 {
			t.Fatalf("case %s: %d package builds and %d exports in custody, want 2 and 1:\n%v", c.Number, built, exported, log)
		}
		if c.Export.Receipt == "" {
			t.Fatalf("case %s exported without a receipt", c.Number)
		}
		ev, err := st.Evidence(ctx, c.Station, c.EvidenceID)
		if err != nil {
			t.Fatal(err)
		}
		man, err := plume.DecodeManifest(ev.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		sums := []string{c.PackageSHA256}
		for _, md := range man.Media {
			sums = append(sums, md.SHA256)
		}
		for _, sum := range sums {
			if held, err := bs.LegalHold(ctx, sum); err != nil || !held {
				t.Fatalf("case %s: blob %s not under legal hold (%v)", c.Number, sum[:12], err)
			}
		}
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Cases != n || stats.Evidence != n || stats.PendingJobs != 0 {
		t.Fatalf("stats %+v, want %d cases and evidence items and no pending jobs", stats, n)
	}
	t.Logf("2 replicas, %d cases: police deliveries %d (resends after the kill: %d), %d cases held by the police, legal holds on every package and media item",
		n, police.Deliveries(), police.Deliveries()-n, len(got))
}
