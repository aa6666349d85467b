#!/usr/bin/env python3
"""Train, evaluate and export the smoke patch classifier (smoke-cnn.onnx).

Input: the still detector's candidate regions on ../shared/data, dumped by
    SMOKE_CANDIDATES=FILE go test ./edge/vision/ -run TestSmokeCandidateDump
(train.sh does this). Each candidate's patch (smokePatchRect in
edge/vision/smoke_cnn.go) is cut from the full-size image with OpenCV,
resized to 64x64 with INTER_AREA, BGR, scaled to [0, 1] -- exactly what Go
feeds the network.

Labels (per patch):
  positive  a candidate of a smoky image with >= 30 % of its box inside an
            annotated smoke box, or covering >= 30 % of one; and a patch
            around every annotated box itself (web: VOC "smoke" boxes;
            overpass-video/cctv: class-1 vehicle box widened by half and
            extended down by its height);
  negative  every candidate of a clean image (tollbooth, ccpd) and every
            candidate of a smoky image that touches no annotated box
            (shadows, dark vehicles, road of the smoke sources), sampled
            half and half so that the source does not predict the label;
  ignored   candidates that touch a box but fall below both 30 % marks.

Evaluation is at image level: an image's score is the best probability
among its candidates of Ringelmann grade >= 1 (0 with none); it is smoky
when that is >= the threshold. Splits:
  cv     5 folds, grouped (an image, and every frame of one overpass video,
         is in one fold only), stratified by folder;
  cross  {web, tollbooth} <-> {overpass-video, cctv, ccpd}, each half
         scored by a model trained only on the other;
  final  all images, exported to ONNX (opset 11) with the parity fixture.
Every run checkpoints after each epoch in the work directory and resumes.
"""
import argparse
import json
import os
import re
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn as nn

SIDE = 64
SETS = ["web", "overpass-video", "cctv", "tollbooth", "ccpd"]
VERSION = "2.0"
TRAIN_ONLY = "general"  # smoke/general: what smoke looks like; trained on, never scored


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def patch_rect(box, w, h):
    """Python twin of smokePatchRect (edge/vision/smoke_cnn.go)."""
    x0, y0, x1, y1 = box
    side = max(16, int(round(1.5 * max(x1 - x0, y1 - y0))))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    px, py = cx - side // 2, cy - side // 2
    px = max(0, min(px, w - side))
    py = max(0, min(py, h - side))
    r = (max(px, 0), max(py, 0), min(px + side, w), min(py + side, h))
    if r[2] <= r[0] or r[3] <= r[1]:
        return (0, 0, min(w, 16), min(h, 16))
    return r


