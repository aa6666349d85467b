"""Synthetic Chinese licence-plate renderer for training Plume's recogniser.

Every plate is drawn procedurally at GA 36 dimensions (millimetres scaled to
pixels) with fonts from Debian packages (fonts-wqy-zenhei, fonts-noto-cjk,
fonts-dejavu-core). No image is copied from anywhere.

Kinds: blue single row (440x140), yellow single row (440x140), yellow double
row (440x220), green new-energy 8 characters (480x140, small gradient and
large yellow-green), white (police) and black (Hong Kong/Macau, consulate).

The training sample is what the Go runtime feeds the network: a perspective
rectification of the (jittered) plate corners found in a degraded scene, then
the model-input layout below. Keep model_input() identical to
edge/vision/recognise.go.

    python3 render.py preview OUT.png     # contact sheet of augmented samples
"""

import math
import random
import sys
import zlib

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
DIGITS = "0123456789"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # GA 36: no I, no O
SPECIAL = "学警港澳挂使领"
# Index 0 is the CTC blank; class i+1 is CHARS[i]. edge/vision/charset.go
# holds the same string.
CHARS = PROVINCES + DIGITS + LETTERS + SPECIAL

IN_H, IN_W = 32, 128          # model input
DOUBLE_W, DOUBLE_H = 160, 80  # rectified double-row plate before the split
TOP_W, BOTTOM_W = 48, 80      # widths of the two rows in the model input
TOP_END, BOTTOM_START = 0.42, 0.34
TOP_X0, TOP_X1 = 0.15, 0.85   # the top row's two characters span 0.25-0.75 of the width

CJK_FONTS = [
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),     # SC
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # SC
]
ALNUM_FONTS = [
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 0),
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),
]

_glyphs = {}
FONT_IDS = 4  # render_plate picks one of this many font choices per plate


def glyph(ch, font_id):
    """Returns the tight grayscale mask (uint8, 255 = ink) of one character."""
    key = (ch, font_id % FONT_IDS)
    g = _glyphs.get(key)
    if g is not None:
        return g
    cjk = ch in PROVINCES or ch in SPECIAL
    fonts = CJK_FONTS if cjk else ALNUM_FONTS
    path, idx = fonts[font_id % len(fonts)]
    font = ImageFont.truetype(path, 96, index=idx)
    im = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(im).text((20, 10), ch, fill=255, font=font)
    a = np.array(im)
    ys, xs = np.nonzero(a > 40)
    g = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    _glyphs[key] = g
    return g


def save_font_glyphs(path):
    """Writes every font glyph mask to PATH (.npz), so that a machine without
    the Debian fonts (a GPU box) renders exactly the same plates."""
    masks, keys = [], []
    for ch in CHARS:
        for f in range(FONT_IDS):
            keys.append("%s|%d" % (ch, f))
            masks.append(glyph(ch, f))
    np.savez_compressed(path, keys=np.array(keys), **{"m%d" % i: m for i, m in enumerate(masks)})


def load_font_glyphs(path):
    z = np.load(path)
    for i, k in enumerate(z["keys"]):
        ch, f = str(k).split("|")
        _glyphs[(ch, int(f))] = z["m%d" % i]


# Real character shapes: binarised crops segmented from real plates
# (../shared/data/plates/chars, EasyPR, Apache-2.0), tight masks per
# character. Empty unless use_real_glyphs() was called.
_real = {}
REAL_PROVINCE_P = 0.6  # share of province characters drawn from real crops
REAL_ALNUM_P = 0.3     # share of letters and digits drawn from real crops


def use_real_glyphs(masks_by_char):
    """masks_by_char: {character: [uint8 mask, 255 = ink, ...]}."""
    _real.clear()
    for ch, ms in masks_by_char.items():
        if ms:
            _real[ch] = ms


