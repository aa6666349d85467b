#!/usr/bin/env bash
# Reproduces models/plates/plate-rec.onnx (and metrics.json, the parity
# fixture in testdata/plates/parity/) from nothing but Debian packages and
# ../shared/data/plates/lprnet-crops (its training split; see MODEL_CARD.md).
#
#   models/plates/train.sh            render, train (resumes), export
#   models/plates/train.sh --steps N  other options: see train.py --help
#
# Needs: python3-torch python3-torchvision python3-onnx python3-opencv
# python3-pil python3-numpy (deploy/bootstrap installs them), fonts-wqy-zenhei,
# fonts-noto-cjk. Progress goes to stdout; the work directory
# (~/.cache/plume-plates-2) holds the rendered set and the checkpoints, so
# running the command again after an interruption resumes where it stopped.
# About 30 minutes on 2 idle CPU cores (rendering ~4, stage 1 ~16, stage 2
# ~8, export ~1); longer on cores shared with other builds.
set -euo pipefail
cd "$(dirname "$0")"
exec nice -n 10 /usr/bin/python3 -u train.py "$@"
