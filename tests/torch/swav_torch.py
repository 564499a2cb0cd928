#!/usr/bin/env python3
"""The PyTorch twin of `swav-wgpu train` (the pattern of llm.c's train_gpt2.py).

It reads the same TOML keys (a run's config.toml works as is), builds the same network with
torchvision key names, draws crops from the same augmentation distribution, and runs the same
Sinkhorn-Knopp, swapped loss, queue, optimizers (apex-LARC LARS, SGD, Adam), schedule and
weighted k-NN, writing the same metrics.jsonl fields. Numbers are not bit-identical to
swav-wgpu (other random streams), only the procedure is; `--check-fixtures` proves the step
itself against ../shared/fixtures/swav_model.

  python3 tests/torch/swav_torch.py train --config configs/cifar10.toml \
      --data ../shared/data/cifar10/cifar-10-batches-bin/data_batch_1.bin \
      --test-data ../shared/data/cifar10/cifar-10-batches-bin/test_batch.bin --seed 0 --out runs/twin
  python3 tests/torch/swav_torch.py knn --random-init --config configs/cifar10.toml --data ... --test-data ...
  python3 tests/torch/swav_torch.py check-fixtures ../shared/fixtures/swav_model
  python3 tests/torch/swav_torch.py bench --config benches/gpu/r18x1-b256.toml --device cuda --steps 10
  python3 tests/torch/swav_torch.py embed --backbone RUN/backbone.safetensors --config RUN/config.toml \
      --data imgs --out feats.safetensors
  python3 tests/torch/swav_torch.py steps --config CFG.toml --state start.safetensors --steps 3 \
      --out steps.safetensors --float64    # from swav-wgpu's initial weights and crops

CPU here (`pip install torch torchvision safetensors`); CUDA when present (`--device cuda`,
fp32 with TF32 off unless `--tf32`).
"""
import argparse
import json
import math
import os
import sys
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# TrainConfig::default() in src/train/config.rs: the keys a TOML file may leave out.
DEFAULTS = {
    "arch": "resnet18", "width": 0.25, "stem": "cifar", "hidden_mlp": 512, "feat_dim": 128,
    "prototypes": 100, "batch_size": 64,
    "crops": [{"count": 2, "size": 32, "min_scale": 0.14, "max_scale": 1.0},
              {"count": 4, "size": 16, "min_scale": 0.05, "max_scale": 0.14}],
    "crops_for_assign": [0, 1], "temperature": 0.1, "epsilon": 0.05, "sinkhorn_iterations": 3,
    "queue_length": 0, "epoch_queue_starts": 0, "epochs": 20, "lr": 0.15, "final_lr": 0.00015,
    "start_warmup": 0.0, "warmup_epochs": 1.0, "freeze_prototypes_niters": 0, "optimizer": "lars",
    "weight_decay": 1e-6, "momentum": 0.9, "trust_coefficient": 0.001, "exclude_bias_and_bn": False,
    "sync_bn": False,  # data-parallel only; the twin is one process
    # Loss scaling and precision: read and not applied (the twin computes in float32 / float64, where a
    # power-of-two scale changes no number; swav-wgpu tests that it does not).
    "loss_scale": "off", "loss_scale_growth_interval": 2000, "precision": "f32",
    "seed": 0, "color_jitter": 0.8, "hue": 0.2, "blur_probability": 0.5, "gray_probability": 0.2,
}
MEAN = torch.tensor([0.4914, 0.4822, 0.4465])  # src/data/mod.rs, used for every dataset
STD = torch.tensor([0.2470, 0.2435, 0.2616])
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
LARC_EPS = 1e-8
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


def load_config(path, overrides):
    cfg = dict(DEFAULTS)
    if path:
        with open(path, "rb") as f:
            user = tomllib.load(f)
        unknown = set(user) - set(DEFAULTS) - {"data", "test_data", "max_side", "cache_dir"}
        if unknown:
            sys.exit(f"error: {path}: unknown config keys {sorted(unknown)}")
        cfg.update(user)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def n_crops(cfg):
    return sum(c["count"] for c in cfg["crops"])


# ---------------------------------------------------------------------------------------------
# Data: CIFAR binary batches and ImageFolder trees, kept as uint8 [N, 3, H, W].

