"""Losses: label-smoothed cross-entropy (PUL, source training) and batch-hard triplet (TCUL)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

LOSSES = ("softmax", "triplet", "softmax+triplet", "contrast")  # train.loss; contrast: InfoNCE against a memory


def cross_entropy_smooth(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against (1 - eps) one-hot + eps / C (Szegedy et al.)."""
    return F.cross_entropy(logits, targets, label_smoothing=epsilon)


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.5,
                       normalize: bool = False) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017), vectorised as in fast-reid.

    For each anchor: hardest positive = max distance over same label, hardest negative = min
    distance over other labels; loss = mean(relu(d_ap - d_an + margin)). Euclidean distances.
    Anchors without a positive or a negative in the batch contribute nothing.
    """
    f = F.normalize(features, dim=1) if normalize else features
    sq = (f * f).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2 * f @ f.T).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    is_pos = same & ~eye
    is_neg = ~same
    d_ap = (dist * is_pos).max(1).values  # distances are >= 0, so masked-out entries never win
    d_an = (dist + 1e9 * (~is_neg)).min(1).values
    valid = is_pos.any(1) & is_neg.any(1)
    if not valid.any():
        return features.sum() * 0.0
    return F.relu(d_ap - d_an + margin)[valid].mean()
