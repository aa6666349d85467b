package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/clock"
	"github.com/plume-emissions/plume/edge/config"
)

// HealthOptions tunes the heartbeats (edge → central) and remote
// configuration.
type HealthOptions struct {
	// Interval between heartbeats (default 60 s); negative disables them.
	Interval time.Duration
	// DiskFree reports the free bytes where the spool lives; nil uses
	// statfs on the data directory. Tests inject a nearly full disk.
	DiskFree func() (int64, bool)
	// NTP reads chrony's tracking; nil runs chronyc when it is installed.
	NTP func(ctx context.Context) (clock.Tracking, error)
	// NTPMaxAge is how long an NTP reading is used (default 5 min).
	NTPMaxAge time.Duration
	// CameraHealth, when set, reports the cameras instead of the camera
	// pipeline's own statistics (tests of a frozen or black camera on a
	// station whose pipeline they do not run).
	CameraHealth func() []plume.CameraHealth
	// CountInterval is the interval camera vehicle counts are sent for
	// (default 5 min, whole minutes; negative: not sent). Central's
	// camera-counts rule compares them with the analyser's passes.
	CountInterval time.Duration
}

// health is the agent's heartbeat state.
type health struct {
	started    time.Time // set by Open, before the heartbeats start
	seq        atomic.Uint64
	lastRecord atomic.Int64 // unix ns
	records    atomic.Uint64
	flag       atomic.Value // plume.StatusFlag
	lastAudit  atomic.Int64
	auditFail  atomic.Bool

	mu          sync.Mutex
	ntp         *clock.Tracking
	ntpAt       time.Time
	configError string
	rejected    string
	applied     string // hash of the remote configuration running
}

// note records what the analyser sent, for heartbeats.
func (a *Agent) note(m analyser.Message) {
	h := &a.health
	h.lastRecord.Store(a.cfg.Now().UnixNano())
	h.records.Add(1)
	switch {
	case m.Status != nil:
		h.flag.Store(m.Status.Flag)
	case m.Audit != nil:
		h.lastAudit.Store(m.Audit.Time.UnixNano())
		h.auditFail.Store(!m.Audit.Passed)
	}
}

// clockOffset is the offset recorded in evidence: the larger in magnitude
// of the fresh measurements against central and against NTP, and which
// one it is ("" when there is none yet).
func (a *Agent) clockOffset() (time.Duration, string) {
	var off time.Duration
	src := ""
	if m := a.uplink.Clock(); m.Known {
		off, src = m.Offset, "central"
	}
	a.health.mu.Lock()
	ntp, at := a.health.ntp, a.health.ntpAt
	a.health.mu.Unlock()
	maxAge := a.cfg.Health.NTPMaxAge
	if maxAge <= 0 {
		maxAge = 5 * time.Minute
	}
	if ntp != nil && ntp.Synced() && a.cfg.Now().Sub(at) < maxAge && (src == "" || ntp.Offset.Abs() > off.Abs()) {
		off, src = ntp.Offset, "ntp"
	}
	return off, src
}

func (a *Agent) readNTP(ctx context.Context) {
	read := a.cfg.Health.NTP
	if read == nil {
		read = clock.Chrony{}.Read
	}
	t, err := read(ctx)
	if err != nil {
		if !errors.Is(err, clock.ErrNoChrony) {
			a.log.Warn("read chrony tracking", "err", err)
		}
		return
	}
	a.health.mu.Lock()
	a.health.ntp, a.health.ntpAt = &t, a.cfg.Now()
	a.health.mu.Unlock()
}

