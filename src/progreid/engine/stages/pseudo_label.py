"""Pseudo-labellers: features of the unlabeled pool -> one cluster id per sample, and the centers.

Interface: ``fn(ctx, state, features, seed) -> PseudoLabels``; ``features`` are the pool's
(``ctx.pool_features``). A labeller that keeps something across rounds puts it in ``state.arrays``
(saved with the round, so resume is exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from progreid.cluster import assign, kmeans
from progreid.cluster.camera_jaccard import K1_INTRA, camera_jaccard_distance
from progreid.cluster.constraints import constrain_distance, enforce
from progreid.cluster.density import auto_eps, dbscan, with_links
from progreid.cluster.jaccard import jaccard_distance
from progreid.engine.context import RunContext
from progreid.engine.state import RunState
from progreid.errors import ProgReIDError
from progreid.memory import centroids
from progreid.registry import Registry
from progreid.evaluation.oversegmentation import merge_pairs, oversegmentation_signals
from progreid.temporal import blend_along_links, must_links, track_groups

IMAGES_PER_CLUSTER = 16  # K = N / 16 when cluster.k = 0 (Market-1501 has ~17 images per identity; the default is auto)


@dataclass
class PseudoLabels:
    labels: np.ndarray    # (N,) cluster id 0..K-1 of each pool sample; -1: in no cluster (an outlier)
    centers: np.ndarray   # (K, D)
    center_metric: str    # "nearest the center" for these centers: euclidean (k-means centroids) | cosine
    info: dict[str, Any] = field(default_factory=dict)  # what the labeller chose, for the round's row

    @property
    def num_clusters(self) -> int:
        return len(self.centers)


PseudoLabeler = Callable[[RunContext, RunState, np.ndarray, int], PseudoLabels]
PSEUDO_LABELERS: Registry[PseudoLabeler] = Registry("pseudo_label")


def num_clusters(k: str | int, n: int) -> int:
    """A number ``cluster.k``, or one cluster per 16 images when it is 0."""
    if not str(k).isdigit():
        raise ProgReIDError(f"cluster.k {k!r}: use auto, 0 (one cluster per {IMAGES_PER_CLUSTER} images) or a number.")
    k = int(k) or max(2, round(n / IMAGES_PER_CLUSTER))
    if k > n:
        raise ProgReIDError(f"cluster.k={k} exceeds the {n} unlabeled training images. Fix: lower cluster.k.")
    return k


# the settings each pseudo-labeller reads (cluster.k auto counts clusters with the density keys)
DENSITY_KEYS = ("cluster.k1", "cluster.k2", "cluster.distance", "cluster.k1_intra", "cluster.eps", "cluster.eps_update", "cluster.min_samples")
KMEANS_KEYS = ("cluster.k", "cluster.max_iter", "cluster.tol", "cluster.rtol", "cluster.normalize", *DENSITY_KEYS)


def _check_k(ctx: RunContext) -> None:
    if ctx.cfg.cluster.k != "auto":
        num_clusters(ctx.cfg.cluster.k, len(ctx.pool))


def chosen_k(ctx: RunContext, state: RunState, features: np.ndarray) -> tuple[int, dict[str, Any]]:
    """K for k-means, and what to log. ``auto`` is estimated once, on the first round's features, as
    the number of clusters DBSCAN finds on the k-reciprocal Jaccard distance at the radius with the
    most clusters (no identities used), and kept in the run state so that resume is exact."""
    c = ctx.cfg.cluster
    if c.k != "auto":
        return num_clusters(c.k, len(features)), {}
    if "num_clusters" not in state.arrays:
        dist = jaccard_distance(features, c.k1, c.k2, ctx.device)
        eps, counts = auto_eps(dist, c.min_samples)
        if counts[eps] < 2:
            raise ProgReIDError(
                f"cluster.k auto: the {len(features)} unlabeled images hold {counts[eps]} dense groups at any radius "
                f"(DBSCAN, min_samples {c.min_samples}), too few to count people by. Fix: give cluster.k a number, "
                f"or cluster.k=0 for one cluster per {IMAGES_PER_CLUSTER} images.")
        state.arrays["num_clusters"] = np.array([counts[eps]], np.int64)  # DBSCAN's count never exceeds N
    k = int(state.arrays["num_clusters"][0])
    return k, {"k_auto": k}


@PSEUDO_LABELERS.register("kmeans", check=_check_k, reads=KMEANS_KEYS)
def kmeans_labels(ctx: RunContext, state: RunState, features: np.ndarray, seed: int) -> PseudoLabels:
    """PUL: k-means (k-means++ seeding) on the current model's features, anew every round."""
    c = ctx.cfg.cluster
    k, info = chosen_k(ctx, state, features)
    km = kmeans(features, k, c.max_iter, c.tol, c.rtol, seed=seed, device=ctx.device, progress=ctx.progress)
    return PseudoLabels(km.labels, km.centers, "euclidean", info)


