"""Batch image transforms in torch, on the model's device.

Per-image PIL transforms are the classic CPU bottleneck of re-ID training; here a whole uint8
batch is flipped, padded-and-cropped, rotated and shifted, normalised and randomly erased with a
few tensor ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from progreid.options import opt

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    flip: float = opt(0.5, ge=0, le=1)   # probability of a horizontal flip
    pad: int = opt(10, integer=True, ge=0)  # zero-pad then random-crop back to size (0 = off)
    erase: float = opt(0.5, ge=0, le=1)  # probability of random erasing (Zhong et al.)
    erase_area: tuple[float, float] = (0.02, 0.4)
    erase_ratio: float = opt(0.3, gt=0, le=1)  # aspect ratio range [r, 1/r]
    rotate: float = opt(0.0, ge=0, le=180)  # random rotation within +-this many degrees (PUL's released code: 20)
    shift: float = opt(0.0, ge=0, le=1)  # random shifts within +-this fraction of height and width (PUL: 0.2)


def to_tensor(batch: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1] on ``device`` (the permute keeps channels-last memory order)."""
    x = torch.from_numpy(np.array(batch, copy=True)) if isinstance(batch, np.ndarray) else batch
    x = x.to(device, non_blocking=True).permute(0, 3, 1, 2)
    return x.to(torch.get_default_dtype()).div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess(batch: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Test-time transform: scale, ImageNet normalisation (images are already at input size)."""
    return normalize(to_tensor(batch, device)).contiguous(memory_format=torch.channels_last)


@dataclass
class AugmentDraws:
    """Every random choice of one batch's augmentation, one row per sample. Drawn for the whole global
    batch from one generator and then sliced, so a sample is augmented alike whichever rank holds
    it (``fit``: the generator is keyed by seed, epoch and batch, never by rank)."""

    oy: torch.Tensor      # crop offsets after padding
    ox: torch.Tensor
    flip: torch.Tensor    # bool
    erase: torch.Tensor   # bool
    ey: torch.Tensor      # erased rectangle
    ex: torch.Tensor
    eh: torch.Tensor
    ew: torch.Tensor
    theta: torch.Tensor   # rotation (radians) and shifts (grid units)
    ty: torch.Tensor
    tx: torch.Tensor

    def rows(self, index: slice | np.ndarray) -> "AugmentDraws":
        return AugmentDraws(**{f: getattr(self, f)[index] for f in self.__dataclass_fields__})


def draw_augment(n: int, h: int, w: int, cfg: AugmentConfig, generator: torch.Generator) -> AugmentDraws:
    """The random choices of ``augment`` for ``n`` images of ``h`` x ``w``, from ``generator`` (CPU)."""
    p = cfg.pad
    oy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
    ox = torch.randint(0, 2 * p + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < cfg.flip
    erase = torch.rand(n, generator=generator) < cfg.erase
    area = torch.empty(n).uniform_(*cfg.erase_area, generator=generator) * h * w
    log_r = torch.empty(n).uniform_(np.log(cfg.erase_ratio), -np.log(cfg.erase_ratio), generator=generator)
    eh = torch.sqrt(area * torch.exp(log_r)).round().clamp(1, h).long()
    ew = torch.sqrt(area / torch.exp(log_r)).round().clamp(1, w).long()
    ey = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    ex = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    theta = (torch.rand(n, generator=generator) * 2 - 1) * np.deg2rad(cfg.rotate)
    ty = (torch.rand(n, generator=generator) * 2 - 1) * cfg.shift * 2  # grid units: the image spans 2
    tx = (torch.rand(n, generator=generator) * 2 - 1) * cfg.shift * 2
    return AugmentDraws(oy, ox, flip, erase, ey, ex, eh, ew, theta, ty, tx)


def augment(batch: np.ndarray | torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu", draws: AugmentDraws | None = None) -> torch.Tensor:
    """Training transform: pad + random crop, flip, rotation and shift, normalisation, random erasing.
    Random choices are ``draws`` (or drawn here from ``generator``, on CPU), so runs are repeatable.

    Crop and flip are per-image uint8 slices (a few microseconds each); scaling, normalisation and
    erasing then run on the whole batch on ``device``. Cheap enough to run inline: a background
    thread would compete with the model for the same CPU cores.
    """
    src = batch.cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
    n, h, w, _ = src.shape
    d = draws if draws is not None else draw_augment(n, h, w, cfg, generator)
    p = cfg.pad
    oy, ox, flip, erase = d.oy.tolist(), d.ox.tolist(), d.flip.tolist(), d.erase.tolist()
    ey, ex, eh, ew = d.ey.tolist(), d.ex.tolist(), d.eh.tolist(), d.ew.tolist()

    out = np.zeros_like(src)
    for i in range(n):
        # pad by p with zeros, crop back to (h, w) at (oy, ox): copy the overlapping window
        dy, dx = oy[i] - p, ox[i] - p
        ys, yd = max(dy, 0), max(-dy, 0)
        xs, xd = max(dx, 0), max(-dx, 0)
        img = src[i, :, ::-1] if flip[i] else src[i]
        out[i, yd:h - ys, xd:w - xs] = img[ys:h - yd, xs:w - xd]
    x = normalize(to_tensor(out, device))
    if cfg.rotate or cfg.shift:
        x = _rotate_and_shift(x, d.theta, d.ty, d.tx)
    for i in range(n):
        if erase[i]:
            x[i, :, ey[i]:ey[i] + eh[i], ex[i]:ex[i] + ew[i]] = 0.0  # 0 = the ImageNet mean colour
    return x.contiguous(memory_format=torch.channels_last)


def rotate_and_shift(x: torch.Tensor, degrees: float, shift: float, generator: torch.Generator) -> torch.Tensor:
    """One random affine per image: rotation in [-degrees, degrees] and shifts in [-shift, shift] of
    the height and width, the uncovered border filled with the nearest edge pixel.

    This is Keras's ``ImageDataGenerator(rotation_range, width_shift_range, height_shift_range,
    fill_mode='nearest')`` that PUL's released ``unsupervised.py`` trains with (bilinear, one combined
    transform). The rotation is of pixels, not of the [-1, 1] grid, so a 256 x 128 crop is not sheared.
    """
    n = len(x)
    theta = (torch.rand(n, generator=generator) * 2 - 1) * np.deg2rad(degrees)
    ty = (torch.rand(n, generator=generator) * 2 - 1) * shift * 2  # grid units: the image spans 2
    tx = (torch.rand(n, generator=generator) * 2 - 1) * shift * 2
    return _rotate_and_shift(x, theta, ty, tx)


def _rotate_and_shift(x: torch.Tensor, theta: torch.Tensor, ty: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
    _, _, h, w = x.shape
    cos, sin = torch.cos(theta), torch.sin(theta)
    # output pixel -> input pixel, in grid units: S^-1 R S with S = diag(w, h) / 2
    affine = torch.stack([torch.stack([cos, -sin * h / w, tx], 1),
                          torch.stack([sin * w / h, cos, ty], 1)], 1).to(x.device, x.dtype)
    grid = F.affine_grid(affine, list(x.shape), align_corners=False)
    return F.grid_sample(x.contiguous(), grid, mode="bilinear", padding_mode="border", align_corners=False)
