"""TCUL's smooth center update (eq. 6-7) and how far centers moved."""

from __future__ import annotations

import numpy as np


def update_centers(centers: np.ndarray, features: np.ndarray, labels: np.ndarray, lambda_c: float = 0.5,
                   beta: float = 1.0) -> np.ndarray:
    """c_k <- c_k - lambda_c * sum_{i: l_i = k} (c_k - f_i) / (beta + n_k).

    ``beta`` keeps a cluster with few members from jumping onto them; empty clusters stay put.
    """
    k = len(centers)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros_like(centers, dtype=np.float64)
    np.add.at(sums, labels, features)
    step = (counts[:, None] * centers - sums) / (beta + counts)[:, None]
    return (centers - lambda_c * step).astype(centers.dtype)


def center_shift(old: np.ndarray, new: np.ndarray) -> float:
    """Mean Euclidean distance a center moved."""
    return float(np.linalg.norm(new - old, axis=1).mean())
