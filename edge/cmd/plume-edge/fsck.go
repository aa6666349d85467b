package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/plume-emissions/plume/edge/spool"
)

// runFsck checks a stopped agent's spool offline. DATA is the agent's data
// directory (holding spool/) or the spool directory itself.
func runFsck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plume-edge fsck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: plume-edge fsck DATA\n\nChecks the spool of a stopped agent: database pages and value checksums,\nmedia hashes, manifests against their files, record segments.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	dir := fs.Arg(0)
	if _, err := os.Stat(filepath.Join(dir, "spool.db")); errors.Is(err, os.ErrNotExist) {
		dir = filepath.Join(dir, "spool")
	}
	rep, err := spool.Fsck(ctx, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "spool %s: %d database values, %d queued evidence, %d queued records, %d media files, %d manifest files, %d record frames\n",
		rep.Dir, rep.Values, rep.QueuedEvidence, rep.QueuedRecords, rep.Media, rep.Manifests, rep.Records)
	if rep.OK() {
		fmt.Fprintln(stdout, "ok: no problems found")
		return nil
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, "PROBLEM", p)
	}
	return fmt.Errorf("fsck: %d problem(s) in %s", len(rep.Problems), rep.Dir)
}
