"""Crop-level reports of trained recognisers, for choosing and for the model card.

For each state dict given (train.Net weights, e.g. WORK/run-NAME/final.pt):

- rendered: exact match on train.synth_val (600 rendered plates per kind,
  seed 7, font glyphs only, never trained on). Model variants are chosen on
  this figure, never on a real folder.
- provinces: plates whose province character is a real crop from the
  held-out fold 0 of ../shared/data/plates/chars (never drawn into training
  plates), 40 per province, the rest of the plate rendered as in training
  (seed 21): the province character's accuracy per province, and the
  commonest confusions. This is the character-level held-out measure of
  the real crops.
- lprnet: exact match on the lprnet-crops held-out split.

    /usr/bin/python3 evaluate.py [--work DIR] [--json OUT] MODEL.pt...
"""

import argparse
import collections
import json
import os
import random

import numpy as np
import torch

import render
import train

PER_PROVINCE = 40


def province_set(z):
    """Inputs, texts: PER_PROVINCE plates per province with held-out glyphs."""
    held = train.real_glyphs(z, held_fold=-1)  # fold 0 only
    render.use_real_glyphs(held)
    saved = render.REAL_PROVINCE_P, render.REAL_ALNUM_P
    render.REAL_PROVINCE_P, render.REAL_ALNUM_P = 1.0, 0.3
    rng = random.Random(21)
    np.random.seed(21)
    imgs, texts = [], []
    try:
        for prov in render.PROVINCES:
            if prov not in held:
                continue
            for _ in range(PER_PROVINCE):
                kind = render.sample_kind(rng)
                text = prov + render.random_text(kind, rng)[1:]
                plate, double = render.render_plate(text, kind, rng)
                imgs.append(render.augment(plate, double, rng))
                texts.append(text)
    finally:
        render.REAL_PROVINCE_P, render.REAL_ALNUM_P = saved
        render._real.clear()
    return np.stack(imgs), texts


def predict(model, imgs):
    out = []
    with torch.no_grad():
        for i in range(0, len(imgs), 512):
            out += train.decode(model(train.to_input(torch.from_numpy(np.ascontiguousarray(imgs[i:i + 512])))))
    return out


def report(model, val, pimgs, ptexts, z):
    r = {}
    rendered = []
    for k, (imgs, texts) in val.items():
        acc = np.mean([p == t for p, t in zip(predict(model, imgs), texts)])
        r["rendered_" + k] = round(100 * acc, 2)
        rendered.append(acc)
    r["rendered_mean"] = round(100 * float(np.mean(rendered)), 2)
    pred = predict(model, pimgs)
    per = collections.defaultdict(lambda: [0, 0])
    confusions = collections.Counter()
    for p, t in zip(pred, ptexts):
        ok = p[:1] == t[:1]
        per[t[0]][0] += ok
        per[t[0]][1] += 1
        if not ok:
            confusions[t[0] + "→" + (p[:1] or "∅")] += 1
    r["province_char"] = round(100 * sum(a for a, _ in per.values()) / max(1, len(pred)), 2)
    r["province_exact_plate"] = round(100 * np.mean([p == t for p, t in zip(pred, ptexts)]), 2)
    r["per_province"] = {k: round(100 * a / n, 1) for k, (a, n) in sorted(per.items(), key=lambda kv: kv[1][0] / kv[1][1])}
    r["confusions"] = confusions.most_common(15)
    lp = predict(model, z["lpr_held"])
    r["lprnet_heldout"] = round(100 * np.mean([p == str(t) for p, t in zip(lp, z["lpr_held_texts"])]), 2)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/plume-plates-4"))
    ap.add_argument("--json")
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(2)
    render.load_font_glyphs(os.path.join(args.work, "fonts.npz"))
    z = np.load(os.path.join(args.work, "real.npz"))
    val = train.synth_val()
    pimgs, ptexts = province_set(z)
    out = {}
    for path in args.models:
        sd = torch.load(path, map_location="cpu")
        if "model" in sd:
            sd = sd["model"]
        n = len({k.split(".")[1] for k in sd if k.startswith("members.")})
        model = train.Ensemble([train.Net() for _ in range(n)]) if n else train.Net()
        model.load_state_dict(sd)
        model.eval()
        out[path] = report(model, val, pimgs, ptexts, z)
        print(path, json.dumps(out[path], ensure_ascii=False), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
