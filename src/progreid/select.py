"""Reliable-sample selection: which pseudo-labelled samples to train on this round.

- ``similarity`` (PUL, SUL): in each cluster the sample nearest the cluster center is its center
  sample; a sample is reliable iff cos(f_i, f_center) > lambda. Every cluster keeps its center.
- ``temporal`` (TCUL, eq. 3): in each (cluster, camera) group the sample most similar to the
  cluster center is a temporary center; a sample is reliable iff it was recorded in the same
  camera *and* sequence and at most ``frame_window`` frames away from it.
- ``all``: every sample (the PUL paper's ablation without selection).

These are the algorithms, on plain arrays; ``engine.stages.selection`` binds them to a run's config.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from progreid.data.records import Record
from progreid.errors import ProgReIDError

@dataclass
class Selection:
    reliable: np.ndarray      # (N,) bool
    center_index: np.ndarray  # (K,) index of each cluster's center sample (-1 for an empty cluster)


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def center_samples(features: np.ndarray, labels: np.ndarray, centers: np.ndarray, metric: str) -> np.ndarray:
    """Index of the member nearest each center: Euclidean (PUL, k-means centroids) or cosine (TCUL)."""
    k = len(centers)
    if metric == "cosine":
        score = np.einsum("nd,nd->n", l2n(features), l2n(centers)[labels])
    else:
        score = -((features - centers[labels]) ** 2).sum(1)
    order = np.lexsort((-score, labels))  # by cluster, best first
    first = np.ones(len(order), bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    idx = np.full(k, -1, np.int64)
    idx[labels[order][first]] = order[first]
    return idx


def select_similarity(features: np.ndarray, labels: np.ndarray, centers: np.ndarray, lam: float,
                      center_metric: str = "euclidean") -> Selection:
    idx = center_samples(features, labels, centers, center_metric)
    f = l2n(features)
    cos = np.einsum("nd,nd->n", f, f[idx[labels]])
    reliable = cos > lam
    reliable[idx[idx >= 0]] = True
    return Selection(reliable, idx)


def select_temporal(features: np.ndarray, labels: np.ndarray, centers: np.ndarray, records: list[Record],
                    frame_window: int) -> Selection:
    if any(r.frame is None for r in records):
        missing = next(r.path for r in records if r.frame is None)
        raise ProgReIDError(
            f"temporal selection needs frame ids, but {missing} has none (field 'frame'). "
            "Fix: use a layout with frames (Market-1501, DukeMTMC, or a manifest with a 'frame' column), "
            "or run --method sul or --method pul, which select by feature similarity.")
    cams = np.array([r.camid for r in records])
    seqs = np.array([r.sequence for r in records])
    frames = np.array([r.frame for r in records], np.int64)
    cos = np.einsum("nd,nd->n", l2n(features), l2n(centers)[labels])
    # temporary center of each (cluster, camera) group: its member most similar to the cluster center
    group = labels.astype(np.int64) * (int(cams.max()) + 1) + cams
    order = np.lexsort((-cos, group))
    first = np.ones(len(order), bool)
    first[1:] = group[order][1:] != group[order][:-1]
    head = np.empty(len(order), np.int64)  # for each sorted position: the index of its group's head
    head_pos = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    head[order] = order[head_pos]
    reliable = (seqs == seqs[head]) & (np.abs(frames - frames[head]) <= frame_window)
    return Selection(reliable, center_samples(features, labels, centers, "cosine"))


def select_all(features: np.ndarray, labels: np.ndarray, centers: np.ndarray,
               center_metric: str = "euclidean") -> Selection:
    """No selection (the PUL paper's ablation): every sample trains."""
    return Selection(np.ones(len(labels), bool), center_samples(features, labels, centers, center_metric))
