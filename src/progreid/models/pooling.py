"""Global pooling of a feature map: average (what OSNet and ResNet were trained with) or generalized mean.

GeM (Radenović et al., TPAMI 2019) raises activations to a power ``p`` before averaging, so a few strong
locations weigh more than in an average (``p = 1``) and less than in a max (``p`` large). Cluster Contrast
(alibaba/cluster-contrast-reid, ``GeneralizedMeanPoolingP``) uses it with ``p`` learnt from 3 and reports it
above average pooling (its issue #22: 83.6 against 73.6 mAP in one setting); progreid follows that code:
activations clamped at 1e-6, ``p`` a trainable scalar starting at 3. The scalar is part of the state dict
(``pool.p``), so a checkpoint says how it pools: :func:`pooling_of` reads it back.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

POOLINGS = ("avg", "gem")
GEM_KEY = "pool.p"  # the trainable exponent's state-dict key, in the backbone (suffix under a wrapper)


class GeneralizedMeanPooling(nn.Module):
    """``(mean(x.clamp(eps) ** p)) ** (1/p)`` over the spatial dimensions, ``p`` trainable."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([float(p)]))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.3f}, eps={self.eps}"


def build_pooling(kind: str, gem_p: float = 3.0) -> nn.Module:
    """``kind`` in :data:`POOLINGS`."""
    if kind == "gem":
        return GeneralizedMeanPooling(gem_p)
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(1)
    raise ValueError(f"unknown pooling {kind!r}; choose one of {POOLINGS}")


def pooling_of(state: dict[str, torch.Tensor]) -> str:
    """How the network a state dict came from pools: ``gem`` if it holds GeM's exponent, else ``avg``."""
    return "gem" if any(is_gem_key(k) for k in state) else "avg"


def is_gem_key(key: str) -> bool:
    """``key`` is GeM's exponent, bare or under a wrapper (``backbone.pool.p``)."""
    return key == GEM_KEY or key.endswith("." + GEM_KEY)