@PSEUDO_LABELERS.register("moving_centers", check=_check_k, reads=KMEANS_KEYS)
def moving_center_labels(ctx: RunContext, state: RunState, features: np.ndarray, seed: int) -> PseudoLabels:
    """TCUL (eq. 1-2): k-means in the first round only; afterwards each sample takes the label of the
    most cosine-similar center, the centers moving between rounds (``after_round: center_update``)."""
    if "centers" not in state.arrays:
        first = kmeans_labels(ctx, state, features, seed)
        state.arrays["centers"] = first.centers
        return PseudoLabels(first.labels, first.centers, "cosine", first.info)
    labels, _ = assign(features, state.arrays["centers"], "cosine")
    return PseudoLabels(labels, state.arrays["centers"], "cosine")


@PSEUDO_LABELERS.register("dbscan", reads=DENSITY_KEYS)
def density_labels(ctx: RunContext, state: RunState, features: np.ndarray, seed: int) -> PseudoLabels:
    """Cluster contrast: DBSCAN on the k-reciprocal Jaccard distance (``cluster.k1``, ``k2``, ``eps``,
    ``min_samples``); samples in no dense region get label -1 and sit the round out. No K to guess;
    ``eps: auto`` is chosen from the data every round (``cluster.density.auto_eps``) and logged, with
    what the clustering shows of splitting people (``evaluation.oversegmentation``: cluster pairs that
    look like one person split by camera; clusters per tracker track), which the summary line says."""
    dist, info = appearance_distance(ctx, state, features)
    return _cluster_density(ctx, state, features, dist, info)


def appearance_distance(ctx: RunContext, state: RunState, features: np.ndarray) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """The distance DBSCAN clusters on, and what to log: ``cluster.distance`` ``jaccard`` (k-reciprocal,
    ``cluster.k1``/``k2``) or ``camera_jaccard`` (CA-Jaccard: neighbours ranked within and across cameras,
    ``cluster/camera_jaccard.py``; ``cluster.k1_intra`` from the data, the authors' other k's). With one
    camera there is nothing to balance, and ``camera_jaccard`` falls back to ``jaccard`` (logged)."""
    c = ctx.cfg.cluster
    if c.distance == "camera_jaccard":
        cameras = ctx.pool_cameras
        if len(np.unique(cameras)) > 1:
            k = intra_camera_neighbours(ctx, state, features)
            return (camera_jaccard_distance(features, cameras, k1_intra=k, device=ctx.device),
                    {"distance": "camera_jaccard", "k1_intra": k})
        return jaccard_distance(features, c.k1, c.k2, ctx.device), {"distance": "jaccard (one camera)"}
    return jaccard_distance(features, c.k1, c.k2, ctx.device), {}


