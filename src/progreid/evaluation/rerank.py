"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), the field's standard post-processing.

Follows the authors' reference code (``re_ranking``, with ``topk`` in place of full argsorts), which
holds the (Q+G)^2 distance matrix: fine for benchmark galleries, 80 GB at 100k images.
``re_ranked_rows`` computes the same distances for any gallery size: the k1-NN lists come from
``cluster.jaccard.knn`` (exact, or an inverted file past its limit), the encoding V and the
Jaccard overlaps are sparse (``cluster.jaccard``), and each chunk of query rows is assembled
on demand: memory O((Q+G) x k1 x k2 + chunk x G). Equal to the dense code (tested), which is
why ``re_ranking`` keeps its own dense k-reciprocal loop: it is the authors' algorithm written
as they wrote it, the oracle the sparse path is checked against, and the faster of the two on
benchmark-sized galleries.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from progreid.cluster.jaccard import expanded_neighbourhoods, knn, min_overlap_distance, row_dots
from progreid.evaluation.distance import pairwise_distance

DENSE_LIMIT = 20_000  # Q + G above which evaluation re-ranks through ``re_ranked_rows``


def re_ranking(qf: np.ndarray, gf: np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
               metric: str = "cosine") -> np.ndarray:
    """Re-ranked (Q, G) distances from query and gallery features."""
    feats = torch.cat([torch.as_tensor(np.asarray(qf, np.float32)), torch.as_tensor(np.asarray(gf, np.float32))])
    n_q, n_all = len(qf), len(feats)
    dist = pairwise_distance(feats, feats, metric)
    dist = (dist / dist.max(dim=0).values.clamp_min(1e-12)).T.contiguous().numpy()
    k = min(k1 + 1, n_all)
    initial_rank = torch.as_tensor(dist).topk(k, dim=1, largest=False).indices.numpy()
    half = min(int(np.around(k1 / 2)) + 1, n_all)

    V = np.zeros((n_all, n_all), np.float32)
    for i in range(n_all):
        forward = initial_rank[i, :k]
        k_recip = forward[np.any(initial_rank[forward, :k] == i, axis=1)]
        expansion = [k_recip]
        for cand in k_recip:
            c_forward = initial_rank[cand, :half]
            c_recip = c_forward[np.any(initial_rank[c_forward, :half] == cand, axis=1)]
            if len(np.intersect1d(c_recip, k_recip)) > 2 / 3 * len(c_recip):
                expansion.append(c_recip)
        idx = np.unique(np.concatenate(expansion))
        w = np.exp(-dist[i, idx])
        V[i, idx] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[initial_rank[i, :k2]].mean(0) for i in range(n_all)])
    inv_index = [np.flatnonzero(V[:, j]) for j in range(n_all)]
    jaccard = np.zeros((n_q, n_all), np.float32)
    for i in range(n_q):
        temp_min = np.zeros(n_all, np.float32)
        for j in np.flatnonzero(V[i]):
            rows = inv_index[j]
            temp_min[rows] += np.minimum(V[i, j], V[rows, j])
        jaccard[i] = 1 - temp_min / (2 - temp_min)
    final = jaccard * (1 - lambda_value) + dist[:n_q] * lambda_value
    return final[:, n_q:]


def re_ranked_rows(qf: np.ndarray, gf: np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                   chunk: int = 4096) -> Callable[[int, int], torch.Tensor]:
    """Re-ranked cosine distances of query rows ``[s, e)`` against the gallery, without an N x N matrix.

    Each row's distances are divided by that row's largest one (over queries and gallery, as the
    reference does), computed in row chunks; pairs whose expanded neighbourhoods do not overlap have
    Jaccard distance 1, so only overlapping pairs are stored."""
    x = torch.nn.functional.normalize(torch.cat([torch.as_tensor(np.asarray(qf, np.float32)),
                                                 torch.as_tensor(np.asarray(gf, np.float32))]), dim=1)
    n_q, n = len(qf), len(x)
    row_max = torch.cat([(1 - (x[s:s + chunk] @ x.T).min(1).values).clamp_min(1e-12) for s in range(0, n, chunk)])
    rank, _ = knn(x.numpy(), min(k1 + 1, n))
    xn, rmax = x.numpy(), row_max.numpy()
    V = expanded_neighbourhoods(rank, k1, k2, lambda i, j: (1 - row_dots(xn, i, j)) / rmax[i])
    closeness = min_overlap_distance(V, rows=n_q)[:, n_q:].tocsr()
    closeness.data = 1 - closeness.data  # 1 - Jaccard distance: 0 where not stored

    def rows(s: int, e: int) -> torch.Tensor:
        original = (1 - x[s:e] @ x[n_q:].T) / row_max[s:e, None]
        jaccard = 1 - torch.as_tensor(closeness[s:e].toarray())
        return jaccard * (1 - lambda_value) + original * lambda_value

    return rows
