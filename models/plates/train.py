"""Trains Plume's plate recogniser (CNN, CTC) and exports it to ONNX opset 11.

Run through train.sh. The model is an ensemble of --members networks of the
same architecture that differ in the length of stage 1; Ensemble averages
their logits in one ONNX graph. Stages, each resumable:
  1. render the synthetic set in chunks (WORK/synth-NN.npz; existing chunks are kept);
  2. for each member N: stage 1, checkpointing WORK/member-N/ckpt.pt every
     --ckpt-every steps, then stage 2 (WORK/member-N/ckpt2.pt), each
     resuming from its checkpoint; a finished member is not trained again;
  3. export models/plates/plate-rec.onnx, check it in OpenCV DNN, write the
     parity fixture (testdata/plates/parity/) and models/plates/metrics.json.

Real data: the lprnet-crops set is split by crc32(file name) % 10; residues
0-2 are held out for evaluation and never trained on, 3-9 are trained on.
Stage 2 fine-tunes on tollbooth plates mined from the tollbooth training
split (crc32 % 10 >= 5; see mine.py); residues 0-4 are held out.
"""

import argparse
import glob
import json
import math
import os
import random
import signal
import sys
import time
import zlib

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mine  # noqa: E402
import render  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
NCLS = len(render.CHARS) + 1
VERSION = "plate-rec-3"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class Net(nn.Module):
    """3x32x128 -> logits N x NCLS x 1 x 32 (CTC, blank = 0)."""

    def __init__(self, w=(32, 64, 96, 128, 192)):
        super().__init__()

        def cbr(i, o, k=3, p=1):
            return [nn.Conv2d(i, o, k, padding=p, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        a, b, c, d, e = w
        self.f = nn.Sequential(
            *cbr(3, a), nn.MaxPool2d(2, 2),            # 16x64
            *cbr(a, b), nn.MaxPool2d(2, 2),            # 8x32
            *cbr(b, c), *cbr(c, c), nn.MaxPool2d((2, 1), (2, 1)),  # 4x32
            *cbr(c, d), nn.MaxPool2d((2, 1), (2, 1)),  # 2x32
            *cbr(d, e, k=(2, 3), p=(0, 1)),             # 1x32
            *cbr(e, e, k=(1, 5), p=(0, 2)),             # wider context along the row
            nn.Dropout(0.1),
            nn.Conv2d(e, NCLS, 1),
        )

    def forward(self, x):
        return self.f(x)


def to_tensor(batch_u8):
    """N x 32 x 128 x 3 BGR uint8 -> N x 3 x 32 x 128 float, (x/255-0.5)/0.5."""
    x = torch.from_numpy(batch_u8).float().permute(0, 3, 1, 2)
    return (x / 255.0 - 0.5) / 0.5


def encode(texts):
    idx = {c: i + 1 for i, c in enumerate(render.CHARS)}
    flat, lens = [], []
    for t in texts:
        flat += [idx[c] for c in t]
        lens.append(len(t))
    return torch.tensor(flat, dtype=torch.long), torch.tensor(lens, dtype=torch.long)


def decode(logits):
    """Greedy CTC over N x C x 1 x T logits -> list of strings."""
    best = logits[:, :, 0, :].argmax(1).cpu().numpy()
    out = []
    for row in best:
        s, prev = [], 0
        for k in row:
            if k != prev and k != 0:
                s.append(render.CHARS[k - 1])
            prev = k
        out.append("".join(s))
    return out


def real_split(data):
    files = sorted(glob.glob(os.path.join(data, "lprnet-crops", "*.jpg")))
    train, held = [], []
    for f in files:
        name = os.path.basename(f)
        text = os.path.splitext(name)[0]
        if any(c not in render.CHARS for c in text):
            continue
        (held if zlib.crc32(name.encode()) % 10 < 3 else train).append((f, text))
    return train, held


def load_crop(path):
    img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    return render.model_input(img, False)


def render_chunks(work, n, chunk, prefix="synth", seed=1000, rect_fit=0.0):
    os.makedirs(work, exist_ok=True)
    for c in range(math.ceil(n / chunk)):
        path = os.path.join(work, "%s-%02d.npz" % (prefix, c))
        if os.path.exists(path):
            continue
        rng = random.Random(seed + c)
        np.random.seed(seed + c)
        imgs, texts = [], []
        t0 = time.time()
        for i in range(chunk):
            img, text, _ = render.sample(rng, rect_fit=rect_fit)
            imgs.append(img)
            texts.append(text)
        np.savez(path + ".tmp.npz", imgs=np.stack(imgs), texts=np.array(texts))
        os.replace(path + ".tmp.npz", path)
        log("rendered chunk %d/%d (%d plates, %.0fs)" % (c + 1, math.ceil(n / chunk), chunk, time.time() - t0))


def load_synth(work, prefix="synth"):
    imgs, texts = [], []
    for p in sorted(glob.glob(os.path.join(work, prefix + "-*.npz"))):
        z = np.load(p)
        imgs.append(z["imgs"])
        texts += list(z["texts"])
    return np.concatenate(imgs), texts


def jitter_real(img, rng):
    """Light online augmentation of a real crop: shift/scale, light, blur."""
    h, w = img.shape[:2]
    s = rng.uniform(0.92, 1.08)
    M = np.float32([[s, rng.uniform(-0.05, 0.05), rng.uniform(-4, 4) + (1 - s) * w / 2],
                    [0, s, rng.uniform(-2, 2) + (1 - s) * h / 2]])
    img = cv2.warpAffine(img, M, (w, h), borderMode=cv2.BORDER_REPLICATE)
    img = np.clip(img.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25), 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    return img


def synth_val(n=600):
    """A fixed rendered test set, n per kind, never trained on (seed 7)."""
    rng = random.Random(7)
    np.random.seed(7)
    out = {}
    for k in ["blue", "yellow", "yellow2", "green", "white", "black"]:
        imgs, texts = [], []
        for _ in range(n):
            img, t, _ = render.sample(rng, k)
            imgs.append(img)
            texts.append(t)
        out[k] = (np.stack(imgs), texts)
    return out


def accuracy(model, imgs, texts):
    was = model.training
    model.eval()
    ok = 0
    with torch.no_grad():
        for i in range(0, len(texts), 256):
            pred = decode(model(to_tensor(imgs[i:i + 256])))
            ok += sum(p == t for p, t in zip(pred, texts[i:i + 256]))
    model.train(was)
    return ok / max(1, len(texts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/plume-plates-3"))
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "plates"))
    ap.add_argument("--synth", type=int, default=60000)
    ap.add_argument("--chunk", type=int, default=5000)
    ap.add_argument("--members", default="6000,9000,7500",
                    help="stage-1 steps of each member of the ensemble, one member per value, trained in WORK/member-N")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--real-per-batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--finetune-steps", type=int, default=3000)
    ap.add_argument("--synth2", type=int, default=10000)
    ap.add_argument("--ft-real", type=int, default=16, help="stage 2: lprnet-crops per batch")
    ap.add_argument("--ft-mined", type=int, default=16, help="stage 2: mined tollbooth plates per batch")
    ap.add_argument("--widths", default="32,64,96,128,192", help="channels of the five conv stages")
    ap.add_argument("--export-only", action="store_true", help="export the members' finished checkpoints")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)

    render_chunks(args.work, args.synth, args.chunk)
    simgs, stexts = load_synth(args.work)
    rtrain, rheld = real_split(args.data)
    log("synthetic %d, real train %d, real held-out %d" % (len(stexts), len(rtrain), len(rheld)))
    rimgs = np.stack([load_crop(f) for f, _ in rtrain]) if rtrain else None
    rtexts = [t for _, t in rtrain]
    himgs = np.stack([load_crop(f) for f, _ in rheld]) if rheld else None
    htexts = [t for _, t in rheld]

    members = []
    steps = [int(v) for v in args.members.split(",")]
    for i, n in enumerate(steps):
        mdir = os.path.join(args.work, "member-%d" % (i + 1))
        log("member %d/%d: stage 1 %d steps, stage 2 %d steps, in %s" % (i + 1, len(steps), n, args.finetune_steps, mdir))
        model = train_member(args, n, mdir, simgs, stexts, rimgs, rtexts, himgs, htexts)
        if model is None:
            return
        if himgs is not None:
            log("member %d: lprnet-crops held-out exact %.1f%%" % (i + 1, 100 * accuracy(model, himgs, htexts)))
        members.append(model)
    export(Ensemble(members), args, himgs, htexts)


class Ensemble(nn.Module):
    """The members' mean logits: one ONNX graph, one forward pass in Go.
    (Mean logits, not mean log-probabilities: OpenCV 4.6 imports neither
    LogSoftmax nor Log.)"""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        return sum(m(x) for m in self.members) * (1.0 / len(self.members))


def train_member(args, steps, mdir, simgs, stexts, rimgs, rtexts, himgs, htexts):
    """Stage 1 (MDIR/ckpt.pt) then stage 2 (MDIR/ckpt2.pt) of one member,
    each resumed from its checkpoint. Returns the trained model, or None
    when stopped (run again to resume)."""
    os.makedirs(mdir, exist_ok=True)
    model = Net(tuple(int(v) for v in args.widths.split(",")))
    ckpt2 = os.path.join(mdir, "ckpt2.pt")
    if os.path.exists(ckpt2):
        st = torch.load(ckpt2)
        if st["step"] >= args.finetune_steps or args.export_only:
            log("member finished: %s at stage 2 step %d" % (ckpt2, st["step"]))
            model.load_state_dict(st["model"])
            return model
    if args.export_only:
        raise SystemExit("--export-only: %s is missing" % ckpt2)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    step = 0
    ckpt = os.path.join(mdir, "ckpt.pt")
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        step = st["step"]
        log("resumed from %s at step %d" % (ckpt, step))
    log("model: %d parameters" % sum(p.numel() for p in model.parameters()))

    def save():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))

    rng = random.Random(step)
    nprng = np.random.default_rng(step)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    model.train()
    t0, seen, avg = time.time(), 0, None
    while step < steps:
        ns = args.batch - (args.real_per_batch if rimgs is not None else 0)
        si = nprng.integers(0, len(stexts), ns)
        batch = [simgs[i] for i in si]
        texts = [stexts[i] for i in si]
        if rimgs is not None:
            ri = nprng.integers(0, len(rtexts), args.real_per_batch)
            batch += [jitter_real(rimgs[i], rng) for i in ri]
            texts += [rtexts[i] for i in ri]
        x = to_tensor(np.stack(batch))
        if rng.random() < 0.5:  # cheap photometric jitter on the whole batch
            x = x * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
        y, ylen = encode(texts)
        logits = model(x)[:, :, 0, :]  # N C T
        lp = F.log_softmax(logits, 1).permute(2, 0, 1)  # T N C
        loss = ctc(lp, y, torch.full((len(texts),), lp.shape[0], dtype=torch.long), ylen)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        step += 1
        seen += len(texts)
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        if step % 20 == 0:
            rate = seen / (time.time() - t0)
            eta = (steps - step) * args.batch / rate
            log("step %d/%d loss %.3f lr %.2e %.0f samples/s eta %dm%02ds" % (step, steps, avg, sched.get_last_lr()[0], rate, eta // 60, eta % 60))
        if step % args.ckpt_every == 0 or stop["now"]:
            save()
        if step % args.eval_every == 0 and himgs is not None:
            log("eval step %d: lprnet-crops held-out exact %.1f%%" % (step, 100 * accuracy(model, himgs, htexts)))
        if stop["now"]:
            log("stopped at step %d; run again to resume" % step)
            return None
    save()
    if args.finetune_steps > 0 and not finetune(model, args, mdir, simgs, stexts, rimgs, rtexts, himgs, htexts):
        return None
    return model


def finetune(model, args, mdir, simgs, stexts, rimgs, rtexts, himgs, htexts):
    """Stage 2: continue from stage 1 with mined tollbooth plates in every
    batch, at a lower learning rate. Resumes from MDIR/ckpt2.pt."""
    ckpt2 = os.path.join(mdir, "ckpt2.pt")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=args.finetune_steps, pct_start=0.05)
    step = 0
    if os.path.exists(ckpt2):
        st = torch.load(ckpt2)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        step = st["step"]
        log("stage 2: resumed from %s at step %d" % (ckpt2, step))
    mined = mine.mine(model, args.data, to_tensor, decode, log)
    # Extra synthetic plates rectified from the minimum-area rectangle half
    # the time (residual rotation and shear), seeds 2000+.
    render_chunks(args.work, args.synth2, args.chunk, prefix="synth2", seed=2000, rect_fit=0.5)
    s2, t2 = load_synth(args.work, "synth2")
    simgs = np.concatenate([simgs, s2])
    stexts = stexts + t2

    def save():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step}, ckpt2 + ".tmp")
        os.replace(ckpt2 + ".tmp", ckpt2)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    rng = random.Random(10_000 + step)
    nprng = np.random.default_rng(10_000 + step)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    model.train()
    t0, seen, avg = time.time(), 0, None
    nt = args.ft_mined if mined else 0
    nr = args.ft_real if rimgs is not None else 0
    while step < args.finetune_steps:
        si = nprng.integers(0, len(stexts), args.batch - nt - nr)
        batch = [simgs[i] for i in si]
        texts = [stexts[i] for i in si]
        for i in nprng.integers(0, len(rtexts), nr) if nr else []:
            batch.append(jitter_real(rimgs[i], rng))
            texts.append(rtexts[i])
        for i in nprng.integers(0, len(mined), nt) if nt else []:
            x, t = mine.jittered(mined[i], rng)
            batch.append(x)
            texts.append(t)
        x = to_tensor(np.stack(batch))
        y, ylen = encode(texts)
        lp = F.log_softmax(model(x)[:, :, 0, :], 1).permute(2, 0, 1)
        loss = ctc(lp, y, torch.full((len(texts),), lp.shape[0], dtype=torch.long), ylen)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        step += 1
        seen += len(texts)
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        if step % 20 == 0:
            rate = seen / (time.time() - t0)
            eta = (args.finetune_steps - step) * args.batch / rate
            log("stage 2 step %d/%d loss %.3f %.0f samples/s eta %dm%02ds" % (step, args.finetune_steps, avg, rate, eta // 60, eta % 60))
        if step % args.ckpt_every == 0 or stop["now"]:
            save()
        if step % args.eval_every == 0 and himgs is not None:
            log("stage 2 eval step %d: lprnet-crops held-out exact %.1f%%" % (step, 100 * accuracy(model, himgs, htexts)))
        if stop["now"]:
            log("stopped at stage 2 step %d; run again to resume" % step)
            return False
    save()
    return True


def export(model, args, himgs, htexts):
    model.eval()
    metrics = {"version": VERSION, "members_stage1_steps": [int(v) for v in args.members.split(",")], "finetune_steps": args.finetune_steps}
    val = synth_val()
    for k, (imgs, texts) in val.items():
        metrics["synthetic_" + k] = round(100 * accuracy(model, imgs, texts), 2)
    if himgs is not None:
        metrics["lprnet_crops_heldout"] = round(100 * accuracy(model, himgs, htexts), 2)
        metrics["lprnet_crops_heldout_n"] = len(htexts)
    log("metrics", json.dumps(metrics, ensure_ascii=False))

    model.eval()  # batch-norm statistics and no dropout in the exported graph
    onnx_path = os.path.join(HERE, "plate-rec.onnx")
    dummy = torch.zeros(1, 3, render.IN_H, render.IN_W)
    torch.onnx.export(model, dummy, onnx_path, opset_version=11, input_names=["input"], output_names=["logits"], do_constant_folding=True)
    torch.save(model.state_dict(), os.path.join(HERE, "plate-rec.pt"))

    # Parity fixture: inputs and PyTorch outputs, checked in OpenCV here and in Go.
    rng = random.Random(99)
    np.random.seed(99)
    # Rendered plates only: real images never go into the repository.
    samples = [render.sample(rng, k) for k in ["blue", "yellow2", "green", "yellow"]]
    imgs = [s[0] for s in samples]
    x = to_tensor(np.stack(imgs))
    with torch.no_grad():
        y = model(x).numpy()
    net = cv2.dnn.readNetFromONNX(onnx_path)
    worst = 0.0
    for i in range(len(imgs)):
        net.setInput(x[i:i + 1].numpy())
        worst = max(worst, float(np.abs(net.forward() - y[i:i + 1]).max()))
    log("opencv dnn vs pytorch: max abs diff %.2e" % worst)
    if worst > 1e-4:
        raise SystemExit("opencv dnn disagrees with pytorch")
    pdir = os.path.join(REPO, "testdata", "plates", "parity")
    os.makedirs(pdir, exist_ok=True)
    x.numpy().astype("<f4").tofile(os.path.join(pdir, "input.f32"))
    y.astype("<f4").tofile(os.path.join(pdir, "output.f32"))
    for i, im in enumerate(imgs):
        cv2.imwrite(os.path.join(pdir, "input-%d.png" % i), im)
    with open(os.path.join(pdir, "manifest.json"), "w") as f:
        json.dump({"model": "models/plates/plate-rec.onnx", "version": VERSION, "input_shape": list(x.shape), "output_shape": list(y.shape),
                   "texts": decode(torch.from_numpy(y)), "opencv_max_abs_diff": worst}, f, ensure_ascii=False, indent=1)
    metrics["opencv_max_abs_diff"] = worst
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump(metrics, f, ensure_ascii=False, indent=1)
    log("exported", onnx_path)


if __name__ == "__main__":
    main()
