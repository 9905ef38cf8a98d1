"""Reliable-sample selection: which pseudo-labelled samples to train on this round.

- ``similarity``: cos(f_i, reference) > lambda, the reference being (``select.reference``)
  ``center_sample`` (PUL, the paper): the member nearest its cluster's center; every cluster keeps it;
  ``any_center_sample`` (PUL, the authors' released ``unsupervised.py``): kept when the cosine to
  *any* cluster's center sample exceeds lambda, with its own k-means label;
  ``center`` (SUL, the TCUL paper's section 4.3): the cluster center c_k itself.
- ``temporal`` (TCUL, eq. 3): in each (cluster, camera) group the sample most similar to the
  cluster center is a temporary center; a sample is reliable iff it was recorded in the same
  camera *and* sequence and at most ``frame_window`` frames away from it.
- ``all``: every sample (the PUL paper's ablation without selection).

These are the algorithms, on plain arrays; ``engine.stages.selection`` binds them to a run's config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from progreid.data.records import Record
from progreid.errors import ProgReIDError
from progreid.temporal import track_groups

@dataclass
class Selection:
    reliable: np.ndarray      # (N,) bool
    center_index: np.ndarray  # (K,) index of each cluster's center sample (-1 for an empty cluster)
    info: dict[str, Any] = field(default_factory=dict)  # what the selector chose, for the round's row


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


REFERENCES = ("center_sample", "any_center_sample", "center")


def select_similarity(features: np.ndarray, labels: np.ndarray, centers: np.ndarray, lam: float,
                      center_metric: str = "euclidean", reference: str = "center_sample") -> Selection:
    idx = center_samples(features, labels, centers, center_metric)
    f = l2n(features)
    if reference == "center_sample":
        reliable = np.einsum("nd,nd->n", f, f[idx[labels]]) > lam
        reliable[idx[idx >= 0]] = True
    elif reference == "any_center_sample":
        heads = f[idx[idx >= 0]]
        best = np.concatenate([(f[s:s + 4096] @ heads.T).max(1) for s in range(0, len(f), 4096)]) if len(heads) \
            else np.full(len(f), -1.0)
        reliable = best > lam
    elif reference == "center":
        reliable = np.einsum("nd,nd->n", f, l2n(centers)[labels]) > lam
    else:
        raise ProgReIDError(f"select.reference {reference!r}: choose one of {REFERENCES}.")
    return Selection(reliable, idx)


def select_temporal(features: np.ndarray, labels: np.ndarray, centers: np.ndarray, records: list[Record],
                    frame_window: int | dict[int, int]) -> Selection:
    """``frame_window``: frames, or {camera: frames} (calibrated per camera)."""
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
    window = np.array([frame_window[c] for c in cams]) if isinstance(frame_window, dict) else frame_window
    by_frames = (seqs == seqs[head]) & (np.abs(frames - frames[head]) <= window)
    tracks = track_groups(records)
    by_track = (tracks >= 0) & (tracks == tracks[head])  # a tracker's track: one person, any frame gap
    sel = Selection(by_frames | by_track, center_samples(features, labels, centers, "cosine"))
    if (tracks >= 0).any():
        sel.info["reliable_by_track_only"] = int((by_track & ~by_frames).sum())
    return sel


def select_all(features: np.ndarray, labels: np.ndarray, centers: np.ndarray,
               center_metric: str = "euclidean") -> Selection:
    """No selection (the PUL paper's ablation): every sample trains."""
    return Selection(np.ones(len(labels), bool), center_samples(features, labels, centers, center_metric))


def select_clustered(features: np.ndarray, labels: np.ndarray, centers: np.ndarray,
                     center_metric: str = "cosine") -> Selection:
    """Every sample with a cluster (label >= 0); density clustering's outliers (-1) are left out."""
    reliable = labels >= 0
    idx = np.full(len(centers), -1, np.int64)
    members = np.flatnonzero(reliable)
    idx_sub = center_samples(features[members], labels[members], centers, center_metric)
    idx[idx_sub >= 0] = members[idx_sub[idx_sub >= 0]]
    return Selection(reliable, idx)
