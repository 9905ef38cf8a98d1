"""Pseudo-labellers: features of the unlabeled pool -> one cluster id per sample, and the centers.

Interface: ``fn(ctx, state, features, seed) -> PseudoLabels``; ``features`` are the pool's
(``ctx.pool_features``). A labeller that keeps something across rounds puts it in ``state.arrays``
(saved with the round, so resume is exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from progreid.cluster import assign, kmeans
from progreid.engine.context import RunContext
from progreid.engine.state import RunState
from progreid.errors import ProgReIDError
from progreid.registry import Registry

IMAGES_PER_CLUSTER = 16  # K = N / 16 when cluster.k = 0 (Market-1501 has ~17 images per identity)


@dataclass
class PseudoLabels:
    labels: np.ndarray    # (N,) cluster id of each pool sample
    centers: np.ndarray   # (K, D)
    center_metric: str    # "nearest the center" for these centers: euclidean (k-means centroids) | cosine

    @property
    def num_clusters(self) -> int:
        return len(self.centers)


PseudoLabeler = Callable[[RunContext, RunState, np.ndarray, int], PseudoLabels]
PSEUDO_LABELERS: Registry[PseudoLabeler] = Registry("pseudo_label")


def num_clusters(k: int, n: int) -> int:
    """``cluster.k``, or one cluster per 16 images when it is 0."""
    k = k or max(2, round(n / IMAGES_PER_CLUSTER))
    if k > n:
        raise ProgReIDError(f"cluster.k={k} exceeds the {n} unlabeled training images. Fix: lower cluster.k.")
    return k


def _check_k(ctx: RunContext) -> None:
    num_clusters(ctx.cfg.cluster.k, len(ctx.pool))


@PSEUDO_LABELERS.register("kmeans", check=_check_k)
def kmeans_labels(ctx: RunContext, state: RunState, features: np.ndarray, seed: int) -> PseudoLabels:
    """PUL: k-means (k-means++ seeding) on the current model's features, anew every round."""
    c = ctx.cfg.cluster
    km = kmeans(features, num_clusters(c.k, len(features)), c.max_iter, c.tol, c.rtol, seed=seed,
                device=ctx.device, progress=ctx.progress)
    return PseudoLabels(km.labels, km.centers, "euclidean")


@PSEUDO_LABELERS.register("moving_centers", check=_check_k)
def moving_center_labels(ctx: RunContext, state: RunState, features: np.ndarray, seed: int) -> PseudoLabels:
    """TCUL (eq. 1-2): k-means in the first round only; afterwards each sample takes the label of the
    most cosine-similar center, the centers moving between rounds (``after_round: center_update``)."""
    if "centers" not in state.arrays:
        first = kmeans_labels(ctx, state, features, seed)
        state.arrays["centers"] = first.centers
        return PseudoLabels(first.labels, first.centers, "cosine")
    labels, _ = assign(features, state.arrays["centers"], "cosine")
    return PseudoLabels(labels, state.arrays["centers"], "cosine")