def load_cifar_bin(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        sys.exit(f"error: '{path}' is not a whole number of 3073-byte CIFAR records")
    rec = raw.reshape(-1, 3073)
    return torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(rec[:, 0].astype(np.int64))


def load_folder(path, size=None):
    from PIL import Image
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    ext = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
    items = []
    if classes:
        for ci, c in enumerate(classes):
            for n in sorted(os.listdir(os.path.join(path, c))):
                if n.lower().endswith(ext):
                    items.append((os.path.join(path, c, n), ci))
    else:
        items = [(os.path.join(path, n), -1) for n in sorted(os.listdir(path)) if n.lower().endswith(ext)]
    imgs = []
    for p, _ in items:
        im = np.asarray(Image.open(p).convert("RGB"))
        imgs.append(torch.from_numpy(im.copy()).permute(2, 0, 1))
    shapes = {tuple(i.shape) for i in imgs}
    if len(shapes) != 1:
        sys.exit(f"error: '{path}': the twin takes images of one size only, found {sorted(shapes)[:3]}")
    labels = torch.tensor([l for _, l in items]) if classes else None
    return torch.stack(imgs), labels


def load_data(path):
    if path is None:
        sys.exit("error: the twin has no built-in dataset: give --data (CIFAR .bin or an image folder)")
    if os.path.isfile(path):
        return load_cifar_bin(path)
    if os.path.isdir(os.path.join(path, "train")):
        return load_folder(os.path.join(path, "train"))
    return load_folder(path)


# ---------------------------------------------------------------------------------------------
# Multi-crop augmentation (src/data/augment.rs), vectorised over a batch. Per crop:
# RandomResizedCrop (torchvision's window draw; bilinear at pixel centres, edges clamped),
# horizontal flip p 0.5, colour jitter (brightness, contrast, saturation in [1-s, 1+s], hue
# shift in [-hue, hue], random order) with p 0.8, grayscale, Gaussian blur, normalisation.

def crop_boxes(n, w, h, scale, rng):
    area = w * h
    target = area * rng.uniform(scale[0], scale[1], (n, 10))
    ratio = np.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3), (n, 10)))
    cw = np.round(np.sqrt(target * ratio))
    ch = np.round(np.sqrt(target / ratio))
    ok = (cw >= 1) & (ch >= 1) & (cw <= w) & (ch <= h)
    first = np.argmax(ok, axis=1)
    rows = np.arange(n)
    bw, bh = cw[rows, first], ch[rows, first]
    x = np.floor(rng.uniform(0, 1, n) * (w - bw + 1))
    y = np.floor(rng.uniform(0, 1, n) * (h - bh + 1))
    none = ~ok.any(axis=1)  # fallback: the central crop (square images keep their full size)
    bw[none], bh[none], x[none], y[none] = w, h, 0, 0
    return x, y, bw, bh


def gray(px):
    return 0.299 * px[:, 0:1] + 0.587 * px[:, 1:2] + 0.114 * px[:, 2:3]


def rgb_to_hsv(px):
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    mx, _ = px.max(1)
    mn, _ = px.min(1)
    d = mx - mn
    safe = torch.where(d == 0, torch.ones_like(d), d)
    h = torch.where(mx == r, torch.remainder((g - b) / safe, 6.0) / 6.0,
                    torch.where(mx == g, ((b - r) / safe + 2.0) / 6.0, ((r - g) / safe + 4.0) / 6.0))
    h = torch.where(d == 0, torch.zeros_like(h), h)
    s = torch.where(mx == 0, torch.zeros_like(mx), d / torch.where(mx == 0, torch.ones_like(mx), mx))
    return h, s, mx


def hsv_to_rgb(h, s, v):
    h6 = torch.remainder(h, 1.0) * 6.0
    i = torch.floor(h6)
    f = h6 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long().clamp(0, 5)
    sectors = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros(h.shape[0], 3, *h.shape[1:], dtype=h.dtype)
    for k, (a, b, c) in enumerate(sectors):
        m = (i == k).unsqueeze(1)
        out = torch.where(m, torch.stack([a, b, c], 1), out)
    return out


def color_jitter(px, strength, hue, rng):
    n = px.shape[0]
    lo, hi = max(0.0, 1.0 - strength), 1.0 + strength
    order = np.argsort(rng.uniform(size=(n, 4)), axis=1)
    factors = torch.from_numpy(rng.uniform(lo, hi, (n, 3)).astype(np.float32))
    shift = torch.from_numpy(rng.uniform(-hue, hue, n).astype(np.float32)) if hue > 0 else torch.zeros(n)
    # Each sample has its own order: every round computes all four ops and each sample keeps
    # the one its order names (4x the arithmetic on tiny crops, no per-sample Python loop).
    for step in range(4):
        op = torch.from_numpy(order[:, step])
        bright = (px * factors[:, 0].view(-1, 1, 1, 1)).clamp(0, 1)
        mean = gray(px).mean((1, 2, 3), keepdim=True)
        contrast = (mean + (px - mean) * factors[:, 1].view(-1, 1, 1, 1)).clamp(0, 1)
        g = gray(px)
        sat = (g + (px - g) * factors[:, 2].view(-1, 1, 1, 1)).clamp(0, 1)
        hh, ss, vv = rgb_to_hsv(px)
        hue_px = hsv_to_rgb(hh + shift.view(-1, 1, 1), ss, vv)
        sel = op.view(-1, 1, 1, 1)
        px = torch.where(sel == 0, bright, torch.where(sel == 1, contrast, torch.where(sel == 2, sat, hue_px)))
    return px


