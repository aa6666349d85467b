"""Writes synthetic 1920x1080 scenes with one rendered plate each.

    /usr/bin/python3 models/plates/make_fixtures.py
        the Go test fixtures: testdata/plates/scenes/ (four clean scenes and
        scenes.json with the plate text, colour, double-row flag, corners)
    /usr/bin/python3 models/plates/make_fixtures.py --eval-set DIR [--n 60]
        a rendered evaluation set for every plate kind, DIR/<kind>/<text>.jpg
        (the file name is the label, as plume-edge eval-plates reads it):
        plates 110-300 pixels wide (double row 130-300), tilted and sheared, degraded by render.py's
        photometric augmentation (light, dirt, blur, noise, JPEG), and the
        frame blurred, noisy and JPEG-compressed again. Seed 11: never the
        training seeds.

Everything is drawn by render.py; no real image is used.
"""

import argparse
import json
import os
import random

import cv2
import numpy as np

import render

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "testdata", "plates", "scenes")


def scene(text, kind, rng, plate_w, centre, tilt, degrade=False):
    plate, double = render.render_plate(text, kind, rng, scale=1.0)
    if degrade and rng.random() < 0.7:
        plate = render._photometric(plate, rng)
    h, w = 1080, 1920
    img = np.zeros((h, w, 3), np.float32)
    # Road and sky gradient, a car body, a grille.
    img[:] = np.linspace(90, 150, h)[:, None, None]
    cx, cy = centre
    body = (int(cx - plate_w * 2.2), int(cy - plate_w * 1.4), int(cx + plate_w * 2.2), int(cy + plate_w * 0.7))
    colour = [rng.randint(30, 220) for _ in range(3)]
    cv2.rectangle(img, body[:2], body[2:], colour, -1)
    for y in range(body[1] + 20, int(cy - plate_w * 0.4), 14):
        cv2.line(img, (body[0] + 60, y), (body[2] - 60, y), [c * 0.5 for c in colour], 5)
    img += np.random.normal(0, 6, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    ph, pw = plate.shape[:2]
    s = plate_w / pw
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    dst = []
    for x, y in src:
        x, y = (x - pw / 2) * s, (y - ph / 2) * s
        dst.append([cx + x + tilt * y, cy + y + tilt * x])
    dst = np.float32(dst)
    H = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(plate, H, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), H, (w, h))
    img[mask > 127] = warped[mask > 127]
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return img, double, dst


def eval_set(out, n):
    rng = random.Random(11)
    np.random.seed(11)
    kinds = ["blue", "yellow", "yellow2", "green", "white", "black"]
    for ki, kind in enumerate(kinds):
        d = os.path.join(out, kind)
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            text = render.random_text(kind, rng)
            pw = rng.uniform(130 if kind == "yellow2" else 110, 300)
            c = (rng.uniform(500, 1420), rng.uniform(400, 800))
            img, _, _ = scene(text, kind, rng, pw, c, rng.uniform(-0.12, 0.12), degrade=True)
            if rng.random() < 0.5:
                img = cv2.GaussianBlur(img, (rng.choice([3, 5]), rng.choice([3, 5])), 0)
            img = np.clip(img + np.random.normal(0, rng.uniform(1, 8), img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(os.path.join(d, text + ".jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(35, 90)])
            if (i + 1) % 20 == 0:
                print("%s: %d/%d (kind %d of %d)" % (kind, i + 1, n, ki + 1, len(kinds)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-set", help="write a rendered evaluation set to this folder instead of the fixtures")
    ap.add_argument("--n", type=int, default=60, help="scenes per plate kind for --eval-set")
    args = ap.parse_args()
    if args.eval_set:
        eval_set(args.eval_set, args.n)
        return
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(5)
    np.random.seed(5)
    specs = [
        ("blue", "皖A7K352", 260, (900, 700), 0.05),
        ("yellow2", "浙F36218", 240, (1100, 650), -0.04),
        ("green", "苏AD12345", 280, (760, 760), 0.0),
        ("yellow", "豫B52J07", 230, (1300, 600), 0.08),
    ]
    meta = []
    for kind, text, pw, c, tilt in specs:
        img, double, dst = scene(text, kind, rng, pw, c, tilt)
        name = "scene-%s.jpg" % kind
        cv2.imwrite(os.path.join(OUT, name), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        colour = {"yellow2": "yellow"}.get(kind, kind)
        meta.append({"file": name, "text": text, "colour": colour, "double_row": double,
                     "corners": [[int(round(x)), int(round(y))] for x, y in dst]})
    with open(os.path.join(OUT, "scenes.json"), "w") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