def cut(img, r):
    x0, y0, x1, y1 = r
    return cv2.resize(img[y0:y1, x0:x1], (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def group_of(rec):
    """Images that must stay together: every frame of one overpass video."""
    base = os.path.basename(rec["path"])
    m = re.search(r"(\d+)_video_frame_\d+", base)
    if rec["set"] == "overpass-video" and m:
        return "overpass:" + m.group(1)
    return rec["path"]


def overlap(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def build_cache(cands, cache):
    """Cuts every patch once; returns the arrays (cached in cache)."""
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}, json.load(open(cache + ".json"))
    recs = [json.loads(l) for l in open(cands)]
    X, y, img, kind, grade = [], [], [], [], []
    # kind: 0 candidate, 1 annotation patch (training only)
    for i, r in enumerate(recs):
        im = cv2.imread(r["path"], cv2.IMREAD_COLOR)
        if im is None or im.shape[1] != r["w"] or im.shape[0] != r["h"]:
            sys.exit("cannot read %s as %dx%d" % (r["path"], r["w"], r["h"]))
        for c in r["cands"]:
            if c["cues"].get("reject"):
                continue  # the hard rules (smoke_cues.go) decide; the net never sees it
            f = c["frac"]
            area = max((f[2] - f[0]) * (f[3] - f[1]), 1e-9)
            lab = 0
            if r["smoky"]:
                ovs = [overlap(f, a) for a in r["smoke"]]
                if any(o / area >= 0.5 for o in ovs):
                    lab = 1
                elif any(o > 0 for o in ovs):
                    lab = -1
            X.append(cut(im, tuple(c["patch"])))
            y.append(lab)
            img.append(i)
            kind.append(0)
            grade.append(c["grade"])
        for a in r["smoke"]:
            b = (int(a[0] * r["w"]), int(a[1] * r["h"]), int(np.ceil(a[2] * r["w"])), int(np.ceil(a[3] * r["h"])))
            b = (max(0, b[0]), max(0, b[1]), min(r["w"], b[2]), min(r["h"], b[3]))
            if b[2] - b[0] < 4 or b[3] - b[1] < 4:
                continue
            X.append(cut(im, patch_rect(b, r["w"], r["h"])))
            y.append(1)
            img.append(i)
            kind.append(1)
            grade.append(5)
        # The plume zone of every normal vehicle (YOLO class 0: widened by
        # half, extended down by its height, as for smoky ones): a clean
        # vehicle's rear, road and shadow, where a plume would be.
        for a in r.get("clean", []):
            cx, w, h = (a[0] + a[2]) / 2, a[2] - a[0], a[3] - a[1]
            z = (cx - 0.75 * w, a[1], cx + 0.75 * w, a[3] + h)
            if any(overlap(z, s) > 0 for s in r["smoke"]):
                continue
            b = (max(0, int(z[0] * r["w"])), max(0, int(z[1] * r["h"])), min(r["w"], int(np.ceil(z[2] * r["w"]))), min(r["h"], int(np.ceil(z[3] * r["h"]))))
            if b[2] - b[0] < 4 or b[3] - b[1] < 4:
                continue
            X.append(cut(im, patch_rect(b, r["w"], r["h"])))
            y.append(0)
            img.append(i)
            kind.append(1)
            grade.append(5)
        if (i + 1) % 100 == 0 or i + 1 == len(recs):
            log("patches: %d/%d images, %d patches" % (i + 1, len(recs), len(X)))
    arr = dict(X=np.stack(X), y=np.array(y, np.int8), img=np.array(img, np.int32),
               kind=np.array(kind, np.int8), grade=np.array(grade, np.int8))
    np.savez(cache, **arr)
    meta = [{"path": r["path"], "set": r["set"], "smoky": r["smoky"], "group": group_of(r)} for r in recs]
    json.dump(meta, open(cache + ".json", "w"))
    return arr, meta


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.f = nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), *block(64, 96))  # 64 -> 4x4
        self.drop = nn.Dropout(0.3)
        # A linear layer over the 4x4 map (no global pooling: torch 1.13
        # exports AvgPool2d with a Pad node that checkONNX refuses).
        self.fc = nn.Linear(96 * 4 * 4, 1)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(self.f(x), 1)))


class Exported(nn.Module):
    """The deployed graph: the mean probability (not logit) of the members,
    nets trained alike from different seeds (averaging steadies the
    operating point that one net's seed would move)."""
    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x):
        p = torch.sigmoid(self.nets[0](x))
        for n in self.nets[1:]:
            p = p + torch.sigmoid(n(x))
        return p * (1.0 / len(self.nets))


def augment(p, rng):
    """Real-camera variation on one 64x64 BGR uint8 patch."""
    if rng.random() < 0.7:  # scale and shift: a plume's patch rarely sits the same way
        s = rng.uniform(0.65, 1.0)
        cw = int(SIDE * s)
        x0, y0 = rng.integers(0, SIDE - cw + 1), rng.integers(0, SIDE - cw + 1)
        p = cv2.resize(p[y0:y0 + cw, x0:x0 + cw], (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        p = p[:, ::-1]
    q = p.astype(np.float32) / 255
    q = q * rng.uniform(0.6, 1.4) + rng.uniform(-0.12, 0.12)  # exposure, offset
    q = np.clip(q, 0, 1) ** rng.uniform(0.7, 1.4)  # tone curve
    q = q * rng.uniform(0.85, 1.15, size=3).astype(np.float32)  # white balance
    if rng.random() < 0.3:  # desaturate (night, haze)
        g = q.mean(axis=2, keepdims=True)
        a = rng.uniform(0.3, 1.0)
        q = a * g + (1 - a) * q
    if rng.random() < 0.3:
        q = q + rng.normal(0, rng.uniform(0.005, 0.03), q.shape).astype(np.float32)
    q = (np.clip(q, 0, 1) * 255 + 0.5).astype(np.uint8)
    if rng.random() < 0.2:
        q = cv2.GaussianBlur(q, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.5:
        ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(q), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 95))])
        q = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(q)


def to_tensor(batch):
    return torch.from_numpy(np.stack(batch).astype(np.float32).transpose(0, 3, 1, 2) / 255)