def intra_camera_neighbours(ctx: RunContext, state: RunState, features: np.ndarray) -> int:
    """CA-Jaccard's ``k1_intra``: ``cluster.k1_intra``, or ``auto``: the crops of one camera visit, at least the
    authors' 5. A crop's own visit (the same person in the same camera) fills its first intra-camera
    neighbours; with fewer neighbours than a visit holds, a visit's crops stop being reciprocal and a
    densely sampled track splits (synthetic footage, 12 crops per track: 5 gave 62 clusters for 30 people
    and 84.0 mAP, against 91.9 with the plain distance). Estimated once, on the first round's features, as
    the median crops per camera of the plain Jaccard distance's DBSCAN clusters (most-clusters radius), and
    kept in the run state: market1501-mini 3 (true median 3), cuhk03-mini 5 (5), the footage 11 (12)."""
    c = ctx.cfg.cluster
    if c.k1_intra != "auto":
        return int(c.k1_intra)
    if "k1_intra" not in state.arrays:
        plain = jaccard_distance(features, c.k1, c.k2, ctx.device)
        labels = dbscan(plain, auto_eps(plain, c.min_samples)[0], c.min_samples)
        clustered = labels >= 0
        visit = 0
        if clustered.any():
            pairs = np.stack([labels[clustered], np.asarray(ctx.pool_cameras)[clustered]], 1)
            visit = int(np.median(np.unique(pairs, axis=0, return_counts=True)[1]))
        state.arrays["k1_intra"] = np.array([max(K1_INTRA, visit)], np.int64)
    return int(state.arrays["k1_intra"][0])


def density_radius(ctx: RunContext, state: RunState, dist: sp.csr_matrix) -> float:
    """DBSCAN's radius: ``cluster.eps``, or ``auto`` (``cluster.density.auto_eps`` on ``dist``) chosen every
    round, or with ``cluster.eps_update: first`` on the first round's features and kept (in the run state, so
    resume is exact), as the reference keeps its fixed 0.6. The most-clusters radius shrinks as training
    tightens the features (0.29, 0.16, 0.28, 0.16, 0.16 on a held-out network, issue 28), and K grows with
    it; but keeping round 1's radius lost 2.3 mAP on cuhk03-mini in 2 rounds (reliable pair precision 0.38
    against 0.76 at round 2; BENCHMARKS.md, issue-28 section): the shrinking radius buys precision, so
    ``every`` stays the default."""
    c = ctx.cfg.cluster
    if c.eps != "auto":
        return float(c.eps)
    if c.eps_update == "first" and "eps" in state.arrays:
        return float(state.arrays["eps"][0])
    eps = auto_eps(dist, c.min_samples)[0]
    if c.eps_update == "first":
        state.arrays["eps"] = np.array([eps], np.float64)
    return eps


def _cluster_density(ctx: RunContext, state: RunState, features: np.ndarray, dist: sp.csr_matrix, info: dict[str, Any],
                     eps_dist: sp.csr_matrix | None = None,
                     merge_links: tuple[np.ndarray, np.ndarray] | None = None) -> PseudoLabels:
    """DBSCAN on ``dist``; ``eps: auto`` chosen on ``eps_dist`` where given; the clusters that pairs of
    ``merge_links`` join merged after it. Centroids of ``features``."""
    c = ctx.cfg.cluster
    eps = density_radius(ctx, state, dist if eps_dist is None else eps_dist)
    human = ctx.constraints
    constrained = human is not None and not human.empty
    # a person's answers (semi.labels_as=links): in DBSCAN's input and kept in its output; eps as without
    labels = dbscan(constrain_distance(dist, human) if constrained else dist, eps, c.min_samples)
    if merge_links is not None:
        labels, merged = merge_linked_clusters(labels, *merge_links)
        info = {**info, "clusters_merged_by_links": merged}
    if constrained:
        labels, kept = enforce(labels, human)
        info = {**info, **kept}
    clustered = labels >= 0
    if not clustered.any():
        raise ProgReIDError(f"DBSCAN found no cluster at cluster.eps={eps} (min_samples {c.min_samples}) "
                            f"among {len(labels)} images. Fix: raise cluster.eps or lower cluster.min_samples.")
    seen = oversegmentation_signals(features, labels, ctx.pool_cameras, track_groups(ctx.pool_records))
    return PseudoLabels(labels, centroids(features[clustered], labels[clustered]), "cosine",
                        {"eps": round(eps, 3), "outlier_fraction": round(1 - float(clustered.mean()), 4), **info, **seen})


