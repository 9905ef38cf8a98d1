"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), the field's standard post-processing.

Follows the authors' reference code, with ``topk`` in place of full argsorts. It needs the
(Q+G)^2 distance matrix, so it is meant for benchmark-size galleries (tens of thousands), not 100k.
"""

from __future__ import annotations

import numpy as np
import torch

from progreid.evaluation.distance import pairwise_distance


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
