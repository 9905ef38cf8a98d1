"""What the unlabeled data shows of a clustering that splits people (no identities read).

- ``clusters_per_group``: crops known to be one person (a tracker's track, or tcc's must-linked group)
  should share a cluster; the mean number of clusters their clustered crops fall in, over groups with
  two or more, is 1.0 for a clustering that never splits one.
- ``camera_split_pairs``: a person seen by two cameras, split into one cluster per camera, leaves two
  clusters whose camera proxies (the mean feature of a cluster's crops in one camera) are each other's
  nearest proxy of another cluster and another camera, as similar as the proxies of one cluster in two
  cameras usually are. The pairs of clusters that look so, with the threshold read off the clustering
  itself (the median similarity of same-cluster proxies in different cameras): no number to tune.
"""

from __future__ import annotations

import numpy as np
import torch


def clusters_per_group(labels: np.ndarray, groups: np.ndarray) -> float | None:
    """Mean distinct clusters per group (``groups``: one id per crop, -1 for none) among clustered crops."""
    keep = (labels >= 0) & (groups >= 0)
    if not keep.any():
        return None
    pairs = np.unique(np.stack([groups[keep], labels[keep]], 1), axis=0)
    per_group = np.bincount(pairs[:, 0])
    sizes = np.bincount(groups[keep])
    multi = sizes[: len(per_group)] >= 2
    return float(per_group[multi].mean()) if multi.any() else None


def camera_split_pairs(features: np.ndarray, labels: np.ndarray, cameras: np.ndarray,
                       chunk: int = 4096) -> tuple[np.ndarray, float | None]:
    """(cluster pairs (M, 2) that look like one person split by camera, the similarity threshold used)."""
    from progreid.memory import camera_proxies

    keep = labels >= 0
    proxies = camera_proxies(features[keep], labels[keep], cameras[keep])
    p = torch.as_tensor(proxies.entries)
    cl, ca = torch.as_tensor(proxies.proxy_class), torch.as_tensor(proxies.proxy_camera)
    n = len(p)
    nearest = torch.full((n,), -1, dtype=torch.long)
    best = torch.full((n,), -2.0, dtype=p.dtype)
    same_cluster_sims = []
    for s in range(0, n, chunk):
        sim = p[s:s + chunk] @ p.T
        rows = torch.arange(s, min(s + chunk, n))
        other_camera = ca[rows][:, None] != ca[None, :]
        same = cl[rows][:, None] == cl[None, :]
        same_cluster_sims.append(sim[same & other_camera])
        candidates = sim.masked_fill(same | ~other_camera, -2.0)
        best[rows], nearest[rows] = candidates.max(1)
    within = torch.cat(same_cluster_sims)
    if len(within) == 0:
        return np.zeros((0, 2), np.int64), None
    threshold = float(within.median())
    has = nearest >= 0
    mutual = has & (nearest.clamp_min(0)[nearest.clamp_min(0)] == torch.arange(n)) & (best >= threshold)
    a = torch.nonzero(mutual).ravel()
    a = a[a < nearest[a]]  # each mutual pair once
    pairs = torch.stack([cl[a], cl[nearest[a]]], 1).numpy()
    return np.unique(np.sort(pairs, 1), axis=0).astype(np.int64), threshold


def merge_pairs(labels: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Labels with every cluster pair of ``pairs`` merged (connected components), renumbered 0..K'-1."""
    if not len(pairs):
        return labels
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    k = int(labels.max()) + 1
    graph = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(k, k))
    _, component = connected_components(graph, directed=False)
    out = labels.copy()
    out[labels >= 0] = component[labels[labels >= 0]]
    _, out[labels >= 0] = np.unique(out[labels >= 0], return_inverse=True)
    return out


def oversegmentation_signals(features: np.ndarray, labels: np.ndarray, cameras: np.ndarray,
                             tracks: np.ndarray) -> dict[str, float | int]:
    """What a round's clustering shows of splitting people, for its row and summary line (no identities):
    the cluster pairs that look like one person split by camera, and,
    where a tracker gave tracks, the clusters per track."""
    out: dict[str, float | int] = {}
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    if k and len(np.unique(cameras[labels >= 0])) > 1:
        pairs, _ = camera_split_pairs(features, labels, cameras)
        out["split_camera_pairs"] = int(len(pairs))
    per_track = clusters_per_group(labels, tracks)
    if per_track is not None:
        out["clusters_per_track"] = round(per_track, 3)
    return out
