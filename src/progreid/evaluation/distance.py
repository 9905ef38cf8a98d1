"""Query-gallery distances: cosine (1 - cos) or squared Euclidean, computed with one matmul."""

from __future__ import annotations

import numpy as np
import torch

METRICS = ("cosine", "euclidean")


def as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32)) if isinstance(x, np.ndarray) else x.float()


def pairwise_distance(qf: np.ndarray | torch.Tensor, gf: np.ndarray | torch.Tensor,
                      metric: str = "cosine") -> torch.Tensor:
    """(Q, G) distance matrix. Cosine normalises both sides; Euclidean is squared (same ranking)."""
    q, g = as_tensor(qf), as_tensor(gf)
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        g = torch.nn.functional.normalize(g, dim=1)
        return 1.0 - q @ g.T
    if metric == "euclidean":
        d = (q * q).sum(1, keepdim=True) + (g * g).sum(1)[None, :] - 2.0 * (q @ g.T)
        return d.clamp_(min=0)
    raise ValueError(f"unknown distance {metric!r}; choose one of {METRICS}")
