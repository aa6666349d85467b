"""Mines real plate crops from the tollbooth training split for fine-tuning.

The tollbooth images have a plate label (file name) but no box. A simple
HSV colour-mask localiser (close to edge/vision/locate.go) proposes quads;
the stage-1 model reads each, and the quad whose reading is closest to the
label (edit distance <= 2) is kept as a training sample. Images in the
held-out split (crc32(name) % 10 < 5) are never opened here.
"""

import glob
import os
import zlib

import cv2
import numpy as np
import torch

import render

FLOORS = {  # colour: (h lo, h hi, [(s floor, v floor)...])
    "blue": (100, 130, [(70, 40), (140, 100)]),
    "yellow": (11, 34, [(70, 70), (140, 110)]),
    "green": (35, 88, [(35, 70), (90, 110)]),
}


def tollbooth_heldout(name):
    return zlib.crc32(name.encode()) % 10 < 5


def order(pts):
    c = pts.mean(0)
    a = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    pts = pts[np.argsort(a)]
    s = np.argmin(pts[:, 0] - c[0] + pts[:, 1] - c[1])
    pts = np.roll(pts, -s, axis=0)
    if np.linalg.norm(pts[1] - pts[0]) < np.linalg.norm(pts[2] - pts[1]):
        return None
    return pts.astype(np.float32)


def grow(q, fx, fy):
    u = (q[1] - q[0] + q[2] - q[3]) / 2
    v = (q[3] - q[0] + q[2] - q[1]) / 2
    w, h = np.linalg.norm(u), np.linalg.norm(v)
    u, v = u / max(w, 1e-6), v / max(h, 1e-6)
    sx = np.array([-1, 1, 1, -1])[:, None]
    sy = np.array([-1, -1, 1, 1])[:, None]
    return (q + sx * fx * w * u + sy * fy * h * v).astype(np.float32)


def propose(img):
    """Yields (quad, colour, double) candidates."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    W = img.shape[1]
    kc = cv2.getStructuringElement(cv2.MORPH_RECT, (max(5, W // 70), max(3, W // 240)))
    ko = np.ones((3, 3), np.uint8)
    for colour, (hlo, hhi, floors) in FLOORS.items():
        for s, v in floors:
            m = cv2.inRange(hsv, (hlo, s, v), (hhi, 255, 255))
            m = cv2.morphologyEx(m, cv2.MORPH_OPEN, ko)
            m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kc)
            cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for c in cs:
                x, y, w, h = cv2.boundingRect(c)
                if w < 24 or h < 8 or w > W * 0.7:
                    continue
                rr = cv2.minAreaRect(c)
                lw, sw = max(rr[1]), min(rr[1])
                if sw < 8 or not 1.4 <= lw / sw <= 6.5:
                    continue
                q = order(cv2.boxPoints(rr))
                if q is None:
                    continue
                aspect = lw / sw
                double = colour == "yellow" and aspect < 2.6
                yield grow(q, 0.04, 0.08), colour, double


def rectify(img, q, double):
    w, h = (render.DOUBLE_W, render.DOUBLE_H) if double else (render.IN_W, render.IN_H)
    M = cv2.getPerspectiveTransform(q, np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
    r = cv2.warpPerspective(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return render.model_input(r, double)


def edit(a, b):
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(b)]


def mine(model, data, to_tensor, decode, log, with_names=False):
    """Returns a list of (image, quad, double, text) from the training split
    (with_names: of (file name, that tuple))."""
    out = []
    files = sorted(glob.glob(os.path.join(data, "tollbooth", "*.png")) + glob.glob(os.path.join(data, "tollbooth", "*.jpg")))
    model.eval()
    for f in files:
        name = os.path.basename(f)
        if tollbooth_heldout(name):
            continue
        text = os.path.splitext(name)[0]
        if any(c not in render.CHARS for c in text):
            continue
        img = cv2.imdecode(np.fromfile(f, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        best = None
        for q, colour, double in propose(img):
            aspect = np.linalg.norm(q[1] - q[0]) / max(1.0, np.linalg.norm(q[3] - q[0]))
            modes = [double, not double] if colour == "yellow" and 2.0 < aspect < 3.0 else [double]
            for d in modes:
                with torch.no_grad():
                    pred = decode(model(to_tensor(rectify(img, q, d)[None])))[0]
                e = edit(pred, text)
                if best is None or e < best[0]:
                    best = (e, q, d)
        if best is not None and best[0] <= 2:
            s = (img, best[1], best[2], text)
            out.append((name, s) if with_names else s)
    model.train()
    log("mined %d tollbooth training plates from %d files" % (len(out), len(files)))
    return out


def jittered(sample, rng):
    """A training input from a mined plate, with corner jitter."""
    img, q, double, text = sample
    w = np.linalg.norm(q[1] - q[0])
    h = np.linalg.norm(q[3] - q[0])
    j = q + np.float32([[rng.uniform(-0.04, 0.04) * w, rng.uniform(-0.1, 0.1) * h] for _ in range(4)])
    x = rectify(img, j.astype(np.float32), double)
    x = np.clip(x.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25), 0, 255).astype(np.uint8)
    return x, text


def write_quads(path, mined):
    """Writes the mined training-split quads as CSV (file, text, double,
    quad: x0 y0 x1 y1 x2 y2 x3 y3), the real boxes that prepare.py and the
    plate detector's training read."""
    import csv

    with open(path + ".tmp", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "text", "double", "quad"])
        for name, (img, q, double, text) in mined:
            w.writerow([name, text, "1" if double else "0", " ".join("%.1f" % v for v in q.reshape(-1))])
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    # python3 mine.py MODEL.pt OUT.csv: mine with a trained ensemble state dict.
    import sys
    import time

    import train

    sd = torch.load(sys.argv[1], map_location="cpu")
    n = len({k.split(".")[1] for k in sd if k.startswith("members.")})
    model = train.Ensemble([train.Net() for _ in range(n)]) if n else train.Net()
    model.load_state_dict(sd)
    log = lambda *a: print(time.strftime("%H:%M:%S"), *a, flush=True)
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "plates")
    named = []
    for s in mine(model, data, train.to_tensor, train.decode, log, with_names=True):
        named.append(s)
    write_quads(sys.argv[2], named)
