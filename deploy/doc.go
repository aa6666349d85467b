// Package deploy holds Plume's installation and deployment files: the
// bootstrap script that installs system packages idempotently, the demo and
// test entry points named in the README, and (later) systemd units and
// central's compose and Kubernetes files. Its Go tests check those files.
package deploy
