"""Cluster memory: one L2-normalised entry per pseudo-identity, InfoNCE against all of them.

Follows Cluster Contrast (Dai et al. 2021; ``clustercontrast/models/cm.py`` of
alibaba/cluster-contrast-reid): entries start as the normalised cluster centroids, the loss is
cross-entropy over ``f . M^T / temperature`` (f normalised), and after each step every sample
moves its cluster's entry, ``m_y <- normalise(mu * m_y + (1 - mu) * f)``, in batch order (the
reference loops sample by sample; here the k-th occurrence of each cluster in the batch is one
vectorised step, which is the same sequence of updates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


class ClusterMemory:
    def __init__(self, centroids: np.ndarray | torch.Tensor, temperature: float = 0.05, momentum: float = 0.1,
                 device: torch.device | str = "cpu"):
        c = torch.as_tensor(np.asarray(centroids, np.float32)).to(device, torch.get_default_dtype())
        self.entries = F.normalize(c, dim=1)
        self.temperature = temperature
        self.momentum = momentum

    def loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """InfoNCE of each sample against every entry (its own cluster's is the positive)."""
        logits = F.normalize(features, dim=1) @ self.entries.T / self.temperature
        return F.cross_entropy(logits, targets)

    def classes(self, targets: torch.Tensor) -> torch.Tensor:
        """The cluster of each target entry (an entry is a cluster here)."""
        return targets

    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(B, clusters) logits of each sample over the clusters (RLCC's soft labels are trained on these)."""
        return F.normalize(features, dim=1) @ self.entries.T / self.temperature

    def class_centers(self) -> torch.Tensor:
        """One normalised centre per cluster (ISE's support samples move between them)."""
        return self.entries

    @torch.no_grad()
    def update(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        """Momentum update by the batch's samples, in batch order."""
        f = F.normalize(features.detach().to(self.entries.dtype), dim=1)
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


@dataclass
class CameraProxies:
    """Camera-aware proxies of a training set: one entry per (cluster, camera) that has samples."""

    entries: np.ndarray        # (P, D) normalised centroids
    proxy_class: np.ndarray    # (P,) cluster of each proxy
    proxy_camera: np.ndarray   # (P,) camera of each proxy
    sample_proxy: np.ndarray   # (N,) each sample's proxy


def camera_proxies(features: np.ndarray, classes: np.ndarray, cameras: np.ndarray) -> CameraProxies:
    classes, cameras = np.asarray(classes, np.int64), np.asarray(cameras, np.int64)
    pairs, proxy = np.unique(np.stack([classes, cameras], 1), axis=0, return_inverse=True)
    proxy = proxy.reshape(-1)
    return CameraProxies(centroids(features, proxy), pairs[:, 0], pairs[:, 1], proxy)


class CameraAwareMemory(ClusterMemory):
    """One entry per (cluster, camera): camera-aware proxies (CAP, Wang et al. AAAI 2021; its released
    ``CAPMemory``). A cluster's crops from one camera look alike (viewpoint, light, background), so a
    single entry per cluster is pulled towards its dominant camera; proxies let each camera keep its own.

    Loss, following the released code: per camera in the batch, InfoNCE against that camera's proxies
    (intra-camera; the per-camera means are summed), plus ``inter_weight`` x an association loss against
    all proxies: every proxy of the sample's cluster is a positive (soft target 1/|P|), contrasted with
    the ``hard_negatives`` most similar proxies of other clusters. Differences: the association loss
    runs from the first step (the reference waits 5 epochs; a progreid round is one clustering), and
    the momentum is ``train.memory_momentum``. Targets are proxy ids (``CameraProxies.sample_proxy``)."""

    def __init__(self, proxies: CameraProxies, temperature: float = 0.05, momentum: float = 0.1,
                 inter_weight: float = 0.5, hard_negatives: int = 50, device: torch.device | str = "cpu"):
        super().__init__(proxies.entries, temperature, momentum, device)
        self.sample_proxy = proxies.sample_proxy
        self.proxy_class = torch.as_tensor(proxies.proxy_class, device=device)
        self.proxy_camera = torch.as_tensor(proxies.proxy_camera, device=device)
        self.inter_weight, self.hard_negatives = inter_weight, hard_negatives

    def classes(self, targets: torch.Tensor) -> torch.Tensor:
        return self.proxy_class[targets]

    def class_centers(self) -> torch.Tensor:
        """The normalised mean of each cluster's proxies."""
        sums = torch.zeros(int(self.proxy_class.max()) + 1, self.entries.shape[1], device=self.entries.device,
                           dtype=self.entries.dtype).index_add_(0, self.proxy_class, self.entries)
        return F.normalize(sums, dim=1)

    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        """A cluster's logit is the mean of its proxies' logits."""
        sims = F.normalize(features, dim=1) @ self.entries.T / self.temperature
        k = int(self.proxy_class.max()) + 1
        sums = torch.zeros(len(sims), k, device=sims.device, dtype=sims.dtype).index_add_(1, self.proxy_class, sims)
        return sums / torch.bincount(self.proxy_class, minlength=k).to(sims.dtype)

    def loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        sims = F.normalize(features, dim=1) @ self.entries.T / self.temperature
        cls, cam = self.proxy_class[targets], self.proxy_camera[targets]
        same_cam = self.proxy_camera[None, :] == cam[:, None]
        intra = F.cross_entropy(sims.masked_fill(~same_cam, float("-inf")), targets, reduction="none")
        positive = self.proxy_class[None, :] == cls[:, None]
        k = min(self.hard_negatives, int((~positive).sum(1).min()))
        hard = sims.masked_fill(positive, float("-inf")).topk(k, dim=1).values if k > 0 else sims[:, :0]
        log_norm = torch.logsumexp(torch.cat([sims.masked_fill(~positive, float("-inf")), hard], 1), dim=1)
        inter = log_norm - torch.where(positive, sims, torch.zeros_like(sims)).sum(1) / positive.sum(1)
        per_sample = intra + self.inter_weight * inter
        batch_cams, cam_of = torch.unique(cam, return_inverse=True)  # per camera a mean, summed (as CAP)
        sums = torch.zeros(len(batch_cams), device=sims.device, dtype=sims.dtype).index_add_(0, cam_of, per_sample)
        return (sums / torch.bincount(cam_of, minlength=len(batch_cams))).sum()
