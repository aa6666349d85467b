package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/plume-emissions/plume"
	"github.com/plume-emissions/plume/central/auth"
	"github.com/plume-emissions/plume/central/sqlstore"
	"github.com/plume-emissions/plume/central/store"
)

// runOfficer changes an officer from the command line, for when no
// administrator can sign in (a lost password, a rogue administrator to
// disable): on a stopped central's data directory, or on the shared
// PostgreSQL store while replicas run. The change is audited as
// "plume-central officer".
func runOfficer(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("officer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./central-data", "central's data directory (central must be stopped)")
	username := fs.String("username", "", "the officer")
	action := fs.String("do", "", "disable, enable, revoke-all (sessions and tokens), set-password (from $PLUME_OFFICER_PASSWORD or stdin), revoke-token")
	token := fs.String("token", "", "with -do revoke-token: the token's ID (tok_…)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *username == "" || *action == "" {
		return errors.New("officer: -username and -do are required")
	}
	arg := *token
	if *action == auth.ActionSetPassword {
		arg = getenv("PLUME_OFFICER_PASSWORD")
		if arg == "" {
			line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
			if err != nil && line == "" {
				return errors.New("officer: give the new password in PLUME_OFFICER_PASSWORD or on stdin")
			}
			arg = strings.TrimRight(line, "\r\n")
		}
	}
	var err error
	if dsn := getenv(EnvStoreDSN); dsn != "" {
		var st *sqlstore.Store
		if st, err = sqlstore.Open(ctx, dsn, sqlstore.Options{}); err == nil {
			_, err = auth.ChangeOfficer(ctx, st, nil, *username, *action, arg, "", time.Now())
			st.Close()
		}
	} else {
		var st *store.Store
		if st, err = store.Open(filepath.Join(*data, store.FileName), store.Options{LockTimeout: 500 * time.Millisecond}); err == nil {
			_, err = auth.ChangeOfficer(ctx, st, nil, *username, *action, arg, "", time.Now())
			st.Close()
		}
	}
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("officer: the data directory %s is in use by a running central; stop it first (or use the Officers page)", *data)
	} else if err != nil {
		return fmt.Errorf("officer: %s", plume.ErrorMessage(err)+detail(err))
	}
	fmt.Fprintf(stdout, "officer %s: %s done\n", *username, *action)
	return nil
}