def real_mask(crop):
    """The tight mask of one 20x20 binarised crop, or None when empty."""
    ys, xs = np.nonzero(crop > 127)
    if len(ys) < 6:
        return None
    return np.ascontiguousarray(crop[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def pick_glyph(ch, font_id, rng):
    ms = _real.get(ch)
    if ms:
        p = REAL_PROVINCE_P if ch in PROVINCES else REAL_ALNUM_P
        if rng.random() < p:
            return ms[rng.randrange(len(ms))], True
    return glyph(ch, font_id), False


def random_text(kind, rng):
    prov = rng.choice(PROVINCES) if rng.random() < 0.8 else rng.choice("皖浙苏沪粤京豫鲁")
    letter = rng.choice(LETTERS)

    def tail(n):
        # Mostly digits, a few letters, as on real plates.
        nl = rng.choice([0, 0, 1, 1, 2, 3]) if n >= 4 else rng.choice([0, 1])
        pos = set(rng.sample(range(n), min(nl, n)))
        return "".join(rng.choice(LETTERS) if i in pos else rng.choice(DIGITS) for i in range(n))

    if kind == "green":
        if rng.random() < 0.7:  # small new-energy car: D/F third
            return prov + letter + rng.choice("DF") + rng.choice(DIGITS + LETTERS) + "".join(rng.choice(DIGITS) for _ in range(4))
        return prov + letter + "".join(rng.choice(DIGITS) for _ in range(5)) + rng.choice("DF")
    if kind == "white":
        return prov + letter + tail(4) + "警"
    if kind == "black":
        return prov + letter + tail(4) + rng.choice("港澳领")
    if kind in ("yellow", "yellow2") and rng.random() < 0.12:
        return prov + letter + tail(4) + rng.choice("学挂")
    return prov + letter + tail(5)


# (background BGR, ink BGR) per kind; varied per sample.
def colours(kind, rng):
    j = lambda c: tuple(int(np.clip(v + rng.randint(-25, 25), 0, 255)) for v in c)
    if kind == "blue":
        return j((170, 70, 10)), j((245, 245, 245))
    if kind in ("yellow", "yellow2"):
        return j((20, 185, 235)), j((20, 20, 20))
    if kind == "green":
        return j((90, 200, 80)), j((20, 20, 20))
    if kind == "white":
        return j((240, 240, 240)), j((20, 20, 20))
    return j((20, 20, 20)), j((240, 240, 240))


def layout(kind, n):
    """Character boxes (x, y, w, h) in millimetres, and the plate size."""
    if kind == "yellow2":
        boxes = [(110, 15, 80, 60), (250, 15, 80, 60)]
        boxes += [(27.5 + i * 80, 90, 65, 110) for i in range(5)]
        return (440, 220), boxes
    if n == 8:
        boxes = [(15.5, 25, 43, 90), (67.5, 25, 43, 90)]
        boxes += [(161.5 + i * 52, 25, 43, 90) for i in range(6)]
        return (480, 140), boxes
    boxes = [(15.5, 25, 45, 90), (72.5, 25, 45, 90)]
    boxes += [(151.5 + i * 57, 25, 45, 90) for i in range(5)]
    return (440, 140), boxes


def render_plate(text, kind, rng, scale=0.5):
    """Draws a clean plate; returns (BGR image, double_row)."""
    (wmm, hmm), boxes = layout(kind, len(text))
    w, h = int(round(wmm * scale)), int(round(hmm * scale))
    bg, ink = colours(kind, rng)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    if kind == "green":
        if len(text) == 8 and text[-1] in "DF":  # large new-energy: yellow and green
            img[:, : int(w * 0.28)] = (40, 200, 220)
        else:  # small: white at the top fading to green
            t = np.linspace(0, 1, h)[:, None, None]
            top = np.array([235, 245, 235], np.float32)
            img = (top * (1 - t) + np.array(bg, np.float32) * t).astype(np.uint8)
            img = np.repeat(img, w, axis=1) if img.shape[1] == 1 else img
    # Border line inset like real plates.
    bc = ink if kind != "blue" else (235, 235, 235)
    m = max(1, int(3 * scale))
    cv2.rectangle(img, (m, m), (w - 1 - m, h - 1 - m), bc, max(1, int(1.5 * scale * 2)), cv2.LINE_AA)
    if rng.random() < 0.5:  # rivets
        for cx in (0.25, 0.75):
            cv2.circle(img, (int(w * cx), int(h * (0.1 if kind != "yellow2" else 0.06))), max(1, int(4 * scale)), tuple(int(v * 0.7) for v in bg), -1)
    font_id = rng.randrange(4)
    jitter = rng.uniform(-1.5, 1.5)
    for i, (ch, (x, y, bw, bh)) in enumerate(zip(text, boxes)):
        g, real = pick_glyph(ch, font_id, rng)
        gw, gh = int(round(bw * scale)), int(round(bh * scale))
        if ch in "1":  # the digit 1 is narrow on plates; keep it centred
            nw = max(2, gw // 3)
            gx = int(round((x + bw / 2) * scale)) - nw // 2
            gw = nw
        else:
            gx = int(round((x + jitter) * scale))
        gy = int(round(y * scale))
        if real:  # 20-pixel binary crops: upscale smoothly, soften the steps
            mask = cv2.GaussianBlur(cv2.resize(g, (gw, gh), interpolation=cv2.INTER_LINEAR), (3, 3), 0).astype(np.float32) / 255
        else:
            mask = cv2.resize(g, (gw, gh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        c = ink
        if ch in "警" or (kind == "white" and i == 0 and rng.random() < 0.2):
            c = (30, 30, 200)
        roi = img[gy:gy + gh, gx:gx + gw].astype(np.float32)
        mask = mask[: roi.shape[0], : roi.shape[1], None]
        img[gy:gy + gh, gx:gx + gw] = (roi * (1 - mask) + np.array(c, np.float32) * mask).astype(np.uint8)
    # The dot after the second character.
    if kind == "yellow2":
        cv2.circle(img, (int(220 * scale), int(45 * scale)), max(1, int(5 * scale)), ink, -1)
    else:
        dx = (72.5 + 45 + 17) if len(text) == 7 else (67.5 + 43 + 25)
        cv2.circle(img, (int(dx * scale), int(70 * scale)), max(1, int(5 * scale)), ink, -1)
    return img, kind == "yellow2"


def sample_kind(rng):
    r = rng.random()
    if r < 0.34:
        return "blue"
    if r < 0.52:
        return "yellow"
    if r < 0.70:
        return "yellow2"
    if r < 0.86:
        return "green"
    if r < 0.93:
        return "white"
    return "black"


def model_input(rect, double):
    """Turns a rectified plate (BGR) into the 32x128 model input layout.

    Single row: resize to 128x32. Double row: the rectified plate is
    DOUBLE_W x DOUBLE_H; the top row (rows [0, 0.42h), columns [0.15w,
    0.85w): its two characters and a margin) becomes the left 48 columns and
    the bottom row (rows [0.34h, h)) the right 80, so the CTC reads top row
    then bottom row.
    """
    if not double:
        if rect.shape[:2] != (IN_H, IN_W):
            rect = cv2.resize(rect, (IN_W, IN_H), interpolation=cv2.INTER_LINEAR)
        return rect
    h, w = rect.shape[:2]
    top = rect[: int(round(TOP_END * h)), int(round(TOP_X0 * w)):int(round(TOP_X1 * w))]
    bottom = rect[int(round(BOTTOM_START * h)):]
    top = cv2.resize(top, (TOP_W, IN_H), interpolation=cv2.INTER_LINEAR)
    bottom = cv2.resize(bottom, (BOTTOM_W, IN_H), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(np.concatenate([top, bottom], axis=1))


def _background(h, w, rng):
    kind = rng.random()
    base = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    if kind < 0.5:
        noise = cv2.resize(np.random.rand(max(2, h // 8), max(2, w // 8), 3).astype(np.float32), (w, h))
        img += (noise - 0.5) * rng.uniform(20, 120)
    if rng.random() < 0.5:  # grille-like stripes
        step = rng.randint(3, 12)
        img[::step] *= rng.uniform(0.3, 0.9)
    return np.clip(img, 0, 255).astype(np.uint8)


def augment(plate, double, rng, rect_fit=0.0):
    """Places the plate in a degraded scene and rectifies it back with corner
    jitter, as the Go localiser would. Returns the model input (32x128 BGR)."""
    ph, pw = plate.shape[:2]
    # Metal frame around the plate sometimes.
    if rng.random() < 0.3:
        f = rng.randint(1, 4)
        col = (rng.randint(0, 255),) * 3
        plate = cv2.copyMakeBorder(plate, f, f, f, f, cv2.BORDER_CONSTANT, value=col)
        ph, pw = plate.shape[:2]
    target_w = rng.uniform(55, 220) if not double else rng.uniform(60, 200)
    s = target_w / pw
    mx, my = int(pw * s * 0.6) + 8, int(ph * s * 0.8) + 8
    cw, ch = int(pw * s) + 2 * mx, int(ph * s) + 2 * my
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    # Random rotation, shear and perspective.
    ang = math.radians(rng.uniform(-10, 10))
    cx, cy = cw / 2, ch / 2
    dst = []
    for x, y in src:
        x, y = (x - pw / 2) * s, (y - ph / 2) * s
        x += rng.uniform(-0.07, 0.07) * pw * s
        y += rng.uniform(-0.1, 0.1) * ph * s
        xr = x * math.cos(ang) - y * math.sin(ang)
        yr = x * math.sin(ang) + y * math.cos(ang)
        dst.append([xr + cx, yr + cy])
    dst = np.float32(dst)
    H = cv2.getPerspectiveTransform(src, dst)
    scene = _background(ch, cw, rng)
    warped = cv2.warpPerspective(plate, H, (cw, ch), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    pm = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), H, (cw, ch))
    scene[pm > 127] = warped[pm > 127]
    scene = _photometric(scene, rng)
    # Rectify from jittered corners.
    jx, jy = 0.04 * target_w, 0.10 * (ph * s)
    grow = rng.uniform(-0.02, 0.08)
    quad = []
    for (x, y), (ux, uy) in zip(dst, [(-1, -1), (1, -1), (1, 1), (-1, 1)]):
        quad.append([x + ux * grow * target_w + rng.uniform(-jx, jx), y + uy * grow * ph * s * 2 + rng.uniform(-jy, jy)])
    quad = np.float32(quad)
    if rect_fit > 0 and rng.random() < rect_fit:
        # As when the localiser falls back to the minimum-area rectangle:
        # the plate's own rotation and shear stay in the crop.
        box = cv2.boxPoints(cv2.minAreaRect(quad))
        c = box.mean(0)
        a = np.arctan2(box[:, 1] - c[1], box[:, 0] - c[0])
        box = box[np.argsort(a)]
        box = np.roll(box, -int(np.argmin(box[:, 0] - c[0] + box[:, 1] - c[1])), axis=0)
        if np.linalg.norm(box[1] - box[0]) >= np.linalg.norm(box[2] - box[1]):
            quad = np.float32(box)
    ow, oh = (DOUBLE_W, DOUBLE_H) if double else (IN_W, IN_H)
    R = cv2.getPerspectiveTransform(quad, np.float32([[0, 0], [ow, 0], [ow, oh], [0, oh]]))
    rect = cv2.warpPerspective(scene, R, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return model_input(rect, double)


def _photometric(img, rng):
    img = img.astype(np.float32)
    h, w = img.shape[:2]
    if rng.random() < 0.6:  # lighting gradient / backlight
        g = np.linspace(rng.uniform(0.4, 1.2), rng.uniform(0.4, 1.2), w)[None, :, None]
        if rng.random() < 0.5:
            g = np.linspace(rng.uniform(0.4, 1.2), rng.uniform(0.4, 1.2), h)[:, None, None]
        img *= g
    img = img * rng.uniform(0.5, 1.4) + rng.uniform(-50, 50)
    img += np.array([rng.uniform(-20, 20) for _ in range(3)], np.float32)  # colour cast
    if rng.random() < 0.4:  # dirt
        for _ in range(rng.randint(1, 8)):
            c = (rng.randint(0, w), rng.randint(0, h))
            r = rng.randint(1, max(2, h // 18))
            cv2.circle(img, c, r, (rng.uniform(30, 120),) * 3, -1)
    if rng.random() < 0.3:  # shadow band
        x0 = rng.randint(0, w)
        img[:, x0:x0 + rng.randint(5, max(6, w // 2))] *= rng.uniform(0.3, 0.7)
    img = np.clip(img, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.35:
        k = rng.choice([3, 5])
        img = cv2.GaussianBlur(img, (k, k), 0)
    elif r < 0.55:  # motion blur
        k = rng.randint(3, 7)
        kern = np.zeros((k, k), np.float32)
        if rng.random() < 0.5:
            kern[k // 2, :] = 1.0 / k
        else:
            kern[:, k // 2] = 1.0 / k
        img = cv2.filter2D(img, -1, kern)
    if rng.random() < 0.5:
        n = np.random.normal(0, rng.uniform(2, 15), img.shape)
        img = np.clip(img + n, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # low resolution
        f = rng.uniform(0.4, 0.8)
        small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.7:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(15, 90)])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def sample(rng, kind=None, rect_fit=0.0):
    """One training sample: (32x128 BGR uint8, text, kind). rect_fit is the
    probability of rectifying from the minimum-area rectangle instead of
    the corners."""
    kind = kind or sample_kind(rng)
    text = random_text(kind, rng)
    plate, double = render_plate(text, kind, rng)
    return augment(plate, double, rng, rect_fit), text, kind


def seed_for(name):
    return zlib.crc32(name.encode())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "preview":
        rng = random.Random(1)
        np.random.seed(1)
        rows = []
        for k in ["blue", "yellow", "yellow2", "green", "white", "black"]:
            row = [sample(rng, k)[0] for _ in range(4)]
            rows.append(np.concatenate(row, axis=1))
        clean = []
        for k in ["blue", "yellow2", "green"]:
            p, _ = render_plate(random_text(k, rng), k, rng)
            clean.append(cv2.resize(p, (256, int(256 * p.shape[0] / p.shape[1]))))
        sheet = np.concatenate(rows, axis=0)
        sheet = cv2.resize(sheet, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(sys.argv[2], sheet)
        cv2.imwrite(sys.argv[2].replace(".png", "-clean.png"), np.concatenate([cv2.copyMakeBorder(c, 0, 128 - c.shape[0], 0, 0, cv2.BORDER_CONSTANT) for c in clean], axis=1))
    else:
        print(__doc__)