func (a *Agent) diskFree() (int64, bool) {
	if a.cfg.Health.DiskFree != nil {
		return a.cfg.Health.DiskFree()
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(a.cfg.Station.DataDir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}

// Heartbeat returns the station's health as the next heartbeat reports it.
func (a *Agent) Heartbeat() plume.Heartbeat {
	st := a.cfg.Station
	h := &a.health
	hb := plume.Heartbeat{Station: st.Station.Station, Seq: h.seq.Add(1), Time: a.cfg.Now().UTC(), Started: h.started.UTC(), Software: Version, ConfigHash: a.configHash()}
	h.mu.Lock()
	hb.ConfigError, hb.ConfigRejected = h.configError, h.rejected
	if h.ntp != nil {
		ms := h.ntp.Offset.Milliseconds()
		hb.Clock.NTPMS, hb.Clock.NTPSynced, hb.Clock.NTPReference = &ms, h.ntp.Synced(), h.ntp.Reference
	}
	h.mu.Unlock()
	as := a.analyserStats()
	hb.Analyser = plume.AnalyserHealth{Connected: as.Active > 0 || a.serial != nil && as.Connections > 0, Records: h.records.Load()}
	for _, n := range as.Malformed {
		hb.Analyser.Malformed += n
	}
	if ns := h.lastRecord.Load(); ns != 0 {
		hb.Analyser.LastRecord = time.Unix(0, ns).UTC()
	}
	if f, ok := h.flag.Load().(plume.StatusFlag); ok {
		hb.Analyser.Flag = string(f)
	}
	if ns := h.lastAudit.Load(); ns != 0 {
		hb.Analyser.LastAudit, hb.Analyser.AuditFail = time.Unix(0, ns).UTC(), h.auditFail.Load()
	}
	if f := a.cfg.Health.CameraHealth; f != nil {
		hb.Cameras = f()
	} else if cs, ok := a.CameraStats(); ok {
		for _, c := range cs.Cameras {
			hb.Cameras = append(hb.Cameras, plume.CameraHealth{Name: c.Name, Connected: c.Connected, FPS: c.FPS, Frozen: c.Frozen, Black: c.Black,
				Reconnects: c.Reconnects, LastFrame: c.LastFrame, LastError: c.LastError})
		}
	}
	free, ok := a.diskFree()
	hb.Disk = plume.DiskHealth{FreeBytes: free, Known: ok, MinFreeBytes: st.Spool.MinFreeBytes}
	ss := a.spool.Stats()
	hb.Spool = plume.SpoolHealth{QueuedEvidence: ss.QueuedEvidence, QueuedRecords: ss.QueuedRecords, DeadLetters: ss.DeadLetters, Bytes: ss.Bytes, FullRefusals: ss.FullRefusals,
		Folded: ss.RecordsCompacted, Healed: ss.ValuesHealed, Recovered: ss.RecordsRecovered, Rebuilt: ss.Rebuilt,
		MediaDamaged: ss.MediaDamaged, LastScrub: ss.LastScrub}
	if m := a.uplink.Clock(); m.Known {
		ms := m.Offset.Milliseconds()
		hb.Clock.CentralMS, hb.Clock.RoundTripMS = &ms, m.RoundTrip.Milliseconds()
	}
	off, src := a.clockOffset()
	hb.Clock.OffsetMS, hb.Clock.Source, hb.Clock.Known = off.Milliseconds(), src, src != ""
	return hb
}

func (a *Agent) configHash() string {
	a.health.mu.Lock()
	defer a.health.mu.Unlock()
	if a.health.applied != "" {
		return a.health.applied
	}
	return a.cfg.Station.Hash
}

// runHealth sends heartbeats until ctx ends, and applies a desired
// configuration central names in its reply.
func (a *Agent) runHealth(ctx context.Context) {
	iv := a.cfg.Health.Interval
	if iv == 0 {
		iv = time.Minute
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.readNTP(ctx)
		a.spoolCounts(ctx)
		a.scrub(ctx)
		hb := a.Heartbeat()
		reply, err := a.uplink.PutHealth(ctx, &hb)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("heartbeat not delivered", "err", err)
			}
		} else {
			if reply.State != "up" {
				a.log.Info("central judges the station", "state", reply.State, "reasons", reply.Reasons)
			}
			a.syncConfig(ctx, reply.ConfigHash)
		}
		t.Reset(iv)
	}
}

// Scrub cadence: every scrubEvery, the spool's values are checked (and
// healed) and up to scrubMediaBytes of queued media are hashed.
const (
	scrubEvery      = 10 * time.Minute
	scrubMediaBytes = 64 << 20
)

// scrub runs the spool's light background check when it is due; its
// results go out with the heartbeat.
func (a *Agent) scrub(ctx context.Context) {
	if last := a.spool.Stats().LastScrub; !last.IsZero() && a.cfg.Now().Sub(last) < scrubEvery {
		return
	}
	res, err := a.spool.Scrub(ctx, scrubMediaBytes)
	if err != nil {
		a.log.Warn("spool scrub", "err", err)
		return
	}
	if res.ValuesHealed > 0 || len(res.MediaDamaged) > 0 {
		a.log.Warn("spool scrub found damage", "values_healed", res.ValuesHealed, "media_damaged", res.MediaDamaged)
	}
}

// syncConfig fetches, checks and applies the desired configuration when
// central names one this station neither runs nor has rejected.
func (a *Agent) syncConfig(ctx context.Context, want string) {
	a.health.mu.Lock()
	skip := want == "" || want == a.health.rejected || want == a.health.applied
	a.health.mu.Unlock()
	if skip {
		return
	}
	rc, err := a.uplink.GetConfig(ctx)
	if err != nil {
		a.log.Warn("fetch desired configuration", "err", err)
		return
	}
	if err := a.applyConfig(rc.Body); err != nil {
		a.log.Error("desired configuration rejected; the last good one keeps running", "hash", rc.Hash, "err", err)
		a.health.mu.Lock()
		a.health.configError, a.health.rejected = plume.ErrorMessage(err), rc.Hash
		a.health.mu.Unlock()
		return
	}
	a.health.mu.Lock()
	a.health.configError, a.health.rejected, a.health.applied = "", "", rc.Hash
	a.health.mu.Unlock()
	a.log.Info("desired configuration applied", "version", rc.Version, "hash", rc.Hash)
}

// applyConfig validates a remote configuration, stores it atomically and
// switches capture to its limit profiles. Camera zones take effect when
// the cameras restart (the next agent start loads RemoteFile).
func (a *Agent) applyConfig(body []byte) error {
	if config.HashRemote(body) == "" {
		return errors.New("empty configuration")
	}
	next, err := config.ApplyRemote(a.cfg.Station, body)
	if err != nil {
		return err
	}
	if err := config.WriteRemote(a.cfg.Station.DataDir, body); err != nil {
		return plume.Errorf(plume.EINTERNAL, "store configuration: %v", err)
	}
	a.capture.SetProfiles(next.Profiles)
	return nil
}

// loadRemote applies the last good remote configuration at start-up; a
// file that no longer applies is set aside with the reason logged.
func (a *Agent) loadRemote() {
	path := filepath.Join(a.cfg.Station.DataDir, config.RemoteFile)
	body, err := os.ReadFile(path)
	if err != nil {
		return
	}
	next, err := config.ApplyRemote(a.cfg.Station, body)
	if err != nil {
		a.log.Error("stored remote configuration no longer applies; set aside", "err", err)
		_ = os.Rename(path, path+fmt.Sprintf(".rejected-%d", a.cfg.Now().Unix()))
		return
	}
	a.capture.SetProfiles(next.Profiles)
	a.health.applied = config.HashRemote(body)
}
