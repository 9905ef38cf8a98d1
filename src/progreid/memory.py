"""Cluster memory: one L2-normalised entry per pseudo-identity, InfoNCE against all of them.

Follows Cluster Contrast (Dai et al. 2021; ``clustercontrast/models/cm.py`` of
alibaba/cluster-contrast-reid): entries start as the normalised cluster centroids, the loss is
cross-entropy over ``f . M^T / temperature`` (f normalised), and after each step every sample
moves its cluster's entry, ``m_y <- normalise(mu * m_y + (1 - mu) * f)``, in batch order (the
reference loops sample by sample; here the k-th occurrence of each cluster in the batch is one
vectorised step, which is the same sequence of updates).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class ClusterMemory:
    def __init__(self, centroids: np.ndarray | torch.Tensor, temperature: float = 0.05, momentum: float = 0.1,
                 device: torch.device | str = "cpu"):
        c = torch.as_tensor(np.asarray(centroids, np.float32)).to(device)
        self.entries = F.normalize(c, dim=1)
        self.temperature = temperature
        self.momentum = momentum

    def loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """InfoNCE of each sample against every entry (its own cluster's is the positive)."""
        logits = F.normalize(features, dim=1) @ self.entries.T / self.temperature
        return F.cross_entropy(logits, targets)

    @torch.no_grad()
    def update(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        """Momentum update by the batch's samples, in batch order."""
        f = F.normalize(features.detach().float(), dim=1)
        t = targets
        # occurrence rank of each sample among the batch samples of its cluster (0 for the first)
        order = torch.argsort(t, stable=True)
        sorted_t = t[order]
        first = torch.ones_like(sorted_t, dtype=torch.bool)
        first[1:] = sorted_t[1:] != sorted_t[:-1]
        starts = torch.cummax(torch.where(first, torch.arange(len(t), device=t.device), 0), 0).values
        rank = torch.empty_like(t)
        rank[order] = torch.arange(len(t), device=t.device) - starts
        for r in range(int(rank.max()) + 1 if len(t) else 0):
            sel = rank == r
            y = t[sel]
            self.entries[y] = F.normalize(self.momentum * self.entries[y] + (1 - self.momentum) * f[sel], dim=1)


def centroids(features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Normalised mean of the L2-normalised features of each class 0..C-1."""
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    sums = np.zeros((int(classes.max()) + 1, x.shape[1]), np.float64)
    np.add.at(sums, classes, x)
    return (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