def _needs_identities(ctx: RunContext) -> None:
    if ctx.target.truth is None:
        raise ProgReIDError(f"--method oracle trains on the target's true identities (the ceiling unlabeled adaptation "
                            f"is measured against), and the training crops of {ctx.target.split.name!r} carry none. "
                            "Fix: use it on a labeled benchmark copy; on your own cameras use cc or tcc.")


@PSEUDO_LABELERS.register("identities", check=_needs_identities)
def true_identities(ctx: RunContext, state: RunState, features: np.ndarray, seed: int) -> PseudoLabels:
    """The oracle (``--method oracle``): the true identities of the training crops as the labels. The
    one stage that reads ground truth for training, on purpose: it measures what labels would give."""
    _, labels = np.unique(ctx.target.truth[ctx.pool], return_inverse=True)
    return PseudoLabels(labels.astype(np.int64), centroids(features, labels), "cosine", {"oracle": True})


def _check_temporal_dbscan(ctx: RunContext) -> None:
    from progreid.engine.stages.selection import require_frames

    require_frames(ctx)  # imported here: the selection stage imports this module


@PSEUDO_LABELERS.register("temporal_dbscan", check=_check_temporal_dbscan, reads=(
    *DENSITY_KEYS, "cluster.link_k", "cluster.link_blend", "cluster.eps_from", "cluster.link_as", "select.frame_window"))
def temporal_density_labels(ctx: RunContext, state: RunState, features: np.ndarray, seed: int) -> PseudoLabels:
    """tcc (progreid's own): ``dbscan`` after temporal must-links. Crops of one camera and sequence,
    within the camera's frame window and mutual ``cluster.link_k``-nearest neighbours, are put at
    distance ~0 (one person, 99.8% of the time on Market-1501), so a person's track holds together
    in one cluster instead of scattering into outliers or splitting across clusters.

    ``cluster.link_blend`` > 0 clusters features blended with their linked group's mean
    (``temporal.blend_along_links``: steadier across cameras). ``cluster.eps_from: appearance`` picks
    ``eps: auto`` on the plain Jaccard distance, as cc does: on the linked (or blended) distance the
    most-clusters radius falls to where tracks of one camera form clusters of their own (0.29 against
    0.49 on Market-1501, 2.2 cameras per cluster against 2.7; BENCHMARKS.md section 7).

    ``cluster.link_as: merge`` uses the links after DBSCAN instead: cc's clustering, then the clusters a
    must-link joins merged (issue 27: on market1501-mini's round-1 features links at ~0 with blend 0.5
    give 2.20 clusters per person against cc's 1.94; the merge gives 1.81 at 0.04 lower pair precision;
    ``benchmarks/oversplit.py --temporal``)."""
    c, records = ctx.cfg.cluster, ctx.pool_records
    window = ctx.frame_windows(features)
    i, j = must_links(features, records, window, c.link_k)
    plain, info = appearance_distance(ctx, state, features)
    blended = plain if c.link_blend <= 0 else appearance_distance(ctx, state, blend_along_links(features, i, j,
                                                                                                c.link_blend))[0]
    eps_dist = plain if c.eps_from == "appearance" else None
    info = {**info, "frame_window": {str(k): v for k, v in window.items()}, "must_links": int(len(i))}
    if c.link_as == "merge":
        return _cluster_density(ctx, state, features, blended, info, eps_dist, merge_links=(i, j))
    return _cluster_density(ctx, state, features, with_links(blended, i, j), info, eps_dist)


def merge_linked_clusters(labels: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, int]:
    """Clusters joined by a must-link (i, j) merged (connected components), renumbered; outliers stay
    outliers (a link never splits a cluster, nor pulls in what DBSCAN left out). Returns the labels
    and how many clusters the merges removed."""
    both = (labels[i] >= 0) & (labels[j] >= 0) & (labels[i] != labels[j])
    merged = merge_pairs(labels, np.stack([labels[i][both], labels[j][both]], 1))
    before = int(labels.max()) + 1 if (labels >= 0).any() else 0
    after = int(merged.max()) + 1 if (merged >= 0).any() else 0
    return merged, before - after

