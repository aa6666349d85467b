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
import multiprocessing as mp
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
VERSION = "plate-rec-4"


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


def log_every(step):
    return step % 100 == 0


# ---------------------------------------------------------------- data


def render_chunk(job):
    """Renders one chunk of the synthetic pool (run in a worker process)."""
    path, seed, n, real = job
    rng = random.Random(seed)
    np.random.seed(seed % (2 ** 32))
    saved = dict(render._real)
    if not real:
        render._real.clear()
    imgs, texts = [], []
    for _ in range(n):
        img, text, _ = render.sample(rng)
        imgs.append(img)
        texts.append(text)
    render._real.clear()
    render._real.update(saved)
    np.savez(path + ".tmp.npz", imgs=np.stack(imgs), texts=np.array(texts))
    os.replace(path + ".tmp.npz", path)
    return path


def render_pool(work, name, n, chunk, seed, real, procs):
    """Renders WORK/NAME-NN.npz chunks that are missing, in PROCS processes.
    real: draw characters from the real crops (render.use_real_glyphs)."""
    jobs = []
    for c in range(math.ceil(n / chunk)):
        path = os.path.join(work, "%s-%03d.npz" % (name, c))
        if not os.path.exists(path):
            jobs.append((path, seed + c, chunk, real))
    if not jobs:
        return
    log("rendering %d chunks of %d plates (%s pool) in %d processes" % (len(jobs), chunk, name, procs))
    t0 = time.time()
    if procs <= 1:
        for i, j in enumerate(jobs):
            render_chunk(j)
            log("rendered %d/%d chunks (%.0fs)" % (i + 1, len(jobs), time.time() - t0))
        return
    with mp.get_context("fork").Pool(procs) as pool:
        for i, _ in enumerate(pool.imap_unordered(render_chunk, jobs)):
            log("rendered %d/%d chunks (%.0fs)" % (i + 1, len(jobs), time.time() - t0))


def load_pool(work, name):
    imgs, texts = [], []
    for p in sorted(glob.glob(os.path.join(work, name + "-*.npz"))):
        if p.endswith(".tmp.npz"):
            continue
        z = np.load(p)
        imgs.append(z["imgs"])
        texts += [str(t) for t in z["texts"]]
    return np.concatenate(imgs), texts


def real_glyphs(z, held_fold):
    """{character: [mask]} of the crops outside fold HELD_FOLD (or only in it,
    when held_fold is negative: -1 - fold)."""
    out = {}
    for m, ch, f in zip(z["glyph_masks"], z["glyph_chars"], z["glyph_folds"]):
        if (held_fold >= 0 and f == held_fold) or (held_fold < 0 and f != -1 - held_fold):
            continue
        mk = render.real_mask(m)
        if mk is not None:
            out.setdefault(str(ch), []).append(mk)
    return out


def encode_padded(texts):
    """Texts -> (N x 8 long targets, N lengths), class i+1 = CHARS[i]."""
    idx = {c: i + 1 for i, c in enumerate(render.CHARS)}
    y = np.zeros((len(texts), 8), np.int64)
    n = np.zeros(len(texts), np.int64)
    for i, t in enumerate(texts):
        y[i, :len(t)] = [idx[c] for c in t]
        n[i] = len(t)
    return torch.from_numpy(y), torch.from_numpy(n)


class Source:
    """One kind of training input, held on the training device."""

    def __init__(self, imgs, texts, dev):
        self.x = torch.from_numpy(np.ascontiguousarray(imgs)).to(dev)  # N H W 3 uint8
        self.y, self.n = encode_padded(texts)
        self.y, self.n = self.y.to(dev), self.n.to(dev)

    def __len__(self):
        return len(self.n)

    def draw(self, k, gen):
        i = torch.randint(0, len(self), (k,), generator=gen, device="cpu").to(self.x.device)
        return self.x[i], self.y[i], self.n[i]


