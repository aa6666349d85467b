// Command plume-central is Plume's central service.
//
//	plume-central serve  [-addr 127.0.0.1:8080] [-data ./central-data]
//	plume-central enroll -data DIR -station ID [-name N] [-public-key BASE64] [-lat DEG -lon DEG] -central-url URL -out FILE
//	plume-central verify (-central-key BASE64 | -central-keys FILE) PACKAGE.zip
//	plume-central key -data DIR
//	plume-central officer -data DIR -username U -do disable|enable|revoke-all|set-password|revoke-token [-token ID]
//	plume-central create-admin -data DIR -username U [-name N]   (password from PLUME_ADMIN_PASSWORD or stdin)
//	plume-central migrate -data DIR [-to-dsn DSN]   (to $PLUME_STORE_DSN and $PLUME_BLOB_*)
//
// serve runs central until SIGINT or SIGTERM, then drains and exits. By
// default it keeps everything in the data directory (bbolt and files).
// For scale-out, PLUME_STORE_DSN puts the metadata in PostgreSQL,
// PLUME_BLOB_ENDPOINT and the other PLUME_BLOB_* variables (objectstore.Env)
// put media and packages in MinIO, and PLUME_CENTRAL_KEY_FILE gives every
// replica the same key; enroll and create-admin then work on the shared
// store while replicas run. migrate copies an embedded central into
// PostgreSQL and MinIO and verifies every hash.
// enroll works on a stopped central's data directory and writes the
// station's enrollment file; with -public-key (the key plume-edge keygen
// made on the station) the file holds no private key, without it central
// generates one into the file and warns. verify checks an evidence package offline and prints every check.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/evidence"
	"github.com/plume-emissions/plume/central/server"
	"github.com/plume-emissions/plume/central/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plume-central:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  plume-central serve  [-addr 127.0.0.1:8080] [-data ./central-data]
  plume-central enroll -data DIR -station ID [-name N] [-public-key BASE64] [-lat DEG -lon DEG] -central-url URL -out FILE
  plume-central verify (-central-key BASE64 | -central-keys FILE) PACKAGE.zip
  plume-central key -data DIR   (central's public key and fingerprint, for the police to pin)
  plume-central officer -data DIR -username U -do disable|enable|revoke-all|set-password|revoke-token [-token ID]
  plume-central create-admin -data DIR -username U [-name N]   (password: $PLUME_ADMIN_PASSWORD or first line of stdin)
  plume-central migrate -data DIR [-to-dsn DSN]   (target: $PLUME_STORE_DSN and $PLUME_BLOB_*; central stopped)
`

// run runs one subcommand. serve returns when ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "enroll":
		return runEnroll(ctx, args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "key":
		return runKey(args[1:], os.Getenv, stdout, stderr)
	case "officer":
		return runOfficer(ctx, args[1:], os.Getenv, os.Stdin, stdout, stderr)
	case "create-admin":
		return runCreateAdmin(ctx, args[1:], os.Stdin, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], os.Getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// Main is a running "serve", for tests: Run starts it, Close stops it.
type Main struct {
	Config server.Config
	Server *server.Server
	// Getenv reads the scale-out settings (PLUME_STORE_DSN, PLUME_BLOB_*,
	// PLUME_CENTRAL_KEY_FILE); default os.Getenv.
	Getenv func(string) string
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main { return &Main{Config: server.NewConfig(), Getenv: os.Getenv} }

// ParseFlags parses serve's flags into m.Config.
func (m *Main) ParseFlags(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&m.Config.Addr, "addr", m.Config.Addr, "listen address")
	fs.StringVar(&m.Config.DataDir, "data", m.Config.DataDir, "data directory")
	fs.DurationVar(&m.Config.AllowedSkew, "skew", m.Config.AllowedSkew, "allowed station clock skew")
	fs.StringVar(&m.Config.Organization, "org", m.Config.Organization, "Source-Organization of evidence packages")
	fs.BoolVar(&m.Config.SecondReview, "second-review", m.Config.SecondReview, "approvals wait for a supervisor's second review")
	fs.StringVar(&m.Config.SheetFont, "sheet-font", m.Config.SheetFont, "TrueType/TTC font with CJK glyphs for the PDF evidence sheet (\"none\": no PDF)")
	fs.BoolVar(&m.Config.SecureCookies, "secure-cookies", m.Config.SecureCookies, "always mark session cookies Secure")
	fs.Func("trusted-proxy", "address or CIDR of a TLS-terminating reverse proxy whose X-Forwarded-Proto is believed (repeat for several)", func(s string) error {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return fmt.Errorf("not an address or CIDR: %w", err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		m.Config.TrustedProxies = append(m.Config.TrustedProxies, p)
		return nil
	})
	fs.StringVar(&m.Config.TLSCert, "tls-cert", m.Config.TLSCert, "serve HTTPS with this certificate (PEM; with -tls-key)")
	fs.StringVar(&m.Config.TLSKey, "tls-key", m.Config.TLSKey, "the certificate's private key (PEM)")
	fs.StringVar(&m.Config.PoliceURL, "police-url", m.Config.PoliceURL, "traffic police push base URL (default: folder drop)")
	fs.StringVar(&m.Config.DropDir, "drop-dir", m.Config.DropDir, "folder-drop directory (default DATA/police-drop)")
	fs.StringVar(&m.Config.PublicURL, "public-url", m.Config.PublicURL, "URL the police reach central at, for the callback")
	fs.DurationVar(&m.Config.JobLease, "job-lease", m.Config.JobLease, "how long a replica holds a package build or export before another may take it over (default 10m builds, 5m exports)")
	secretFile := fs.String("police-secret-file", "", "file holding the police exchange shared secret")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if *secretFile != "" {
		secret, err := readPoliceSecret(*secretFile)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		m.Config.PoliceSecret = secret
	}
	return nil
}

// MinPoliceSecret is the shortest police exchange secret accepted
// (POLICE-CONTRACT.md: at least 32 random bytes).
const MinPoliceSecret = 32

// readPoliceSecret reads the police exchange secret, refusing a file that
// others may read and a secret too short to resist guessing.
func readPoliceSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("police secret file %s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < MinPoliceSecret {
		return nil, fmt.Errorf("police secret in %s is %d bytes, shorter than %d", path, len(secret), MinPoliceSecret)
	}
	return secret, nil
}

// Run opens the stores the environment names, then the server.
func (m *Main) Run(ctx context.Context) error {
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	if err := openBackends(ctx, &m.Config, m.Getenv); err != nil {
		return err
	}
	s, err := server.Open(ctx, m.Config)
	if err != nil {
		return err
	}
	m.Server = s
	return nil
}

// Close stops the server.
func (m *Main) Close() error {
	if m.Server == nil {
		return nil
	}
	return m.Server.Close()
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain()
	if err := m.ParseFlags(args, stderr); err != nil {
		return err
	}
	m.Config.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := m.Run(ctx); errors.Is(err, store.ErrCorrupt) {
		return fmt.Errorf("%w\n%s is damaged and was left as it is: move it aside and restore the last backup of the data directory", err, filepath.Join(m.Config.DataDir, store.FileName))
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "plume-central listening on %s (data %s, central key %s)\n", m.Server.URL(), m.Config.DataDir, plume.EncodeKey(m.Server.PublicKey()))
	<-ctx.Done()
	fmt.Fprintln(stdout, "plume-central: shutting down")
	return m.Close()
}

func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./central-data", "central's data directory (central must be stopped)")
	station := fs.String("station", "", "station ID, e.g. GD-SZ-0001")
	name := fs.String("name", "", "station name")
	pubkey := fs.String("public-key", "", "the station's Ed25519 public key, base64, as plume-edge keygen prints it (without it central generates the key: not recommended)")
	centralURL := fs.String("central-url", "", "the URL stations reach central at")
	out := fs.String("out", "", "enrollment file to write")
	lat := fs.Float64("lat", 0, "station latitude, WGS 84 degrees (for the cloned-plate speed check)")
	lon := fs.Float64("lon", 0, "station longitude, WGS 84 degrees")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *station == "" || *centralURL == "" || *out == "" {
		return errors.New("enroll: -station, -central-url and -out are required")
	}
	var opts []server.EnrollOption
	if *lat != 0 || *lon != 0 {
		opts = append(opts, server.AtLocation(*lat, *lon))
	}
	var pub ed25519.PublicKey
	if *pubkey != "" {
		b, err := base64.StdEncoding.DecodeString(*pubkey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return fmt.Errorf("enroll: -public-key must be base64 of a %d-byte Ed25519 public key", ed25519.PublicKeySize)
		}
		pub = b
	}
	var e *plume.Enrollment
	var err error
	if os.Getenv(EnvStoreDSN) != "" {
		// Scale-out: enroll in the shared store while replicas run.
		e, err = enrollShared(ctx, os.Getenv, *data, *centralURL, plume.StationID(*station), *name, pub, opts...)
	} else {
		e, err = server.EnrollDataDir(ctx, *data, *centralURL, plume.StationID(*station), *name, pub, time.Now(), opts...)
	}
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("enroll: the data directory %s is in use by a running central; stop it first", *data)
	} else if err != nil {
		return fmt.Errorf("enroll: %s", plume.ErrorMessage(err)+detail(err))
	}
	b, err := server.EncodeEnrollment(e)
	if err != nil {
		return err
	}
	// The file may hold the station's private key.
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	fmt.Fprintf(stdout, "enrolled station %s; enrollment written to %s\n", e.Station, *out)
	if e.StationKey != "" {
		fmt.Fprintf(stderr, "warning: central generated station %s's private key and wrote it into %s; "+
			"the documented way is plume-edge keygen on the station and enroll -public-key\n", e.Station, *out)
	}
	return nil
}

func runCreateAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("create-admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./central-data", "central's data directory (central must be stopped)")
	username := fs.String("username", "", "the administrator's username")
	name := fs.String("name", "Administrator", "the administrator's name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *username == "" {
		return errors.New("create-admin: -username is required")
	}
	password := os.Getenv("PLUME_ADMIN_PASSWORD")
	if password == "" {
		line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
		if err != nil && line == "" {
			return errors.New("create-admin: give the password in PLUME_ADMIN_PASSWORD or on stdin")
		}
		password = strings.TrimRight(line, "\r\n")
	}
	var err error
	if os.Getenv(EnvStoreDSN) != "" {
		err = createAdminShared(ctx, os.Getenv, *username, *name, password)
	} else {
		err = server.CreateAdminDataDir(ctx, *data, *username, *name, password, time.Now())
	}
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("create-admin: the data directory %s is in use by a running central; stop it first (or add officers on the admin page)", *data)
	} else if err != nil {
		return fmt.Errorf("create-admin: %s", plume.ErrorMessage(err)+detail(err))
	}
	fmt.Fprintf(stdout, "administrator %s created; sign in at central's /login\n", *username)
	return nil
}

// detail adds the raw error for errors without a plume code, since the
// operator running the command needs it.
func detail(err error) string {
	if plume.ErrorCode(err) == plume.EINTERNAL {
		return ": " + err.Error()
	}
	return ""
}

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts evidence.VerifyOptions
	fs.Func("central-key", "pin central's Ed25519 public key, base64 (repeat for several)", func(s string) error {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return fmt.Errorf("not base64 of a %d-byte Ed25519 public key", ed25519.PublicKeySize)
		}
		opts.Keyring = append(opts.Keyring, evidence.TrustedKey{Key: b})
		return nil
	})
	keyring := fs.String("central-keys", "", "pin the keys of a keyring file: KEY [FROM [UNTIL]] a line (POLICE-CONTRACT.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("verify: give exactly one PACKAGE.zip")
	}
	if *keyring != "" {
		f, err := os.Open(*keyring)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		ring, err := evidence.ParseKeyring(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("verify: %s: %w", *keyring, err)
		}
		opts.Keyring = append(opts.Keyring, ring...)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	rep, err := evidence.Verify(f, fi.Size(), opts)
	fmt.Fprint(stdout, rep)
	if err != nil {
		return err
	}
	if !rep.Pinned {
		// Anyone can re-sign a changed package with a fresh key; only a
		// key pinned beforehand says who signed it.
		fmt.Fprintf(stdout, "SIGNER UNKNOWN: package %s is signed by central key %s, which is not pinned\n", rep.CaseNumber, rep.CentralKey)
		return fmt.Errorf("verify: signer unknown (%s): pin central's key with -central-key or -central-keys; without it a forged package verifies too", rep.CentralKey)
	}
	fmt.Fprintf(stdout, "package %s verifies, signed by pinned central key %s\n", rep.CaseNumber, rep.CentralKey)
	return nil
}

// runKey prints central's public key and its fingerprint, for the police
// to pin (POLICE-CONTRACT.md, "Central's signing key"). It reads the
// shared key file (PLUME_CENTRAL_KEY_FILE) or DATA/central.key and never
// creates one.
func runKey(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./central-data", "data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := getenv(EnvKeyFile)
	if path == "" {
		path = filepath.Join(*data, server.KeyFile)
	}
	key, err := loadKey(path)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(stdout, "central key  %s\nfingerprint  %s\n", plume.EncodeKey(pub), evidence.Fingerprint(pub))
	return nil
}
