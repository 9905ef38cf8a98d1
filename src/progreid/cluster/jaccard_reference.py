"""The k-reciprocal encoding crop by crop, as Zhong et al.'s and Cluster Contrast's code write it: the
oracle ``jaccard.expanded_neighbourhoods`` (array operations) is tested against, and the "before" of
the scaling benchmark (``benchmarks/scale.py kreciprocal``). Not used by any run."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def reciprocal_lists(rank: np.ndarray, k: int) -> list[np.ndarray]:
    """For each i: the members of its first ``k`` neighbours that also list i in their first ``k``."""
    fwd = rank[:, :k]
    return [fwd[i][np.any(rank[fwd[i], :k] == i, axis=1)] for i in range(len(rank))]


def expanded_neighbourhoods_per_crop(rank: np.ndarray, k1: int, k2: int, pair_distance) -> sp.csr_matrix:
    """``jaccard.expanded_neighbourhoods``, one crop at a time (a Python loop over crops)."""
    n = len(rank)
    near = reciprocal_lists(rank, rank.shape[1])
    near_half = reciprocal_lists(rank, min(int(np.around(k1 / 2)) + 1, rank.shape[1]))
    rows, cols, vals = [], [], []
    for i in range(n):
        recip = near[i]
        expansion = [recip]
        for cand in recip:
            c = near_half[cand]
            if len(np.intersect1d(c, recip, assume_unique=True)) > 2 / 3 * len(c):
                expansion.append(c)
        members = np.unique(np.concatenate(expansion))
        w = np.exp(-np.asarray(pair_distance(np.full(len(members), i), members), np.float64))
        rows.append(np.full(len(members), i))
        cols.append(members)
        vals.append(w / w.sum())
    V = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    if k2 != 1:
        kk = min(k2, rank.shape[1])
        A = sp.csr_matrix((np.full(n * kk, 1.0 / kk), (np.repeat(np.arange(n), kk), rank[:, :kk].ravel())),
                          shape=(n, n))
        V = (A @ V).tocsr()
    return V.astype(np.float32)
