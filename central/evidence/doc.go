// Package evidence builds and verifies Plume evidence packages: one
// BagIt-style zip (RFC 8493) per case, which central signs and hands to the
// traffic police.
//
// # Layout
//
// Every entry lives under one top-level directory named by the case number:
//
//	PLM-20261128-000042/
//	  bagit.txt                 BagIt 1.0 declaration
//	  bag-info.txt              Source-Organization, Bagging-Date, Payload-Oxum,
//	                            External-Identifier (case number), Plume-* fields
//	  manifest-sha256.txt       SHA-256 of every file under data/
//	  custody.jsonl             chain of custody, hash-chained (central.CustodyEntry)
//	  central.pub               central's Ed25519 public key (base64)
//	  tagmanifest-sha256.txt    SHA-256 of the tag files above
//	  signature-central.sig     central's Ed25519 signature of tagmanifest-sha256.txt (base64)
//	  data/case.json            the case, pass, verdict, station and media (schema plume.case/v1)
//	  data/manifest.json        the station-signed manifest, byte for byte
//	  data/manifest.sig         the station's capture signature of manifest.json (base64)
//	  data/station.pub          the station key that verified it (base64)
//	  data/evidence-sheet.html  the printable evidence sheet
//	  data/media/<name>         every media item listed in the manifest
//
// # Trust
//
// Central's signature covers the tag manifest, which covers the payload
// manifest and custody log, which cover every payload byte. Independently,
// the station's capture signature covers manifest.json, which lists every
// media item's SHA-256. Verify checks both chains offline; pin central's key
// (VerifyOptions.CentralKey, or a Keyring of the keys that were valid) to
// rule out a package re-signed by someone else: without a pin the report
// says the signer is unknown (Report.Pinned).
//
// # Safety
//
// Verify reads untrusted zips: it rejects unsafe or duplicate names, caps the
// number of entries and the bytes read per entry and in all, and never
// extracts anything to disk.
package evidence
