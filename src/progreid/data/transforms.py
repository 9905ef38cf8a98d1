"""Batch image transforms in torch, on the model's device.

Per-image PIL transforms are the classic CPU bottleneck of re-ID training; here a whole uint8
batch is flipped, padded-and-cropped, normalised and randomly erased with a few tensor ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    flip: float = 0.5          # probability of a horizontal flip
    pad: int = 10              # zero-pad then random-crop back to size (0 = off)
    erase: float = 0.5         # probability of random erasing (Zhong et al.)
    erase_area: tuple[float, float] = (0.02, 0.4)
    erase_ratio: float = 0.3   # aspect ratio range [r, 1/r]


def to_tensor(batch: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1] on ``device`` (channels_last memory, free of copies)."""
    x = torch.from_numpy(np.array(batch, copy=True)) if isinstance(batch, np.ndarray) else batch
    x = x.to(device, non_blocking=True).permute(0, 3, 1, 2)
    return x.float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess(batch: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Test-time transform: scale, ImageNet normalisation (images are already at input size)."""
    return normalize(to_tensor(batch, device)).contiguous(memory_format=torch.channels_last)


def augment(batch: np.ndarray | torch.Tensor, cfg: AugmentConfig, generator: torch.Generator,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """Training transform. Random draws come from ``generator`` (on CPU) so runs are repeatable."""
    x = torch.from_numpy(np.array(batch, copy=True)) if isinstance(batch, np.ndarray) else batch
    n, h, w, _ = x.shape
    if cfg.pad > 0:
        p = cfg.pad
        padded = torch.nn.functional.pad(x, (0, 0, p, p, p, p))  # NHWC: pad W and H
        oy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        rows = (oy[:, None] + torch.arange(h))[:, :, None]
        cols = (ox[:, None] + torch.arange(w))[:, None, :]
        x = padded[torch.arange(n)[:, None, None], rows, cols]
    flip = torch.rand(n, generator=generator) < cfg.flip
    erase = torch.rand(n, generator=generator) < cfg.erase
    area = torch.empty(n).uniform_(*cfg.erase_area, generator=generator) * h * w
    log_r = torch.empty(n).uniform_(np.log(cfg.erase_ratio), -np.log(cfg.erase_ratio), generator=generator)
    eh = torch.sqrt(area * torch.exp(log_r)).round().clamp(1, h).long()
    ew = torch.sqrt(area / torch.exp(log_r)).round().clamp(1, w).long()
    ey = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    ex = (torch.rand(n, generator=generator) * (w - ew + 1)).long()

    out = to_tensor(x, device)
    flip = flip.to(out.device)
    out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    out = normalize(out)
    ys = torch.arange(h, device=out.device)[None, :, None]
    xs = torch.arange(w, device=out.device)[None, None, :]
    ey, ex, eh, ew, erase = (t.to(out.device) for t in (ey, ex, eh, ew, erase))
    mask = ((ys >= ey[:, None, None]) & (ys < (ey + eh)[:, None, None])
            & (xs >= ex[:, None, None]) & (xs < (ex + ew)[:, None, None]) & erase[:, None, None])
    out = out.masked_fill(mask[:, None], 0.0)  # 0 after normalisation = the ImageNet mean colour
    return out.contiguous(memory_format=torch.channels_last)