def gaussian_blur(px, rng):
    n, _, size, _ = px.shape
    sigma = rng.uniform(0.1, 2.0, n)
    radius = np.maximum(np.minimum(np.ceil(2 * sigma), size // 2), 1).astype(int)
    r_max = int(radius.max())
    d = np.arange(-r_max, r_max + 1)
    k = np.exp(-(d[None, :] ** 2) / (2 * sigma[:, None] ** 2)) * (np.abs(d)[None, :] <= radius[:, None])
    k = torch.from_numpy((k / k.sum(1, keepdims=True)).astype(np.float32))  # [n, 2R+1]
    for dim in (3, 2):
        pad = (r_max, r_max, 0, 0) if dim == 3 else (0, 0, r_max, r_max)
        x = F.pad(px, pad, mode="replicate")
        win = x.unfold(dim, 2 * r_max + 1, 1)  # [..., 2R+1]
        px = (win * k.view(n, 1, 1, 1, -1)).sum(-1)
    return px


def augment(images, crop, cfg, rng):
    """One crop of each image of a uint8 batch [n, 3, H, W] -> normalised [n, 3, size, size]."""
    n, _, h, w = images.shape
    size = crop["size"]
    x0, y0, bw, bh = crop_boxes(n, w, h, (crop["min_scale"], crop["max_scale"]), rng)
    o = (2 * np.arange(size) + 1) / size
    gx = (2 * x0[:, None] + o[None, :] * bw[:, None]) / w - 1  # pixel x0 + (i+0.5) w/size - 0.5
    gy = (2 * y0[:, None] + o[None, :] * bh[:, None]) / h - 1
    grid = np.stack(np.broadcast_arrays(gx[:, None, :], gy[:, :, None]), -1).astype(np.float32)
    src = images.float() / 255.0
    px = F.grid_sample(src, torch.from_numpy(grid), mode="bilinear", padding_mode="border", align_corners=False)
    flip = torch.from_numpy(rng.uniform(size=n) < 0.5).view(-1, 1, 1, 1)
    px = torch.where(flip, px.flip(3), px)
    jit = torch.from_numpy(rng.uniform(size=n) < 0.8).view(-1, 1, 1, 1)
    if cfg["color_jitter"] > 0 or cfg["hue"] > 0:
        px = torch.where(jit, color_jitter(px, cfg["color_jitter"], cfg["hue"], rng), px)
    gr = torch.from_numpy(rng.uniform(size=n) < cfg["gray_probability"]).view(-1, 1, 1, 1)
    px = torch.where(gr, gray(px).expand_as(px), px)
    if cfg["blur_probability"] > 0:
        bl = torch.from_numpy(rng.uniform(size=n) < cfg["blur_probability"]).view(-1, 1, 1, 1)
        px = torch.where(bl, gaussian_blur(px, rng), px)
    return (px - MEAN.view(1, 3, 1, 1)) / STD.view(1, 3, 1, 1)


def multicrop(images, cfg, rng):
    return [augment(images, c, cfg, rng) for c in cfg["crops"] for _ in range(c["count"])]


def eval_view(images, size):
    x = images.float() / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        # src/data/augment.rs eval_view: the whole image, bilinear at pixel centres, no antialias.
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return (x - MEAN.view(1, 3, 1, 1)) / STD.view(1, 3, 1, 1)


# ---------------------------------------------------------------------------------------------
# The network: ResNet-18/34/50 with torchvision key names and a width multiplier, the SwAV head.

def scaled(c, width):
    return max(1, int(math.floor(c * width + 0.5)))  # Rust's f32::round (half away from zero)


def bn2d(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def downsample(cin, cout, stride):
    """torchvision's identity branch when the shape changes: conv1x1 (stride) + BN, else None."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = bn2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = bn2d(planes)
        self.downsample = downsample(cin, planes, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = bn2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = bn2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = bn2d(cout)
        self.downsample = downsample(cin, cout, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, arch, width, stem):
        super().__init__()
        blocks = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3]}[arch]
        block = Bottleneck if arch == "resnet50" else BasicBlock
        c = scaled(64, width)
        if stem not in ("cifar", "cifar_pool", "imagenet"):
            raise SystemExit(f"unknown stem '{stem}': use cifar, cifar_pool or imagenet")
        self.stem = stem
        # cifar: 3x3/1; cifar_pool: 3x3/1 + 3x3/2 max-pool; imagenet: 7x7/2 + 3x3/2 max-pool.
        self.conv1 = nn.Conv2d(3, c, 7, 2, 3, bias=False) if stem == "imagenet" else nn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.bn1 = bn2d(c)
        cin = c
        for li, (n, base) in enumerate(zip(blocks, [64, 128, 256, 512])):
            planes = scaled(base, width)
            layer = []
            for b in range(n):
                layer.append(block(cin, planes, 2 if (b == 0 and li > 0) else 1))
                cin = planes * block.expansion
            setattr(self, f"layer{li + 1}", nn.Sequential(*layer))
        self.feature_dim = cin

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if self.stem in ("imagenet", "cifar_pool"):
            x = F.max_pool2d(x, 3, 2, 1)
        for li in range(1, 5):
            x = getattr(self, f"layer{li}")(x)
        return x.mean((2, 3))


class SwAV(nn.Module):
    """Backbone + official head; parameter names as swav-wgpu's state (torchvision + swav)."""

    def __init__(self, cfg):
        super().__init__()
        self.backbone = ResNet(cfg["arch"], cfg["width"], cfg["stem"])
        f, hdim, d = self.backbone.feature_dim, cfg["hidden_mlp"], cfg["feat_dim"]
        if hdim == 0:
            self.projection_head = nn.Linear(f, d)
        else:
            self.projection_head = nn.Sequential(nn.Linear(f, hdim), nn.BatchNorm1d(hdim, eps=BN_EPS, momentum=BN_MOMENTUM),
                                                 nn.ReLU(), nn.Linear(hdim, d))
        self.prototypes = nn.Linear(d, cfg["prototypes"], bias=False)

    def named_state(self):
        """Flat names as swav-wgpu writes them (backbone keys without a prefix)."""
        out = {}
        for k, v in self.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            out[k[len("backbone."):] if k.startswith("backbone.") else k] = v
        return out

    def load_named(self, state, strict=True):
        own = dict(self.named_parameters())
        own.update({k: b for k, b in self.named_buffers() if not k.endswith("num_batches_tracked")})
        missing = []
        with torch.no_grad():
            for k, t in own.items():
                key = k[len("backbone."):] if k.startswith("backbone.") else k
                if key in state:
                    src = state[key]
                    if tuple(src.shape) != tuple(t.shape):
                        raise ValueError(f"'{key}' has shape {tuple(src.shape)}, the model needs {tuple(t.shape)}")
                    t.copy_(src.to(t.dtype))
                else:
                    missing.append(key)
        if strict and missing:
            raise ValueError(f"the state lacks {missing[:5]}")
        return missing

    def forward(self, crops):
        # Consecutive crops of one resolution pass through the backbone together (official
        # multi-resolution forward: batch-norm statistics per resolution group).
        feats, start = [], 0
        while start < len(crops):
            end = start
            while end < len(crops) and crops[end].shape[-1] == crops[start].shape[-1]:
                end += 1
            feats.append(self.backbone(torch.cat(crops[start:end])))
            start = end
        z = self.projection_head(torch.cat(feats))
        emb = F.normalize(z, dim=1, p=2)
        return emb, self.prototypes(emb)


def init_random(model, seed):
    """swav-wgpu's init (Trainer::init_random): kaiming-normal fan-out convs, PyTorch-default
    uniform Linear weights and biases, batch-norm 1 / 0. Same law, another random stream."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.weight.shape[0] * m.weight.shape[2] * m.weight.shape[3]
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.weight.shape[1])
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * bound)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)


# ---------------------------------------------------------------------------------------------
# The objective (facebookresearch/swav main_swav.py, world size 1).

@torch.no_grad()
def sinkhorn(out, epsilon, iterations):
    q = torch.exp(out / epsilon).t()  # K x B
    b, k = q.shape[1], q.shape[0]
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    q *= b
    return q.t()


def swav_loss(emb, scores, prototypes_w, cfg, queues, use_queue):
    bs, nc = cfg["batch_size"], n_crops(cfg)
    loss, codes = 0.0, []
    for i, c in enumerate(cfg["crops_for_assign"]):
        with torch.no_grad():
            out = scores[bs * c:bs * (c + 1)].detach()
            if queues is not None:
                if use_queue:
                    out = torch.cat((queues[i] @ prototypes_w.t(), out))
                queues[i][bs:] = queues[i][:-bs].clone()
                queues[i][:bs] = emb[c * bs:(c + 1) * bs].detach()
            q = sinkhorn(out, cfg["epsilon"], cfg["sinkhorn_iterations"])[-bs:]
            codes.append(q)
        subloss = 0.0
        for v in range(nc):
            if v == c:
                continue
            x = scores[bs * v:bs * (v + 1)] / cfg["temperature"]
            subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
        loss += subloss / (nc - 1)
    return loss / len(cfg["crops_for_assign"]), codes


def swav_step(model, opt, crops, cfg, lr, prototypes_on, queues=None, use_queue=False):
    """One training step in the official order: renormalise the prototypes, forward, swapped
    loss, backward, optimizer. Returns (loss tensor, codes)."""
    with torch.no_grad():
        model.prototypes.weight.copy_(F.normalize(model.prototypes.weight, dim=1, p=2))
    emb, scores = model(crops)
    loss, codes = swav_loss(emb, scores, model.prototypes.weight, cfg, queues, use_queue)
    model.zero_grad(set_to_none=True)
    loss.backward()
    opt.step(lr, prototypes_on)
    return loss, codes


# ---------------------------------------------------------------------------------------------
# Optimizers (src/optim: shaders/optim/*.wgsl), hand-written so each rule is the one swav-wgpu runs.

def lr_schedule(base, final, start_warmup, warmup_iters, total):
    warm = [start_warmup + (base - start_warmup) * (i / (warmup_iters - 1) if warmup_iters > 1 else 0.0)
            for i in range(min(warmup_iters, total))]
    n = max(total - warmup_iters, 0)
    return warm + [final + 0.5 * (base - final) * (1 + math.cos(math.pi * t / n)) for t in range(n)]


class Optimizer:
    def __init__(self, model, cfg):
        self.kind = cfg["optimizer"]
        if self.kind not in ("lars", "sgd", "adam"):
            sys.exit(f"error: unknown optimizer '{self.kind}': use lars, sgd or adam")
        self.cfg = cfg
        self.params = [(n, p) for n, p in model.named_parameters()]
        self.state = {n: {} for n, _ in self.params}

    @torch.no_grad()
    def step(self, lr, prototypes_on):
        c = self.cfg
        for name, p in self.params:
            if p.grad is None or (name == "prototypes.weight" and not prototypes_on):
                continue  # a frozen parameter: no update, no moments (its t starts at unfreezing)
            plain = c["exclude_bias_and_bn"] and p.dim() == 1
            wd = 0.0 if plain else c["weight_decay"]
            g = p.grad
            st = self.state[name]
            if self.kind == "adam":
                g = g + wd * p
                t = st["t"] = st.get("t", 0) + 1
                m = st["m"] = ADAM_BETAS[0] * st.get("m", torch.zeros_like(p)) + (1 - ADAM_BETAS[0]) * g
                v = st["v"] = ADAM_BETAS[1] * st.get("v", torch.zeros_like(p)) + (1 - ADAM_BETAS[1]) * g * g
                c1 = -math.expm1(t * math.log(ADAM_BETAS[0]))
                c2 = -math.expm1(t * math.log(ADAM_BETAS[1]))
                p -= lr * (m / c1) / ((v / c2).sqrt() + ADAM_EPS)
                continue
            if self.kind == "lars" and not plain:
                pn, gn = p.norm(), g.norm()
                if pn != 0 and gn != 0:
                    g = (g + wd * p) * (c["trust_coefficient"] * pn / (gn + pn * wd + LARC_EPS))
            else:
                g = g + wd * p
            buf = st["momentum"] = c["momentum"] * st.get("momentum", torch.zeros_like(p)) + g
            p -= lr * buf


# ---------------------------------------------------------------------------------------------
# Evaluation: weighted k-NN on L2-normalised backbone features (src/eval.rs).

@torch.no_grad()
def features(backbone, images, size, device, batch=256):
    backbone.eval()
    out = []
    for i in range(0, images.shape[0], batch):
        f = backbone(eval_view(images[i:i + batch], size).to(device, torch.get_default_dtype()))
        out.append(F.normalize(f, dim=1).cpu())
    backbone.train()
    return torch.cat(out)


@torch.no_grad()
def knn_top1(ftrain, ltrain, ftest, ltest, k, temperature=0.1):
    classes = int(max(ltrain.max(), ltest.max())) + 1
    k = max(1, min(k, ftrain.shape[0]))
    correct = 0
    for i in range(0, ftest.shape[0], 1000):
        sims = ftest[i:i + 1000] @ ftrain.t()
        top, idx = sims.topk(k, dim=1)
        votes = torch.zeros(sims.shape[0], classes, dtype=torch.float64)
        votes.scatter_add_(1, ltrain[idx], torch.exp(top.double() / temperature))
        correct += (votes.argmax(1) == ltest[i:i + 1000]).sum().item()
    return 100.0 * correct / ftest.shape[0]


def knn_eval(backbone, train, test, device):
    size = train[0].shape[-1]
    ftr = features(backbone, train[0], size, device)
    fte = features(backbone, test[0], size, device)
    return knn_top1(ftr, train[1], fte, test[1], 20), knn_top1(ftr, train[1], fte, test[1], 200)


# ---------------------------------------------------------------------------------------------
# The run loop: same metrics.jsonl fields as swav-wgpu (src/run/).

def code_stats(codes):
    q = torch.cat(codes)
    q = q / q.sum(1, keepdim=True).clamp_min(1e-30)
    ent = -(q * torch.log(q.clamp_min(1e-30))).sum(1)
    return ent.sum().item(), q.shape[0], q.argmax(1)


def train(cfg, args):
    device = torch.device(args.device)
    seed = cfg["seed"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, labels = load_data(args.data)
    test = load_data(args.test_data) if args.test_data else None
    bs = cfg["batch_size"]
    if images.shape[0] < bs:
        sys.exit(f"error: batch size {bs} is larger than the dataset ({images.shape[0]} images)")
    iters = images.shape[0] // bs
    total = cfg["epochs"] * iters
    warm = min(int(round(cfg["warmup_epochs"] * iters)), total)
    sched = lr_schedule(cfg["lr"], cfg["final_lr"], cfg["start_warmup"], warm, total)
    model = SwAV(cfg)
    init_random(model, seed)
    model.to(device)
    opt = Optimizer(model, cfg)
    lq = (cfg["queue_length"] // bs) * bs
    queues = torch.zeros(len(cfg["crops_for_assign"]), lq, cfg["feat_dim"], device=device) if lq else None
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.toml"), "w") as f:
        for k, v in cfg.items():
            if k != "crops":
                f.write(f"{k} = {json.dumps(v)}\n")
        for c in cfg["crops"]:
            f.write("\n[[crops]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in c.items()))
    metrics = open(os.path.join(args.out, "metrics.jsonl"), "w")
    ln_k = math.log(cfg["prototypes"])
    print(f"twin: training {cfg['arch']} x{cfg['width']} ({cfg['stem']} stem) on {args.data} ({images.shape[0]} images), "
          f"{cfg['epochs']} epochs, batch {bs}, {cfg['optimizer']} lr {cfg['lr']}, device {device}", file=sys.stderr, flush=True)
    start, it = time.time(), 0
    for epoch in range(cfg["epochs"]):
        order = torch.from_numpy(rng.permutation(images.shape[0]))
        t0, loss_sum, ent_sum, rows, used = time.time(), 0.0, 0.0, 0, torch.zeros(cfg["prototypes"], dtype=torch.bool)
        for b in range(iters):
            crops = [c.to(device) for c in multicrop(images[order[b * bs:(b + 1) * bs]], cfg, rng)]
            lr = sched[it] if it < len(sched) else cfg["final_lr"]
            use_queue = lq > 0 and epoch >= cfg["epoch_queue_starts"] and \
                (it - cfg["epoch_queue_starts"] * iters) * bs >= lq
            loss, codes = swav_step(model, opt, crops, cfg, lr, it >= cfg["freeze_prototypes_niters"], queues, use_queue)
            lv = loss.item()
            if not math.isfinite(lv):
                sys.exit(f"error: the loss became {lv} at iteration {it}")
            e, r, am = code_stats(codes)
            ent_sum, rows, loss_sum = ent_sum + e, rows + r, loss_sum + lv
            used[am.cpu()] = True
            rate = (b + 1) * bs / (time.time() - t0)
            metrics.write(json.dumps({"iteration": it, "epoch": epoch, "loss": lv, "lr": lr, "img_per_s": rate}) + "\n")
            it += 1
        line = {"iteration": it, "epoch": epoch + 1, "loss_mean": loss_sum / iters, "code_entropy": ent_sum / rows,
                "prototypes_in_use": int(used.sum()), "img_per_s": iters * bs / (time.time() - t0)}
        msg = (f"epoch {epoch + 1}/{cfg['epochs']}  loss {line['loss_mean']:.4f}  entropy {line['code_entropy']:.2f}  "
               f"prototypes {line['prototypes_in_use']}/{cfg['prototypes']}  {line['img_per_s']:.0f} img/s")
        if test is not None and args.eval_every and (epoch + 1) % args.eval_every == 0 and epoch + 1 < cfg["epochs"]:
            k20, k200 = knn_eval(model.backbone, (images, labels), test, device)
            line.update({"knn_top1": k20, "knn_top1_k200": k200})
            msg += f"  k-NN {k20:.2f} %"
        if abs(line["loss_mean"] - ln_k) < 0.02 * ln_k:
            msg += f"  (loss at ln K = {ln_k:.3f}: collapsed?)"
        metrics.write(json.dumps(line) + "\n")
        metrics.flush()
        print(msg, file=sys.stderr, flush=True)
    print(f"twin: trained {total} iterations in {time.time() - start:.0f} s", file=sys.stderr)
    save_backbone(model, os.path.join(args.out, "backbone.safetensors"))
    if test is not None and labels is not None:
        k20, k200 = knn_eval(model.backbone, (images, labels), test, device)
        metrics.write(json.dumps({"iteration": total, "epoch": cfg["epochs"], "knn_top1": k20, "knn_top1_k200": k200}) + "\n")
        print(f"k-NN top-1 on the test split: {k20:.2f} % (k=20), {k200:.2f} % (k=200)")
    metrics.close()


def save_backbone(model, path):
    from safetensors.torch import save_file
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.backbone.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    save_file(state, path)


def random_init_knn(cfg, args):
    model = SwAV(cfg)
    init_random(model, cfg["seed"])
    train_set, test = load_data(args.data), load_data(args.test_data)
    k20, k200 = knn_eval(model.backbone.to(args.device), train_set, test, torch.device(args.device))
    print(f"k-NN top-1 (random init): {k20:.2f} % (k=20), {k200:.2f} % (k=200)")


def embed(cfg, args):
    """Backbone features of --data with weights from a swav-wgpu backbone.safetensors."""
    from safetensors.torch import load_file, save_file
    torch.set_default_dtype(torch.float64 if args.float64 else torch.float32)
    model = SwAV(cfg)
    missing = model.load_named(load_file(args.backbone), strict=False)
    missing = [m for m in missing if not (m.startswith("projection_head") or m.startswith("prototypes"))]
    if missing:
        sys.exit(f"error: {args.backbone} lacks {missing[:5]}")
    images, labels = load_data(args.data)
    f = features(model.backbone, images, images.shape[-1], torch.device("cpu"))
    save_file({"features": f.float().contiguous()}, args.out)
    print(f"wrote {f.shape[0]} features of dimension {f.shape[1]} to {args.out}")


# ---------------------------------------------------------------------------------------------
# The fixture check: three LARS steps of ../shared/fixtures/swav_model in float64.

def check_fixtures(fixture_dir):
    from safetensors.torch import load_file
    torch.set_default_dtype(torch.float64)
    index = json.load(open(os.path.join(fixture_dir, "index.json")))
    hp, inp = index["hyperparameters"], index["inputs"]
    init = load_file(os.path.join(fixture_dir, "initial.safetensors"))
    after3 = load_file(os.path.join(fixture_dir, "after3.safetensors"))
    cfg = dict(DEFAULTS)
    cfg.update({"width": 0.125, "stem": "cifar", "hidden_mlp": 64, "feat_dim": 16, "prototypes": 20,
                "batch_size": inp["batch_size"], "crops_for_assign": hp["crops_for_assign"],
                "crops": [{"count": n, "size": s, "min_scale": 0.14, "max_scale": 1.0}
                          for n, s in zip(inp["nmb_crops"], inp["size_crops"])],
                "temperature": hp["temperature"], "epsilon": hp["epsilon"],
                "sinkhorn_iterations": hp["sinkhorn_iterations"], "optimizer": "lars",
                "weight_decay": hp["optimizer"]["weight_decay"], "momentum": hp["optimizer"]["momentum"],
                "trust_coefficient": hp["larc"]["trust_coefficient"], "freeze_prototypes_niters": hp["freeze_prototypes_niters"]})
    model = SwAV(cfg)
    model.load_named({k: v for k, v in init.items() if not k.startswith("crop")}, strict=True)
    crops = [init[f"crop{i}"] for i in range(n_crops(cfg))]
    opt = Optimizer(model, cfg)
    losses = []
    for it, lr in enumerate(hp["lr_per_step"]):
        loss, _ = swav_step(model, opt, crops, cfg, lr, it >= cfg["freeze_prototypes_niters"])
        losses.append(loss.item())
    worst = {"loss": max(abs(a - b) for a, b in zip(losses, after3["losses"].tolist()))}
    state = model.named_state()
    for k, ref in after3.items():
        if k in ("losses", "lr") or k.endswith("num_batches_tracked"):
            continue
        if k.startswith("momentum."):
            name = k[len("momentum."):]
            ours = opt.state[name if name in opt.state else "backbone." + name]["momentum"]
        else:
            ours = state[k]
        if k.endswith("projection_head.0.bias"):
            continue  # true gradient 0: its update is rounding noise (fixtures/README.md)
        worst[k] = ((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()
    return losses, worst


# ---------------------------------------------------------------------------------------------
# Steps from a shared start: swav-wgpu's initial state and crops, the config's schedule.

def steps(cfg, args):
    """`--steps` training steps of `cfg` from the weights and crops (crop0, crop1, ...) of
    --state (a swav-wgpu state; extra keys such as momentum and queues are ignored), with the
    learning-rate schedule of an epoch of --iters-per-epoch steps, the same crops every step.
    Writes the losses, the momentum of every parameter (`momentum.<name>`) and the queues."""
    from safetensors.torch import load_file, save_file
    torch.set_default_dtype(torch.float64 if args.float64 else torch.float32)
    start = load_file(args.state)
    model = SwAV(cfg)
    model.load_named(start, strict=True)
    crops = [start[f"crop{i}"].to(torch.get_default_dtype()) for i in range(n_crops(cfg))]
    bs, iters = cfg["batch_size"], args.iters_per_epoch
    total = cfg["epochs"] * iters
    warm = min(int(round(cfg["warmup_epochs"] * iters)), total)
    sched = lr_schedule(cfg["lr"], cfg["final_lr"], cfg["start_warmup"], warm, total)
    opt = Optimizer(model, cfg)
    lq = (cfg["queue_length"] // bs) * bs
    queues = torch.zeros(len(cfg["crops_for_assign"]), lq, cfg["feat_dim"]) if lq else None
    losses, lrs = [], []
    for it in range(args.steps):
        lr = sched[it] if it < len(sched) else cfg["final_lr"]
        q_start = cfg["epoch_queue_starts"] * iters
        use_queue = lq > 0 and it >= q_start and (it - q_start) * bs >= lq
        loss, _ = swav_step(model, opt, crops, cfg, lr, it >= cfg["freeze_prototypes_niters"], queues, use_queue)
        losses.append(loss.item())
        lrs.append(lr)
        print(f"twin step {it + 1}: loss {losses[-1]:.9f} lr {lr:.9g}", file=sys.stderr, flush=True)
    out = {"losses": torch.tensor(losses, dtype=torch.float64), "lr": torch.tensor(lrs, dtype=torch.float64)}
    for name, st in opt.state.items():
        if "momentum" in st:
            out["momentum." + (name[len("backbone."):] if name.startswith("backbone.") else name)] = st["momentum"]
    for i in range(queues.shape[0] if queues is not None else 0):
        out[f"queue.{i}"] = queues[i]
    save_file({k: v.detach().contiguous() for k, v in out.items()}, args.out)


def bench(cfg, args):
    """Training steps per second on random crops (no data loading), as `swav-wgpu bench`
    times them: forward, Sinkhorn, swapped loss, backward and the optimizer step. One JSON line."""
    device = torch.device(args.device)
    torch.manual_seed(cfg["seed"])
    model = SwAV(cfg)
    init_random(model, cfg["seed"])
    model.to(device)
    opt = Optimizer(model, cfg)
    bs = cfg["batch_size"]
    gen = torch.Generator().manual_seed(1)
    crops = [torch.randn(bs, 3, c["size"], c["size"], generator=gen).to(device)
             for c in cfg["crops"] for _ in range(c["count"])]

    def step():
        return swav_step(model, opt, crops, cfg, cfg["lr"], True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    sync()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(json.dumps({"twin": True, "device": name, "tf32": args.tf32, "ms_per_step": med * 1e3,
                      "img_per_s": bs / med, "batch_size": bs, "steps": args.steps}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("train", "knn", "embed", "bench", "steps"):
        p = sub.add_parser(name)
        p.add_argument("--config")
        p.add_argument("--data")
        p.add_argument("--test-data")
        p.add_argument("--seed", type=int)
        p.add_argument("--epochs", type=int)
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--threads", type=int, default=0)
        p.add_argument("--tf32", action="store_true")
        if name == "train":
            p.add_argument("--out", default="runs/twin")
            p.add_argument("--eval-every", type=int, default=0)
        if name == "knn":
            p.add_argument("--random-init", action="store_true", required=True)
        if name == "bench":
            p.add_argument("--steps", type=int, default=5)
        if name == "embed":
            p.add_argument("--backbone", required=True)
            p.add_argument("--out", required=True)
            p.add_argument("--float64", action="store_true")
        if name == "steps":
            p.add_argument("--state", required=True)
            p.add_argument("--steps", type=int, default=3)
            p.add_argument("--iters-per-epoch", type=int, default=1)
            p.add_argument("--out", required=True)
            p.add_argument("--float64", action="store_true")
    p = sub.add_parser("check-fixtures")
    p.add_argument("dir", nargs="?", default=os.path.join(os.path.dirname(__file__), "../../../shared/fixtures/swav_model"))
    args = ap.parse_args()
    if args.cmd == "check-fixtures":
        losses, worst = check_fixtures(args.dir)
        print("losses", losses)
        bad = {k: v for k, v in worst.items() if v > (1e-9 if k == "loss" else 1e-9)}
        print(f"worst relative error over {len(worst)} tensors: {max(worst.values()):.3g}")
        if bad:
            print("MISMATCH:", bad)
            sys.exit(1)
        print("fixtures: OK")
        return
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, {"seed": args.seed, "epochs": args.epochs})
    if args.data is None and cfg.get("data"):
        args.data = cfg["data"]
    if getattr(args, "test_data", None) is None and cfg.get("test_data"):
        args.test_data = cfg["test_data"]
    if args.cmd == "train":
        train(cfg, args)
    elif args.cmd == "knn":
        random_init_knn(cfg, args)
    elif args.cmd == "bench":
        bench(cfg, args)
    elif args.cmd == "steps":
        steps(cfg, args)
    else:
        embed(cfg, args)


if __name__ == "__main__":
    main()
