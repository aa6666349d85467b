// Command plume-edge is the roadside edge agent.
//
//	plume-edge run [-config FILE] [-data DIR]   run the agent until SIGINT/SIGTERM
//	plume-edge check-config FILE...            check station files and what they reference
//	plume-edge plate IMAGE...                  read licence plates in images, as JSON
//	plume-edge eval-plates DIR...              plate accuracy over labelled folders
//	plume-edge smoke IMAGE...                  black smoke and Ringelmann grade in stills, as JSON
//	plume-edge eval-smoke ...                  smoke accuracy on stills and generated video
//	plume-edge fsck DATA                       check a stopped agent's spool offline
//	plume-edge keygen -out DIR                 generate the station's key; print its public key
//
// Without -config, run uses the embedded demo station file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/edge/agent"
	"github.com/plume-emissions/plume/edge/analyser"
	"github.com/plume-emissions/plume/edge/config"
	"github.com/plume-emissions/plume/edge/systemd"
	"github.com/plume-emissions/plume/edge/vision"
)

func main() {
	ctx, stop := signalContext()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "plume-edge:", err)
		os.Exit(1)
	}
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

const usage = `usage: plume-edge COMMAND [flags]

commands:
  run            run the edge agent (until SIGINT or SIGTERM)
  check-config   check station files and the profiles they reference
  plate          read licence plates in images (JSON)
  eval-plates    measure plate reading on labelled folders
  smoke          detect black smoke and grade it in still images (JSON)
  eval-smoke     measure smoke detection on labelled stills and generated video
  fsck           check a stopped agent's spool (exit status 1 on problems)
  keygen         generate the station's key (-out DIR) and print its public key for enrolment
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		m := NewMain(stdout, stderr)
		if err := m.ParseFlags(args[1:]); err != nil {
			return err
		}
		if err := m.Run(ctx); err != nil {
			return err
		}
		// Under systemd (Type=notify, WatchdogSec) say when we are ready and
		// feed the watchdog while the agent is healthy.
		sd := systemd.FromEnv()
		sd.Ready()
		go sd.RunWatchdog(ctx, m.logger, m.Agent.Healthy)
		<-ctx.Done()
		sd.Stopping()
		return m.Close()
	case "check-config":
		return checkConfig(args[1:], stdout)
	case "plate":
		return runPlate(ctx, args[1:], stdout, stderr)
	case "eval-plates":
		return runPlateEval(ctx, args[1:], stdout, stderr)
	case "smoke":
		return runSmoke(ctx, args[1:], stdout, stderr)
	case "eval-smoke":
		return runSmokeEval(ctx, args[1:], stdout, stderr)
	case "fsck":
		return runFsck(ctx, args[1:], stdout, stderr)
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// Main is the edge agent program: flags, then Run, then Close. Tests start
// it in-process.
type Main struct {
	ConfigPath string
	DataDir    string
	PlateModel string
	LogLevel   slog.Level

	Agent  *agent.Agent
	plates *vision.Reader
	logger *slog.Logger
	stdout io.Writer
	stderr io.Writer
}

// NewMain returns a Main with default settings.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr}
}

// ParseFlags parses the run command's flags.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("plume-edge run", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	fs.StringVar(&m.ConfigPath, "config", "", "station file (default: the embedded demo station)")
	fs.StringVar(&m.DataDir, "data", "", "override the station file's data_dir")
	fs.StringVar(&m.PlateModel, "plate-model", "", "plate recogniser ONNX file (default: $PLUME_PLATE_MODEL or "+vision.DefaultPlateModel+")")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return m.LogLevel.UnmarshalText([]byte(*level))
}

// Run loads the configuration and enrollment and starts the agent.
func (m *Main) Run(ctx context.Context) error {
	var (
		st  *config.Loaded
		err error
	)
	if m.ConfigPath == "" {
		st, err = config.LoadEmbedded(config.Embedded)
	} else {
		st, err = config.Load(m.ConfigPath)
	}
	if err != nil {
		return err
	}
	if m.DataDir != "" {
		st.DataDir = m.DataDir
	}
	b, err := os.ReadFile(st.EnrollmentPath())
	if err != nil {
		return fmt.Errorf("read enrollment (create it with plume-central enroll): %w", err)
	}
	enr, err := plume.DecodeEnrollment(b)
	if err != nil {
		return fmt.Errorf("%s: %w", st.EnrollmentPath(), err)
	}
	if err := useStationKey(st, enr); err != nil {
		return err
	}
	m.logger = slog.New(slog.NewTextHandler(m.stderr, &slog.HandlerOptions{Level: m.LogLevel}))
	cfg := agent.Config{Station: st, Enrollment: enr, Logger: m.logger}
	if l := st.Live; l.Enabled {
		cfg.Live = agent.LiveConfig{Enabled: true, UDPPort: l.UDPPort, RelayOnly: l.RelayOnly, BitrateKbps: l.BitrateKbps}
		if len(l.STUN) > 0 {
			cfg.Live.ICEServers = []plume.LiveICEServer{{URLs: l.STUN}}
		}
	}
	if len(st.Cameras) > 0 {
		// A station with cameras reads plates; without the model it still
		// runs (smoke and remote sensing), and says so.
		r, err := vision.Open(vision.FindPlateModel(m.PlateModel), vision.Options{}, m.logger.With("component", "plates"))
		if err != nil {
			m.logger.Error("plate reader unavailable; cameras run without plate reading", "err", err)
		} else {
			m.plates, cfg.Cameras.Plates = r, r
		}
	}
	m.Agent, err = agent.Open(ctx, cfg)
	return err
}

// Close drains and stops the agent.
func (m *Main) Close() error {
	var err error
	if m.Agent != nil {
		err = m.Agent.Close()
	}
	if m.plates != nil {
		err = errors.Join(err, m.plates.Close())
	}
	return err
}

// checkConfig loads each station file with everything it references and
// reports what it found.
func checkConfig(files []string, stdout io.Writer) error {
	if len(files) == 0 {
		return errors.New("check-config: name at least one station file")
	}
	var failed int
	for _, f := range files {
		st, err := config.Load(f)
		if err == nil {
			_, err = analyser.DecodeProfile(st.DeviceProfile)
		}
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", f, err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "ok   %s: station %s, analyser %s/%s, %d limit profile(s), config hash %.12s\n",
			f, st.Station.Station, st.Analyser.Protocol, st.Analyser.Transport, len(st.Profiles), st.Hash)
		for _, fuel := range slices.Sorted(maps.Keys(st.Profiles)) {
			p := st.Profiles[fuel]
			prov := ""
			if p.Provisional {
				prov = " (provisional)"
			}
			fmt.Fprintf(stdout, "     %s: %s %s, %s%s\n", fuel, p.Standard, p.Ref(), p.Title, prov)
		}
	}
	if failed > 0 {
		return fmt.Errorf("check-config: %d of %d file(s) failed", failed, len(files))
	}
	return nil
}
