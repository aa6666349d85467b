#!/usr/bin/env bash
# Reproduces models/smoke/smoke-cnn.onnx, metrics.json and the parity
# fixture (parity/) from Debian packages and ../shared/data.
#
#   models/smoke/train.sh                  dump candidates, cv + cross + final, export
#   models/smoke/train.sh --splits final   other options: see train.py --help
#
# Needs: golang, libopencv-dev (for the Go candidate dump), python3-torch,
# python3-onnx, python3-opencv, python3-numpy. Progress goes to stdout. The
# work directory (~/.cache/plume-smoke/v2.0, or $PLUME_SMOKE_WORK; one per
# model version, so a stale cache is never resumed) keeps the
# patch cache and one checkpoint per run after every epoch, so running the
# command again after an interruption resumes where it stopped; delete it
# to start afresh. 11 models (5 grouped-CV folds, the final one, 5 leave-one-source-out;
# one net each, the final two), 4 epochs each: about 15 minutes on 2 idle
# CPU cores, 30-40 on busy ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${PLUME_SMOKE_WORK:-$HOME/.cache/plume-smoke/v2.0}"
mkdir -p "$work"
if [ ! -s "$work/cands.jsonl" ]; then
	echo "dumping the still detector's candidates to $work/cands.jsonl"
	SMOKE_CANDIDATES="$work/cands.jsonl.tmp" nice -n 10 go test ./edge/vision/ -run TestSmokeCandidateDump -count=1 -v | grep -E 'stills|PASS|FAIL|ok'
	mv "$work/cands.jsonl.tmp" "$work/cands.jsonl"
fi
exec nice -n 10 /usr/bin/python3 -u models/smoke/train.py --cands "$work/cands.jsonl" --work "$work" --epochs 4 --per-epoch 1536 "$@"
