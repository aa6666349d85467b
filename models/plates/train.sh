#!/usr/bin/env bash
# Reproduces models/plates/plate-rec.onnx (and metrics.json, the parity
# fixture in testdata/plates/parity/) from nothing but Debian packages and
# ../shared/data/plates (the training splits of lprnet-crops and tollbooth;
# see MODEL_CARD.md).
#
#   models/plates/train.sh            render, train (resumes), export
#   models/plates/train.sh --members 6000   one member only; options: train.py --help
#
# Needs: python3-torch python3-torchvision python3-onnx python3-opencv
# python3-pil python3-numpy (deploy/bootstrap installs them), fonts-wqy-zenhei,
# fonts-noto-cjk. Progress goes to stdout; the work directory
# (~/.cache/plume-plates-3) holds the rendered set and each member's
# checkpoints, so running the command again after an interruption resumes
# where it stopped. About 95 minutes on 2 idle CPU cores (rendering ~4;
# each member: mining ~2, stage 2 ~8, and stage 1 ~16, ~24 and ~20 for
# members 1, 2 and 3; export ~1); longer on cores shared with other builds.
set -euo pipefail
cd "$(dirname "$0")"
exec nice -n 10 /usr/bin/python3 -u train.py "$@"
