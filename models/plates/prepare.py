"""Packs the real training data of the plate recogniser into WORK/real.npz.

Everything the trainer needs from ../shared/data/plates goes into one file,
so that training can run on a machine that has neither the data folder nor
the Debian fonts (the GPU box), and so that every split is decided here,
once:

- font glyph masks (render.save_font_glyphs): WORK/fonts.npz;
- real character crops (chars/): tight masks per character, split into five
  folds by crc32(file name) % 5; fold 0 is held out (per-province accuracy
  in evaluate.py), folds 1-4 are drawn into rendered plates;
- lprnet-crops: the model input of every crop, training split (crc32 % 10
  >= 3) and held-out split (< 3), as in train.py before;
- tollbooth: the plate quads of the training split (crc32 % 10 >= 5) listed
  in tollbooth-quads.csv (mined once with mine.py; see MODEL_CARD.md), each
  rectified with corner jitter JITTERS times.

    /usr/bin/python3 prepare.py [--work DIR] [--data DIR]
"""

import argparse
import csv
import glob
import os
import random
import time
import zlib

import cv2
import numpy as np

import render

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
QUADS = os.path.join(HERE, "tollbooth-quads.csv")
JITTERS = 12


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def glyph_fold(name):
    return zlib.crc32(name.encode()) % 5


def read_image(path, flags=cv2.IMREAD_COLOR):
    return cv2.imdecode(np.fromfile(path, np.uint8), flags)


def pack_chars(data):
    """Returns (masks, chars, folds): tight masks as one padded array."""
    masks, chars, folds = [], [], []
    for d in sorted(glob.glob(os.path.join(data, "chars", "*"))):
        ch = os.path.basename(d)
        if ch not in render.CHARS:
            continue
        for f in sorted(glob.glob(os.path.join(d, "*"))):
            im = read_image(f, cv2.IMREAD_GRAYSCALE)
            if im is None or im.shape != (20, 20):
                continue
            if render.real_mask(im) is None:
                continue
            masks.append(im)
            chars.append(ch)
            folds.append(glyph_fold(os.path.basename(f)))
    return np.stack(masks), np.array(chars), np.array(folds, np.int8)


def pack_lprnet(data):
    out = {"train": ([], []), "held": ([], [])}
    for f in sorted(glob.glob(os.path.join(data, "lprnet-crops", "*.jpg"))):
        name = os.path.basename(f)
        text = os.path.splitext(name)[0]
        if any(c not in render.CHARS for c in text):
            continue
        img = read_image(f)
        if img is None:
            continue
        part = "held" if zlib.crc32(name.encode()) % 10 < 3 else "train"
        out[part][0].append(render.model_input(img, False))
        out[part][1].append(text)
    return out


def pack_tollbooth(data, rng):
    """Jittered model inputs of the listed training-split quads."""
    import mine  # cv2 and numpy only at this point; torch is not needed

    imgs, texts = [], []
    if not os.path.exists(QUADS):
        log("no %s: no tollbooth plates" % QUADS)
        return imgs, texts
    with open(QUADS, newline="") as f:
        for row in csv.DictReader(f):
            if mine.tollbooth_heldout(row["file"]):
                raise SystemExit("tollbooth-quads.csv lists a held-out file: %s" % row["file"])
            path = os.path.join(data, "tollbooth", row["file"])
            img = read_image(path)
            if img is None:
                log("skipped (unreadable): %s" % path)
                continue
            q = np.float32([float(v) for v in row["quad"].split()]).reshape(4, 2)
            sample = (img, q, row["double"] == "1", row["text"])
            for _ in range(JITTERS):
                x, t = mine.jittered(sample, rng)
                imgs.append(x)
                texts.append(t)
    return imgs, texts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/plume-plates-4"))
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "plates"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    out = os.path.join(args.work, "real.npz")
    if os.path.exists(out) and os.path.exists(os.path.join(args.work, "fonts.npz")):
        log("prepared already: %s" % out)
        return
    render.save_font_glyphs(os.path.join(args.work, "fonts.npz"))
    log("font glyphs written")
    masks, chars, folds = pack_chars(args.data)
    log("character crops: %d (%d held out in fold 0)" % (len(chars), int((folds == 0).sum())))
    lpr = pack_lprnet(args.data)
    log("lprnet-crops: %d train, %d held out" % (len(lpr["train"][1]), len(lpr["held"][1])))
    timgs, ttexts = pack_tollbooth(args.data, random.Random(5))
    log("tollbooth: %d jittered inputs of %d plates" % (len(ttexts), len(ttexts) // JITTERS))
    empty = np.zeros((0, render.IN_H, render.IN_W, 3), np.uint8)
    np.savez_compressed(
        out + ".tmp.npz",
        glyph_masks=masks, glyph_chars=chars, glyph_folds=folds,
        lpr_train=np.stack(lpr["train"][0]) if lpr["train"][0] else empty, lpr_train_texts=np.array(lpr["train"][1]),
        lpr_held=np.stack(lpr["held"][0]) if lpr["held"][0] else empty, lpr_held_texts=np.array(lpr["held"][1]),
        toll=np.stack(timgs) if timgs else empty, toll_texts=np.array(ttexts),
    )
    os.replace(out + ".tmp.npz", out)
    log("wrote %s (%.1f MB)" % (out, os.path.getsize(out) / 1e6))


if __name__ == "__main__":
    main()
