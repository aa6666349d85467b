// Package deploy holds Plume's installation and deployment files: the
// bootstrap script that installs system packages idempotently, the demo and
// test entry points named in the README, the edge's hardened systemd unit
// (systemd/), central's compose file (compose/) and Kubernetes manifests
// (k8s/), and the embedded central's backup script (backup-central). Its Go
// tests decode and check every one of those files, so the examples cannot
// drift from what Plume reads. README.md in this directory documents them.
package deploy
