#!/usr/bin/env python3
"""Pillow + numpy anchor for the data-loader bench: SwAV's multi-crop transform, per core.

Reimplements facebookresearch/swav's MultiCropDataset transform (RandomResizedCrop,
RandomHorizontalFlip, colour distortion with s=1.0, PILRandomGaussianBlur, ToTensor,
Normalize) the way torchvision runs it on PIL images, without torch. Single process,
single thread; each measurement prints one JSON line on stdout.

    python3 benches/pillow_swav.py --photos DIR [--crops 2x224,6x96] [--seconds 8] \
        [--big DIR_OF_LARGE_JPEGS] [--draft-side 256]
"""
import argparse
import json
import math
import os
import platform
import random
import sys
import time

try:
    import numpy as np
    from PIL import Image, ImageEnhance, ImageFilter, features
    import PIL
except ImportError as e:
    sys.exit(f"pillow_swav.py needs Pillow and numpy ({e}); try: python3 -m pip install pillow numpy")

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.228, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)
EXTS = (".jpg", ".jpeg", ".png")
RNG = random.Random(0)


def list_images(root):
    """Image files under root, recursively, sorted."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        out += [os.path.join(d, f) for f in sorted(files) if f.lower().endswith(EXTS)]
    return out


def parse_crops(spec):
    """'2x224,6x96' -> [(2, 224, (0.14, 1.0)), (6, 96, (0.05, 0.14))] as in SwAV's ImageNet recipe."""
    groups = []
    for i, g in enumerate(spec.split(",")):
        count, size = (int(v) for v in g.lower().split("x"))
        groups.append((count, size, (0.14, 1.0) if i == 0 else (0.05, 0.14)))
    return groups


def rrc_params(width, height, scale, ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params: (top, left, h, w)."""
    area = width * height
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * RNG.uniform(*scale)
        aspect = math.exp(RNG.uniform(*log_r))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return RNG.randint(0, height - h), RNG.randint(0, width - w), h, w
    in_ratio = width / height  # fallback: central crop
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def adjust_hue(img, factor):
    """torchvision's PIL hue shift: H channel in HSV moved as uint8, wrapping around."""
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.uint8(int(factor * 255) % 256)  # int() truncates like np.int8(factor * 255)
    return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")


def color_jitter(img, b=0.8, c=0.8, s=0.8, h=0.2):
    """ColorJitter(0.8, 0.8, 0.8, 0.2): the four ops in a random order."""
    order = [0, 1, 2, 3]
    RNG.shuffle(order)
    fb, fc, fs = (RNG.uniform(max(0.0, 1 - x), 1 + x) for x in (b, c, s))
    fh = RNG.uniform(-h, h)
    for op in order:
        if op == 0:
            img = ImageEnhance.Brightness(img).enhance(fb)
        elif op == 1:
            img = ImageEnhance.Contrast(img).enhance(fc)
        elif op == 2:
            img = ImageEnhance.Color(img).enhance(fs)
        else:
            img = adjust_hue(img, fh)
    return img


def one_crop(img, size, scale):
    """One SwAV crop of an RGB PIL image -> float32 CHW array."""
    top, left, h, w = rrc_params(img.width, img.height, scale)
    out = img.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)
    if RNG.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    if RNG.random() < 0.8:
        out = color_jitter(out)
    if RNG.random() < 0.2:  # RandomGrayscale, 3 output channels
        g = np.asarray(out.convert("L"))
        out = Image.fromarray(np.dstack([g, g, g]), "RGB")
    if RNG.random() <= 0.5:  # PILRandomGaussianBlur
        out = out.filter(ImageFilter.GaussianBlur(radius=RNG.uniform(0.1, 2.0)))
    x = np.asarray(out, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (x - MEAN) / STD


def multicrop(img, groups):
    """All crops of one sample, as MultiCropDataset returns them."""
    return [one_crop(img, size, scale) for count, size, scale in groups for _ in range(count)]


def decode(path):
    with Image.open(path) as im:
        return im.convert("RGB")


def short_side_size(w, h, side):
    """(w, h) scaled so the shorter side is `side`."""
    if w <= h:
        return side, max(1, int(round(h * side / w)))
    return max(1, int(round(w * side / h))), side


def decode_big_full(path, side):
    img = decode(path)
    return img.resize(short_side_size(img.width, img.height, side), Image.BILINEAR)


def decode_big_draft(path, side):
    with Image.open(path) as im:
        target = short_side_size(im.width, im.height, side)
        im.draft("RGB", target)  # libjpeg DCT scaling: 1/2, 1/4 or 1/8, staying >= target
        img = im.convert("RGB")
    return img if img.size == target else img.resize(target, Image.BILINEAR)


def measure(name, fn, items, seconds, **extra):
    """Run fn over items (cycling) for ~seconds after one warm-up; print one JSON line."""
    fn(items[0])
    min_n = max(len(items), 20)
    n, t0 = 0, time.perf_counter()
    while True:
        fn(items[n % len(items)])
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= min_n:
            break
    rec = {"bench": name, "per_core_per_s": round(n / elapsed, 2), "n": n, "seconds": round(elapsed, 2)}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", required=True, help="folder of jpg/png images (walked recursively)")
    ap.add_argument("--crops", default="2x224,6x96", help="COUNTxSIZE groups, e.g. 2x224,6x96")
    ap.add_argument("--seconds", type=float, default=8.0, help="wall time per measurement")
    ap.add_argument("--big", help="folder of large JPEGs for the draft-mode decode benches")
    ap.add_argument("--draft-side", type=int, default=256, help="shorter side after the big decodes")
    args = ap.parse_args()

    try:
        turbo = features.version("libjpeg_turbo")
    except Exception:
        turbo = None
    print(f"Pillow {PIL.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"libjpeg-turbo {turbo or 'n/a'}", file=sys.stderr, flush=True)

    try:
        groups = parse_crops(args.crops)
    except ValueError:
        sys.exit(f"bad --crops {args.crops!r}; expected COUNTxSIZE groups such as 2x224,6x96")
    files = list_images(args.photos)
    if not files:
        sys.exit(f"no .jpg/.jpeg/.png images under {args.photos}")
    big = []
    if args.big:
        big = [f for f in list_images(args.big) if f.lower().endswith((".jpg", ".jpeg"))]
        if not big:
            sys.exit(f"no .jpg/.jpeg images under {args.big}")

    crops = {"crops": args.crops}
    measure("pillow_multicrop_with_decode", lambda p: multicrop(decode(p), groups), files, args.seconds, **crops)
    decoded = [decode(p) for p in files]
    measure("pillow_multicrop_from_ram", lambda im: multicrop(im, groups), decoded, args.seconds, **crops)
    del decoded
    measure("pillow_decode", decode, files, args.seconds)
    if big:
        side = {"draft_side": args.draft_side}
        measure("pillow_decode_big_full", lambda p: decode_big_full(p, args.draft_side), big, args.seconds, **side)
        measure("pillow_decode_big_draft", lambda p: decode_big_draft(p, args.draft_side), big, args.seconds, **side)


if __name__ == "__main__":
    main()
