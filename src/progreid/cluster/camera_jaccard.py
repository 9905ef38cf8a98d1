"""Camera-aware Jaccard distance (CA-Jaccard, Chen et al., CVPR 2024), sparse, for density clustering.

Why: a crop's nearest neighbours are mostly crops of its own camera (same background, light, pose),
so the plain k-reciprocal sets that the Jaccard distance overlaps hold few crops of other cameras,
and DBSCAN keeps one person's camera views apart (on cuhk03-mini cc's clusters hold 1.1 cameras for
people seen by 2; BENCHMARKS.md, issue-28 section). CA-Jaccard ranks each crop's neighbours twice,
within its camera and among the other cameras, and takes

- the k-reciprocal neighbours (CKRNNs) as the union of the intra-camera ones (``k1_intra``, itself
  included) and the inter-camera ones (``k1_inter``), without the plain form's half-size expansion;
- the local query expansion (CLQE) over the ``k2_intra`` nearest rows of its camera (itself first) and
  the ``k2_inter`` nearest of other cameras,

so every crop's encoding is guaranteed a share of other cameras. V rows are ``softmax(-(2 - 2 cos))``
over the neighbour set and ``d(i, j) = 1 - m / (2 - m)``, as in ``jaccard.py``. Defaults follow the
authors' released code (chenyiyuu/CA-Jaccard, ``train_caj.py`` and ``caj/utils/caj_rerank.py``): k1
5 / 20 and k2 3 / 3, with which they report Cluster Contrast's 82.6 mAP on Market-1501 raised to 84.8.
Sparse as ``jaccard.py`` (only pairs whose V rows overlap are stored; any other pair is at 1).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from progreid.cluster.jaccard import min_overlap_distance, reciprocal_matrix, row_dots

K1_INTRA, K1_INTER = 5, 20  # the authors' released defaults
K2_INTRA, K2_INTER = 3, 3


def camera_ranks(features: np.ndarray, cameras: np.ndarray, k_intra: int, k_inter: int, chunk: int = 0,
                 device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(intra (N, k_intra), inter (N, k_inter)): each row's nearest rows by cosine within its own camera
    (itself first) and among the other cameras. A camera with fewer crops than asked repeats its last
    neighbour (a repeat adds nothing to a set); a crop with no other camera gets itself in ``inter``.

    Exact search, O(N^2 x D) time, in row chunks whose similarity block stays ~64M entries (``chunk`` 0:
    chosen so); the plain distance's inverted file (``jaccard.knn``) is not used here."""
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(features, np.float32)).to(device), dim=1)
    cams = torch.as_tensor(np.asarray(cameras)).to(device)
    n = len(x)
    chunk = chunk or max(1, min(4096, (1 << 26) // max(n, 1)))
    intra = np.empty((n, k_intra), np.int64)
    inter = np.empty((n, k_inter), np.int64)
    for s in range(0, n, chunk):
        rows = torch.arange(s, min(s + chunk, n), device=x.device)
        sim = x[rows] @ x.T
        same = cams[rows][:, None] == cams[None, :]
        sim[rows - s, rows] = 3.0  # itself first in its camera, even among exact duplicates
        for out, mask, k in ((intra, ~same, k_intra), (inter, same, k_inter)):
            masked = sim.masked_fill(mask, -4.0)
            v, i = masked.topk(min(k, n), dim=1)
            i = torch.where(v > -4.0, i, torch.full_like(i, -1))
            out[s:s + len(rows), :i.shape[1]] = i.cpu().numpy()
            out[s:s + len(rows), i.shape[1]:] = -1
    for out in (intra, inter):  # pad short lists: the last real neighbour, or itself where there is none
        for col in range(out.shape[1]):
            missing = out[:, col] < 0
            out[missing, col] = out[missing, col - 1] if col else np.flatnonzero(missing)
    return intra, inter


def camera_jaccard_distance(features: np.ndarray, cameras: np.ndarray, k1_intra: int = K1_INTRA,
                            k1_inter: int = K1_INTER, k2_intra: int = K2_INTRA, k2_inter: int = K2_INTER,
                            device: str | torch.device = "cpu") -> sp.csr_matrix:
    """Sparse (N, N) CA-Jaccard distances of ``features`` (L2-normalised here) whose crops were seen by
    ``cameras``; the diagonal stored at 0, any pair not stored at distance 1."""
    x = np.asarray(features, np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = len(x)
    # forward lists of k + 1 (the reference's ``initial_rank[i, :k1 + 1]``): itself and 5 in its camera
    intra, inter = camera_ranks(x, cameras, max(k1_intra + 1, k2_intra), max(k1_inter + 1, k2_inter), device=device)
    members = (reciprocal_matrix(intra, k1_intra + 1) + reciprocal_matrix(inter, k1_inter + 1)).tocsr()
    members.sum_duplicates()
    rows = np.repeat(np.arange(n), np.diff(members.indptr))
    w = np.exp(-(2 - 2 * row_dots(x, rows, members.indices)).astype(np.float64))
    sums = np.bincount(rows, weights=w, minlength=n)
    V = sp.csr_matrix(((w / sums[rows]).astype(np.float32), members.indices.copy(), members.indptr.copy()),
                      shape=(n, n))
    expand = np.concatenate([intra[:, :k2_intra], inter[:, :k2_inter]], 1)  # CLQE: mean of these rows
    A = sp.csr_matrix((np.full(expand.size, 1.0 / expand.shape[1]), (np.repeat(np.arange(n), expand.shape[1]),
                       expand.ravel())), shape=(n, n))
    return min_overlap_distance((A @ V).tocsr().astype(np.float32))