def to_input(x_u8):
    """N H W 3 uint8 (device) -> N 3 H W float, (x/255-0.5)/0.5."""
    return (x_u8.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5


def augment_batch(x, gen):
    """Mild per-sample geometry (scale, shear, shift) and light on the whole
    batch, on the training device."""
    n = x.shape[0]
    r = lambda lo, hi: torch.rand(n, generator=gen).mul(hi - lo).add(lo).to(x.device)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = r(0.94, 1.06)
    theta[:, 0, 1] = r(-0.06, 0.06)
    theta[:, 0, 2] = r(-0.04, 0.04)
    theta[:, 1, 1] = r(0.92, 1.08)
    theta[:, 1, 2] = r(-0.06, 0.06)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    a = r(0.75, 1.25).view(n, 1, 1, 1)
    b = r(-0.2, 0.2).view(n, 1, 1, 1)
    return (x * a + b).clamp(-1.5, 1.5)


# ---------------------------------------------------------------- training


def lr_at(progress, peak):
    """One cycle: linear warm-up over the first 5 %, then cosine to ~0."""
    if progress < 0.05:
        return peak * (0.04 + 0.96 * progress / 0.05)
    t = (progress - 0.05) / 0.95
    return peak * (0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def accuracy(model, imgs, texts, dev):
    was = model.training
    model.eval()
    ok = 0
    with torch.no_grad():
        for i in range(0, len(texts), 512):
            x = to_input(torch.from_numpy(np.ascontiguousarray(imgs[i:i + 512])).to(dev))
            pred = decode(model(x))
            ok += sum(p == t for p, t in zip(pred, texts[i:i + 512]))
    model.train(was)
    return ok / max(1, len(texts))


def train(args, dev):
    """Trains one network (WORK/run-NAME), resuming from its checkpoint.
    Returns the run directory, or None when stopped early."""
    without = set(w for w in args.without.split(",") if w)
    bad = without - {"lprnet", "tollbooth", "chars"}
    if bad:
        raise SystemExit("--without: unknown source %s" % ", ".join(sorted(bad)))
    rdir = os.path.join(args.work, "run-" + args.run)
    os.makedirs(rdir, exist_ok=True)
    final = os.path.join(rdir, "final.pt")
    if os.path.exists(final):
        log("run %s finished already: %s" % (args.run, final))
        return rdir
    z = np.load(os.path.join(args.work, "real.npz"))
    sources = {"font": Source(*load_pool(args.work, "font"), dev)}
    if "chars" not in without:
        sources["glyph"] = Source(*load_pool(args.work, "glyph"), dev)
    if "lprnet" not in without and len(z["lpr_train_texts"]):
        sources["lprnet"] = Source(z["lpr_train"], [str(t) for t in z["lpr_train_texts"]], dev)
    if "tollbooth" not in without and len(z["toll_texts"]):
        sources["tollbooth"] = Source(z["toll"], [str(t) for t in z["toll_texts"]], dev)
    held, htexts = z["lpr_held"], [str(t) for t in z["lpr_held_texts"]]
    share = {"lprnet": args.real_per_batch, "tollbooth": args.real_per_batch}
    counts = {k: share.get(k, 0) for k in sources}
    rest = args.batch - sum(counts.values())
    synth = [k for k in ("font", "glyph") if k in sources]
    for i, k in enumerate(synth):
        counts[k] = rest // len(synth) + (1 if i < rest % len(synth) else 0)
    log("run %s, without %s: %s per batch; %s" % (args.run, ",".join(sorted(without)) or "nothing",
        ", ".join("%s %d" % kv for kv in counts.items()), ", ".join("%s %d" % (k, len(v)) for k, v in sources.items())))

    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    model = Net().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, ckpt = 0, os.path.join(rdir, "ckpt.pt")
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        log("resumed from %s at step %d" % (ckpt, step))
    log("model: %d parameters, device %s" % (sum(p.numel() for p in model.parameters()), dev))

    def save(path):
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, path + ".tmp")
        os.replace(path + ".tmp", path)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    model.train()
    t0, avg, start = time.time(), None, step
    def progress():
        p = step / args.steps
        if args.deadline > 0:  # squeeze the schedule into the wall-clock budget
            p = max(p, (time.time() - t0) / args.deadline)
        return p

    while progress() < 1:
        for g in opt.param_groups:
            g["lr"] = lr_at(progress(), args.lr)
        xs, ys, ns = [], [], []
        for k, c in counts.items():
            if c:
                x, y, n = sources[k].draw(c, gen)
                xs.append(x), ys.append(y), ns.append(n)
        x = augment_batch(to_input(torch.cat(xs)), gen)
        y, ylen = torch.cat(ys), torch.cat(ns)
        lp = F.log_softmax(model(x)[:, :, 0, :], 1).permute(2, 0, 1)  # T N C
        loss = ctc(lp, y, torch.full((x.shape[0],), lp.shape[0], dtype=torch.long, device=dev), ylen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        if log_every(step):
            avg = loss.item() if avg is None else 0.8 * avg + 0.2 * loss.item()
            rate = (step - start) / (time.time() - t0)
            eta = (args.steps - step) / max(rate, 1e-9)
            log("run %s step %d/%d loss %.3f lr %.2e %.1f steps/s eta %dm%02ds" % (args.run, step, args.steps, avg, lr_at(progress(), args.lr), rate, eta // 60, eta % 60))
        if step % args.ckpt_every == 0 or stop["now"]:
            save(ckpt)
        if step % args.eval_every == 0:
            log("run %s eval step %d: lprnet-crops held-out exact %.1f%%" % (args.run, step, 100 * accuracy(model, held, htexts, dev)))
        if stop["now"]:
            log("stopped at step %d; run again to resume" % step)
            return None
    save(ckpt)
    model.eval()
    torch.save(model.state_dict(), final + ".tmp")
    os.replace(final + ".tmp", final)
    m = {"run": args.run, "without": sorted(without), "steps": step, "batch": args.batch, "device": str(dev),
         "lprnet_crops_heldout": round(100 * accuracy(model, held, htexts, dev), 2)}
    with open(os.path.join(rdir, "metrics.json"), "w") as f:
        json.dump(m, f, ensure_ascii=False, indent=1)
    log("run %s finished: %s" % (args.run, json.dumps(m, ensure_ascii=False)))
    return rdir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/plume-plates-4"))
    ap.add_argument("--run", default="plate-rec-4", help="run name: WORK/run-NAME")
    ap.add_argument("--without", default="", help="leave sources out (comma list of lprnet, tollbooth, chars)")
    ap.add_argument("--pool", type=int, default=64000, help="rendered plates per pool (font and glyph)")
    ap.add_argument("--chunk", type=int, default=2000)
    ap.add_argument("--procs", type=int, default=2, help="rendering processes")
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--real-per-batch", type=int, default=16, help="lprnet-crops and tollbooth inputs per batch, each")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--deadline", type=float, default=0, help="seconds: end the schedule by then even if fewer steps ran (0: no limit)")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=2000)
    ap.add_argument("--render-only", action="store_true", help="render the pools and stop")
    ap.add_argument("--export", metavar="RUN", help="export WORK/run-RUN/final.pt to models/plates (ONNX, parity, metrics)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))

    render.load_font_glyphs(os.path.join(args.work, "fonts.npz"))
    z = np.load(os.path.join(args.work, "real.npz"))
    if args.export:
        model = Net()
        model.load_state_dict(torch.load(os.path.join(args.work, "run-" + args.export, "final.pt"), map_location="cpu"))
        export(model, args, z["lpr_held"], [str(t) for t in z["lpr_held_texts"]])
        return
    render_pool(args.work, "font", args.pool, args.chunk, 1000, False, args.procs)
    render.use_real_glyphs(real_glyphs(z, held_fold=0))
    render_pool(args.work, "glyph", args.pool, args.chunk, 5000, True, args.procs)
    render._real.clear()
    if args.render_only:
        return
    if train(args, dev) is None:
        sys.exit(3)


def synth_val(n=600):
    """A fixed rendered test set, n per kind, font glyphs only, never trained
    on (seed 7)."""
    saved = dict(render._real)
    render._real.clear()
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
    render._real.update(saved)
    return out


class Ensemble(nn.Module):
    """Mean logits of several networks (plate-rec-3 was one; mine.py loads
    it to list tollbooth quads)."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        return sum(m(x) for m in self.members) * (1.0 / len(self.members))


def export(model, args, himgs, htexts):
    model.eval()
    cpu = torch.device("cpu")
    metrics = {"version": VERSION, "steps": args.steps, "batch": args.batch}
    for k, (imgs, texts) in synth_val().items():
        metrics["synthetic_" + k] = round(100 * accuracy(model, imgs, texts, cpu), 2)
    metrics["lprnet_crops_heldout"] = round(100 * accuracy(model, himgs, htexts, cpu), 2)
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
