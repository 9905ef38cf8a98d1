"""Pseudo-label quality diagnostics. They read ground truth, so they only *report*: the loop
never feeds them back into training."""

from __future__ import annotations

import numpy as np


def _contingency(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    _, p = np.unique(pred, return_inverse=True)
    _, t = np.unique(truth, return_inverse=True)
    table = np.zeros((p.max() + 1, t.max() + 1), np.int64)
    np.add.at(table, (p, t), 1)
    return table


def purity(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of samples whose cluster's majority identity is their own."""
    if len(pred) == 0:
        return float("nan")
    return float(_contingency(pred, truth).max(1).sum() / len(pred))


def nmi(pred: np.ndarray, truth: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean normalisation, as sklearn's default)."""
    if len(pred) == 0:
        return float("nan")
    table = _contingency(pred, truth).astype(np.float64)
    n = table.sum()
    pij = table / n
    pi, pj = pij.sum(1), pij.sum(0)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / (pi[:, None] * pj[None, :])[nz])).sum())
    h = lambda p: float(-(p[p > 0] * np.log(p[p > 0])).sum())  # noqa: E731
    denom = (h(pi) + h(pj)) / 2
    return mi / denom if denom > 0 else 1.0


def pair_precision(pred: np.ndarray, truth: np.ndarray) -> float:
    """Of all pairs sharing a pseudo-label, the fraction that are truly the same person."""
    table = _contingency(pred, truth)
    same_pred = (table.sum(1) * (table.sum(1) - 1)).sum()
    both = (table * (table - 1)).sum()
    return float(both / same_pred) if same_pred else float("nan")


def pair_recall(pred: np.ndarray, truth: np.ndarray) -> float:
    """Of all pairs of one person, the fraction that share a pseudo-label: low when people are split."""
    table = _contingency(pred, truth)
    same_truth = (table.sum(0) * (table.sum(0) - 1)).sum()
    both = (table * (table - 1)).sum()
    return float(both / same_truth) if same_truth else float("nan")


def cameras_per_cluster(labels: np.ndarray, cameras: np.ndarray, reliable: np.ndarray) -> float:
    """Mean number of distinct cameras among each pseudo-identity's reliable members (clusters
    with at least two). Needs no ground truth: it tells whether training will see cross-camera
    positives, which similarity selection tends to lose (near-duplicates from one camera)."""
    lab, cam = labels[reliable], cameras[reliable]
    if len(lab) == 0:
        return float("nan")
    pairs = np.unique(np.stack([lab, cam], 1), axis=0)
    per_cluster = np.bincount(pairs[:, 0])
    sizes = np.bincount(lab)
    keep = sizes[: len(per_cluster)] >= 2
    return float(per_cluster[keep].mean()) if keep.any() else float("nan")


def label_diagnostics(labels: np.ndarray, reliable: np.ndarray, truth: np.ndarray | None) -> dict[str, float]:
    """Cluster purity/NMI of the clustered samples (label >= 0; DBSCAN's outliers are -1) and
    purity/pair precision of the reliable subset."""
    if truth is None or np.any(truth < 0):
        return {}
    clustered = labels >= 0
    return {
        "purity": round(purity(labels[clustered], truth[clustered]), 4),
        "nmi": round(nmi(labels[clustered], truth[clustered]), 4),
        "reliable_purity": round(purity(labels[reliable], truth[reliable]), 4),
        "reliable_pair_precision": round(pair_precision(labels[reliable], truth[reliable]), 4),
        "reliable_pair_recall": round(pair_recall(labels[reliable], truth[reliable]), 4),
        "clusters_per_person": round(float(np.mean([len(np.unique(labels[clustered][truth[clustered] == p]))
                                                    for p in np.unique(truth[clustered])])), 3),
        "people": int(len(np.unique(truth))),
    }


def identity_cosines(features: np.ndarray, reliable: np.ndarray, truth: np.ndarray | None,
                     sample: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean cosine between reliable samples of the same / of different true identities (a random
    ``sample`` of them; ground truth, diagnostics only). A fixed similarity threshold keeps fewer
    samples when fine-tuning lowers both (PUL, BENCHMARKS.md), and separates people only while the
    gap between them stays wide."""
    if truth is None or np.any(truth < 0) or reliable.sum() < 2:
        return {}
    idx = np.flatnonzero(reliable)
    if len(idx) > sample:
        idx = np.sort(np.random.default_rng(seed).choice(idx, sample, replace=False))
    f = features[idx] / np.maximum(np.linalg.norm(features[idx], axis=1, keepdims=True), 1e-12)
    cos = f @ f.T
    same = truth[idx][:, None] == truth[idx][None, :]
    np.fill_diagonal(same, False)
    diff = truth[idx][:, None] != truth[idx][None, :]
    out = {}
    if same.any():
        out["reliable_cos_same_id"] = round(float(cos[same].mean()), 4)
    if diff.any():
        out["reliable_cos_different_id"] = round(float(cos[diff].mean()), 4)
    return out
