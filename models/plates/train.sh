#!/usr/bin/env bash
# Reproduces models/plates/plate-rec.onnx (plate-rec-4; and metrics.json, the
# parity fixture in testdata/plates/parity/) from nothing but Debian
# packages and ../shared/data/plates (see MODEL_CARD.md for exactly what each
# step reads).
#
#   models/plates/train.sh                 prepare, render, train (resumes), export
#   PYTHON=python3 models/plates/train.sh --device cuda --procs 15
#                                          the same on the GPU machine; options: train.py --help
#
# Steps, each resumable (run the command again after an interruption):
#   1. prepare.py packs the real data and the font glyphs into WORK/real.npz
#      and WORK/fonts.npz (about 1 min);
#   2. train.py renders two pools of 64,000 plates (font glyphs; real
#      character crops from ../shared/data/plates/chars) in WORK/font-*.npz
#      and WORK/glyph-*.npz, then trains one network for 16,000 steps of 128,
#      checkpointing WORK/run-plate-rec-4/ckpt.pt every 200 steps;
#   3. train.py --export writes the ONNX file, checks it in OpenCV DNN
#      against PyTorch, and writes the parity fixture and metrics.json.
# WORK is ~/.cache/plume-plates-4. Progress goes to stdout. On 2 CPU cores
# rendering takes about 9 minutes and training about 90 (estimated from the
# measured rate of the previous recipe); on the GPU machine, 35 s and 4 min.
#
# Needs: python3-torch python3-torchvision python3-onnx python3-opencv
# python3-pil python3-numpy (deploy/bootstrap installs them), fonts-wqy-zenhei,
# fonts-noto-cjk, fonts-dejavu-core.
set -euo pipefail
cd "$(dirname "$0")"
py="nice -n 10 ${PYTHON:-/usr/bin/python3} -u"  # PYTHON=python3 where torch is elsewhere (the GPU machine)
$py prepare.py
$py train.py "$@"
$py train.py --export plate-rec-4
