"""DBSCAN on a sparse precomputed distance, and a radius derived from the unlabeled data.

``eps`` is as dataset-bound as k-means' K: the reference's 0.6 (Cluster Contrast, ResNet-50
features) chains a whole camera network into one cluster on other features (MSMT17 OSNet x0.25
on Market-1501: one cluster of 644 images, pair precision 12%; BENCHMARKS.md). ``auto_eps``
picks, without labels, the radius at which DBSCAN finds the *most* clusters: below it clusters
dissolve into outliers, above it they merge through chains of near neighbours.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

EPS_GRID = tuple(np.round(np.arange(0.20, 0.801, 0.05), 2))


def dbscan(dist: sp.csr_matrix, eps: float, min_samples: int = 4) -> np.ndarray:
    """Labels 0..K-1, or -1 for a sample in no dense region (sklearn's DBSCAN, precomputed)."""
    from sklearn.cluster import DBSCAN

    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dist).astype(np.int64)


def within(dist: sp.csr_matrix, radius: float) -> sp.csr_matrix:
    """Only the stored distances <= ``radius`` (and the diagonal): the same DBSCAN result for any
    eps <= radius, on a much sparser matrix."""
    d = dist.tocoo()
    keep = (d.data <= radius) | (d.row == d.col)
    return sp.csr_matrix((d.data[keep], (d.row[keep], d.col[keep])), shape=dist.shape)


def num_clusters(labels: np.ndarray) -> int:
    return int(labels.max()) + 1 if (labels >= 0).any() else 0


def auto_eps(dist: sp.csr_matrix, min_samples: int = 4, grid: tuple[float, ...] = EPS_GRID,
             step: float = 0.01) -> tuple[float, dict[float, int]]:
    """The radius with the most DBSCAN clusters: a coarse ``grid``, then ``step`` around its best.

    Returns (eps, clusters per radius tried). Ties go to the smaller radius (purer clusters).
    """
    sparse = within(dist, max(grid) + 2 * step)
    counts = {float(e): num_clusters(dbscan(sparse, e, min_samples)) for e in grid}
    best = max(counts, key=lambda e: (counts[e], -e))
    spacing = grid[1] - grid[0] if len(grid) > 1 else step
    for e in np.round(np.arange(best - spacing + step, best + spacing - step / 2, step), 4):
        if float(e) not in counts and e > 0:
            counts[float(e)] = num_clusters(dbscan(sparse, float(e), min_samples))
    best = max(counts, key=lambda e: (counts[e], -e))
    return best, dict(sorted(counts.items()))


LINKED = 1e-6  # the distance of a must-linked pair: within any eps, and stored (a missing entry means far)


def with_links(dist: sp.csr_matrix, i: np.ndarray, j: np.ndarray) -> sp.csr_matrix:
    """``dist`` with the pairs (i, j) and (j, i) set to ``LINKED`` (must-links before DBSCAN)."""
    n = dist.shape[0]
    mask = sp.csr_matrix((np.ones(2 * len(i), np.float32), (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    mask.data[:] = 1  # a pair listed twice still counts once
    return (dist - dist.multiply(mask) + LINKED * mask).tocsr()


def without_pairs(dist: sp.csr_matrix, i: np.ndarray, j: np.ndarray) -> sp.csr_matrix:
    """``dist`` with the pairs (i, j) and (j, i) removed: far apart for DBSCAN (cannot-links)."""
    n = dist.shape[0]
    d = dist.tocoo()
    drop = np.isin(d.row.astype(np.int64) * n + d.col, np.r_[np.asarray(i, np.int64) * n + j, np.asarray(j, np.int64) * n + i])
    return sp.csr_matrix((d.data[~drop], (d.row[~drop], d.col[~drop])), shape=dist.shape)
