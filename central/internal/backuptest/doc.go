// Package backuptest tests deploy/backup-central end to end against a real
// embedded central: it starts central in-process, ingests signed evidence,
// backs the data directory up with the script (stopping central through
// the script's --stop hook), restores into a new directory, reopens central
// there and checks every case, custody log, media and package hash.
//
// The test lives under central/ because it needs central/internal/fixture;
// the script it tests lives in deploy/.
package backuptest
