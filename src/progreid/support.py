"""Implicit sample extension (ISE; Zhang et al., CVPR 2022): support samples generated in embedding space
near the cluster boundaries, with no extra forward pass.

Followed from the authors' code (zhangxinyu-xyz/ISE-ReID, ``trainers_support.py`` and ``losses/lp_loss.py``)
with its defaults: for each sample ``f`` of cluster ``y``, the most similar *other* cluster centre ``c_n``
gives the support ``normalise(f + 0.5 * lambda * (c_n - c_y))``; ``lambda`` grows over training as
``0.5 * base * log((e - 1) * progress + 1)`` (progressive linear interpolation: 0 at the start, ``0.5 * base`` at
the end), the supports join the memory loss with the labels of their samples, and a label-preserving loss
(weight 0.1, temperature 0.6) pulls each sample towards its hardest same-cluster support and away from the
hardest support of every other cluster in the batch. Differences: a camera-aware memory's cluster centres are
the normalised means of the cluster's proxies, and only real samples move the memory (the reference's
memory update also takes the supports, pulling entries toward their neighbours).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def support_lambda(progress: float, base: float = 1.0) -> float:
    """ISE's interpolation degree at ``progress`` (0..1) of the whole training."""
    return 0.5 * base * math.log((math.e - 1) * min(max(progress, 0.0), 1.0) + 1)


def support_samples(features: torch.Tensor, classes: torch.Tensor, centers: torch.Tensor,
                    lam: float) -> torch.Tensor:
    """One support per sample, moved from its cluster's centre toward the nearest other one by ``0.5 lam``."""
    f = F.normalize(features, dim=1)
    c = F.normalize(centers.to(f.dtype), dim=1)
    sims = f.detach() @ c.T
    sims[torch.arange(len(f), device=f.device), classes] = float("-inf")
    nearest = sims.argmax(1)
    return F.normalize(f + (c[nearest] - c[classes]) * (0.5 * lam), dim=1)


def label_preserving_loss(features: torch.Tensor, supports: torch.Tensor, classes: torch.Tensor,
                          temperature: float = 0.6) -> torch.Tensor:
    """ISE's LP loss: ``-log(p / (p + sum_c n_c))`` per sample, ``p`` its least similar support of its own
    cluster and ``n_c`` the most similar support of each other cluster ``c`` in the batch (exp-similarities)."""
    exp = torch.exp(F.normalize(features, dim=1) @ supports.T / temperature)
    same = classes[:, None] == classes[None, :]
    pos = exp.masked_fill(~same, float("inf")).amin(1)
    _, cls = torch.unique(classes, return_inverse=True)
    hardest = torch.zeros(len(exp), int(cls.max()) + 1, device=exp.device, dtype=exp.dtype)
    hardest = hardest.scatter_reduce(1, cls.expand(len(exp), -1), exp.masked_fill(same, 0.0), "amax")
    neg = hardest.sum(1)  # the own cluster's column is 0: its supports were masked
    return (-torch.log(pos / (pos + neg + 1e-6) + 1e-6)).mean()


def ise_loss(memory, features: torch.Tensor, targets: torch.Tensor, lam: float, lp_weight: float = 0.1,
             lp_temperature: float = 0.6) -> torch.Tensor:
    """The memory loss over the samples and their supports (the supports take their samples' entries),
    plus ``lp_weight`` x the label-preserving loss. ``memory``: a ``memory.ClusterMemory`` or subclass."""
    classes = memory.classes(targets)
    supports = support_samples(features, classes, memory.class_centers(), lam)
    loss = memory.loss(torch.cat([F.normalize(features, dim=1), supports]), torch.cat([targets, targets]))
    return loss + lp_weight * label_preserving_loss(features, supports, classes, lp_temperature)
