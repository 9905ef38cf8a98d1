"""Extract embeddings for a uint8 image array, batch by batch, in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from progreid.data.transforms import preprocess
from progreid import distributed
from progreid.engine.device import autocast


def extract_features(model: nn.Module, images: np.ndarray, batch_size: int = 0,
                     device: torch.device | str = "cpu", flip: bool = False, progress: bool = True,
                     desc: str = "extract", gather: str = "all") -> np.ndarray | None:
    """(N, D) float32 features of ``images`` (N, H, W, 3) uint8. ``flip`` averages with the mirror.

    ``batch_size=0`` picks 32 on CPU (bigger batches run ~2x slower there: allocator churn) and 256 on GPU.
    Under ``torchrun`` every rank extracts its slice, and every rank gets all the features
    (``gather="all"``) or rank 0 alone does (``"main"``; the others get None).
    """
    if batch_size < 0:
        raise ValueError(f"batch_size {batch_size}: use 0 (by device) or a positive number")
    if distributed.active():
        local = _extract(model, images[distributed.shard(len(images))], batch_size, device, flip, progress, desc)
        return distributed.gather_rows(local, len(images), to=gather)
    return _extract(model, images, batch_size, device, flip, progress, desc)


def _extract(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device | str, flip: bool,
             progress: bool, desc: str) -> np.ndarray:
    device = torch.device(device)
    batch_size = batch_size or (256 if device.type == "cuda" else 32)
    was_training = model.training
    model.eval()
    model.to(device, memory_format=torch.channels_last)  # outside inference mode: params stay trainable
    out = np.empty((len(images), model.feature_dim), np.float32)
    try:
        with torch.inference_mode():
            for s in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False):
                x = preprocess(images[s:s + batch_size], device)
                with autocast(device):
                    f = model(x).to(torch.get_default_dtype())  # out of bf16 (autocast on GPUs)
                    if flip:
                        f = (f + model(x.flip(-1)).to(f.dtype)) / 2
                out[s:s + len(x)] = f.cpu().numpy()
    finally:
        model.train(was_training)
    return out