def train(arr, meta, train_imgs, run, work, epochs, per_epoch, seed):
    """Trains on the patches of train_imgs; checkpoints every epoch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tr = np.isin(arr["img"], np.array(sorted(train_imgs), np.int32))
    smoky_img = np.array([m["smoky"] for m in meta])
    y = arr["y"]
    pos = np.where(tr & (y == 1))[0]
    neg_same = np.where(tr & (y == 0) & smoky_img[arr["img"]])[0]
    neg_clean = np.where(tr & (y == 0) & ~smoky_img[arr["img"]])[0]
    log("%s: %d positive, %d same-source negative, %d clean negative patches" % (run, len(pos), len(neg_same), len(neg_clean)))
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (per_epoch // 64))
    ck = os.path.join(work, run + ".ckpt")
    start = 0
    if os.path.exists(ck):
        st = torch.load(ck)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        start = st["epoch"]
        rng = np.random.default_rng(seed + 1000 * start)
        log("%s: resumed after epoch %d" % (run, start))
    for ep in range(start, epochs):
        net.train()
        t0, tot, n = time.time(), 0.0, 0
        for _ in range(per_epoch // 64):
            # Half positives, a quarter negatives from smoky images, a
            # quarter from clean ones (when a half has none, the other).
            ip = rng.choice(pos, 32)
            ns = neg_same if len(neg_same) else neg_clean
            nc = neg_clean if len(neg_clean) else neg_same
            idx = np.concatenate([ip, rng.choice(ns, 16), rng.choice(nc, 16)])
            xb = to_tensor([augment(arr["X"][i], rng) for i in idx])
            yb = torch.from_numpy((y[idx] == 1).astype(np.float32))[:, None]
            # Negatives weigh more: a false accusation costs more than a miss.
            wb = torch.where(yb > 0, torch.tensor(1.0), torch.tensor(1.5))
            loss = (nn.functional.binary_cross_entropy_with_logits(net(xb), yb, reduction="none") * wb).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            n += len(idx)
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": ep + 1}, ck)
        log("%s: epoch %d/%d loss %.4f (%.0f s)" % (run, ep + 1, epochs, tot / n, time.time() - t0))
    net.eval()
    return net


def train_members(arr, meta, train_imgs, run, work, epochs, per_epoch, seed, members):
    """Trains members nets alike from seeds seed, seed+100, ...; returns
    their ensemble (Exported)."""
    nets = [train(arr, meta, train_imgs, run if m == 0 else "%sm%d" % (run, m), work, epochs, per_epoch, seed + 100 * m)
            for m in range(members)]
    return Exported(nets).eval()


@torch.no_grad()
def image_scores(net, arr, meta, imgs):
    """Best candidate probability (grade >= 1) of each image in imgs."""
    sel = np.where(np.isin(arr["img"], np.array(sorted(imgs), np.int32)) & (arr["kind"] == 0) & (arr["grade"] >= 1))[0]
    probs = np.zeros(len(sel), np.float32)
    for s in range(0, len(sel), 256):
        b = sel[s:s + 256]
        probs[s:s + 256] = net(to_tensor([arr["X"][i] for i in b])).numpy()[:, 0]
    out = {i: 0.0 for i in imgs}
    for i, p in zip(arr["img"][sel], probs):
        out[int(i)] = max(out[int(i)], float(p))
    return out


def prf(meta, scores, thr, keep=None):
    tp = fp = fn = tn = 0
    for i, s in scores.items():
        if keep and not keep(meta[i]):
            continue
        pred, smoky = s >= thr, meta[i]["smoky"]
        tp += pred and smoky
        fp += pred and not smoky
        fn += (not pred) and smoky
        tn += (not pred) and not smoky
    p = tp / max(1, tp + fp)
    r = tp / max(1, tp + fn)
    return dict(tp=tp, fp=fp, fn=fn, tn=tn, precision=round(p, 3), recall=round(r, 3), f1=round(2 * p * r / (p + r) if p + r else 0, 3))


def precision_threshold(meta, scores, target, max_fpr=0.02):
    """The lowest threshold at which precision reaches target and at most
    max_fpr of the clean images are flagged."""
    for thr in np.arange(0.30, 0.9995, 0.005):
        m = prf(meta, scores, thr)
        if m["tp"] > 0 and m["precision"] >= target and m["fp"] <= max_fpr * (m["fp"] + m["tn"]):
            return round(float(thr), 3)
    return 1.0


def nested_threshold(meta, oof, fold, target, k=5):
    """Out-of-fold scores judged with a threshold that did not see them:
    each fold at the precision-target threshold of the other folds' scores.
    The honest companion of the single threshold chosen on all of them."""
    total = dict(tp=0, fp=0, fn=0, tn=0)
    thresholds = []
    for j in range(k):
        rest = {i: s for i, s in oof.items() if fold[i] != j}
        own = {i: s for i, s in oof.items() if fold[i] == j}
        thr = precision_threshold(meta, rest, target)
        thresholds.append(thr)
        m = prf(meta, own, thr)
        for c in total:
            total[c] += m[c]
    p = total["tp"] / max(1, total["tp"] + total["fp"])
    r = total["tp"] / max(1, total["tp"] + total["fn"])
    total.update(precision=round(p, 3), recall=round(r, 3), f1=round(2 * p * r / (p + r) if p + r else 0, 3))
    return {"thresholds": thresholds, "all": total}


def report(meta, scores, thr):
    out = {"all": prf(meta, scores, thr)}
    for s in SETS:
        out[s] = prf(meta, scores, thr, lambda m, s=s: m["set"] == s)
    return out


def folds(meta, k=5, seed=1):
    """Grouped folds, stratified by folder: groups dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold_of = {}
    for s in SETS:
        groups = sorted({m["group"] for m in meta if m["set"] == s})
        rng.shuffle(groups)
        for j, g in enumerate(groups):
            fold_of[g] = j % k
    return [fold_of.get(m["group"], -1) for m in meta]


def export(ex, out, fixture):
    ex.eval()
    torch.onnx.export(ex, torch.zeros(1, 3, SIDE, SIDE), out, opset_version=11,
                      input_names=["patch"], output_names=["prob"], do_constant_folding=True)
    # Parity fixture on synthetic inputs only: seeded noise, gradients and
    # a drawn image with a soft dark blob whose patch Go cuts itself.
    os.makedirs(fixture, exist_ok=True)
    rng = np.random.default_rng(7)
    ins = [rng.random((3, SIDE, SIDE), dtype=np.float32)]
    g = np.linspace(0, 1, SIDE, dtype=np.float32)
    ins.append(np.stack([np.outer(g, np.ones(SIDE, np.float32)), np.outer(np.ones(SIDE, np.float32), g), np.full((SIDE, SIDE), 0.5, np.float32)]))
    ins.append(np.zeros((3, SIDE, SIDE), np.float32))
    yy, xx = np.mgrid[0:240, 0:320]
    scene = np.full((240, 320, 3), 180, np.float32) + rng.normal(0, 6, (240, 320, 3))
    blob = np.exp(-(((xx - 170) / 45.0) ** 2 + ((yy - 130) / 30.0) ** 2))
    scene = scene * (1 - 0.8 * blob[..., None])
    scene[40:90, 30:120] = (40, 60, 200)  # a red car-like box (BGR)
    scene = np.clip(scene + 0.5, 0, 255).astype(np.uint8)
    cv2.imwrite(os.path.join(fixture, "scene.png"), scene)
    boxes = [(120, 95, 220, 165), (30, 40, 120, 90), (290, 200, 320, 240)]
    for b in boxes:
        ins.append(cut(scene, patch_rect(b, 320, 240)).astype(np.float32).transpose(2, 0, 1) / 255)
    x = torch.from_numpy(np.stack(ins))
    with torch.no_grad():
        y = ex(x).numpy()
    x.numpy().astype("<f4").tofile(os.path.join(fixture, "input.f32"))
    y.astype("<f4").tofile(os.path.join(fixture, "output.f32"))
    json.dump({"n": len(ins), "boxes": boxes, "note": "inputs 0-2 are tensors; inputs 3.. are the patches of boxes in scene.png"},
              open(os.path.join(fixture, "manifest.json"), "w"), indent=1)
    log("exported %s and the parity fixture in %s" % (out, fixture))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cands", required=True, help="candidate dump (JSON lines) from TestSmokeCandidateDump")
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/plume-smoke/" + "v" + VERSION))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--per-epoch", type=int, default=2048, help="patches per epoch")
    ap.add_argument("--splits", default="cv,loso,final")
    ap.add_argument("--target-precision", type=float, default=0.95)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--members", type=int, default=1, help="nets per evaluation model (cv, loso), averaged")
    ap.add_argument("--final-members", type=int, default=2, help="nets of the exported model, averaged")
    a = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(a.work, exist_ok=True)
    arr, meta = build_cache(a.cands, os.path.join(a.work, "patches.npz"))
    log("%d images, %d patches (%d positive, %d negative, %d ignored)" % (
        len(meta), len(arr["y"]), (arr["y"] == 1).sum(), (arr["y"] == 0).sum(), (arr["y"] == -1).sum()))
    metrics_path = os.path.join(a.work, "metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    allimgs = set(range(len(meta)))
    scored = {i for i, m in enumerate(meta) if m["set"] != TRAIN_ONLY}
    splits = a.splits.split(",")
    if "cv" in splits:
        f = folds(meta)
        oof = {}
        for k in range(5):
            test = {i for i in scored if f[i] == k}
            net = train_members(arr, meta, allimgs - test, "cv%d" % k, a.work, a.epochs, a.per_epoch, k, a.members)
            oof.update(image_scores(net, arr, meta, test))
        thr = precision_threshold(meta, oof, a.target_precision)
        metrics["cv"] = {"threshold": thr, "at_threshold": report(meta, oof, thr),
                         "curve": {str(t): prf(meta, oof, t) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)}}
        metrics["cv"]["nested"] = nested_threshold(meta, oof, f, a.target_precision)
        json.dump({str(i): s for i, s in oof.items()}, open(os.path.join(a.work, "oof.json"), "w"))
        log("cv, threshold chosen without the fold it is applied to: %s" % metrics["cv"]["nested"]["all"])
        log("cv: threshold %.3f for precision %.2f: %s" % (thr, a.target_precision, metrics["cv"]["at_threshold"]["all"]))
    if "cross" in splits:
        A = {i for i, m in enumerate(meta) if m["set"] in ("web", "tollbooth")}
        B = allimgs - A
        sc = {}
        sc.update(image_scores(train_members(arr, meta, A, "crossA", a.work, a.epochs, a.per_epoch, 11, a.members), arr, meta, B))
        sc.update(image_scores(train_members(arr, meta, B, "crossB", a.work, a.epochs, a.per_epoch, 12, a.members), arr, meta, A))
        thr = metrics.get("cv", {}).get("threshold", 0.5)
        metrics["cross"] = {"threshold": thr, "at_threshold": report(meta, sc, thr),
                            "own_threshold": precision_threshold(meta, sc, a.target_precision),
                            "curve": {str(t): prf(meta, sc, t) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)}}
        log("cross: at the cv threshold %.3f: %s" % (thr, metrics["cross"]["at_threshold"]["all"]))
    if "final" in splits:
        net = train_members(arr, meta, allimgs, "final", a.work, a.epochs, a.per_epoch, 99, a.final_members)
        thr = metrics.get("cv", {}).get("threshold", 0.5)
        metrics["in_sample"] = {"threshold": thr, "at_threshold": report(meta, image_scores(net, arr, meta, scored), thr)}
        torch.save(net.state_dict(), os.path.join(a.work, "smoke-cnn.pt"))
        export(net, os.path.join(a.out, "smoke-cnn.onnx"), os.path.join(a.out, "parity"))
    if "loso" in splits:
        # Leave one source out: each source scored by a model that never
        # saw it (smoke/general is always trained on, never scored).
        sc = {}
        for j, src in enumerate(SETS):
            test = {i for i in scored if meta[i]["set"] == src}
            sc.update(image_scores(train_members(arr, meta, allimgs - test, "loso-" + src, a.work, a.epochs, a.per_epoch, 20 + j, a.members), arr, meta, test))
        thr = metrics.get("cv", {}).get("threshold", 0.5)
        metrics["loso"] = {"threshold": thr, "at_threshold": report(meta, sc, thr),
                           "curve": {str(t): report(meta, sc, t) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)}}
        json.dump({str(i): s for i, s in sc.items()}, open(os.path.join(a.work, "loso.json"), "w"))
        log("loso: at the cv threshold %.3f: %s" % (thr, metrics["loso"]["at_threshold"]))
    metrics["version"] = VERSION
    metrics["members"] = {"cv_loso": a.members, "final": a.final_members}
    metrics["params"] = a.final_members * sum(p.numel() for p in Net().parameters())
    json.dump(metrics, open(metrics_path, "w"), indent=1)
    json.dump(metrics, open(os.path.join(a.out, "metrics.json"), "w"), indent=1)
    log("metrics in %s" % os.path.join(a.out, "metrics.json"))


if __name__ == "__main__":
    main()
