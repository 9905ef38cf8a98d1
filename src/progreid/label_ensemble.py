"""Label ensembling across rounds (RLCC; Zhang et al., CVPR 2021): soft pseudo-labels that carry what the
last round's clustering said into this round's, so one re-clustering's noise moves the targets less.

Followed from the authors' code (2han9x1a0release/RLCC, ``tools/main.py`` and ``tools/label_stablization.py``)
with its defaults (alpha 0.9, temperature 30):

- the consensus of two rounds' clusterings: ``IoU(C_i^{t-1}, C_j^t)`` over the crops, each last-round row
  normalised to sum 1 (where a last-round cluster went to this round);
- a crop's last-round label, softened: ``alpha * onehot(y^{t-1}) + (1 - alpha) * softmax(T cos(f, c^{t-1}))``
  with ``f`` this round's feature and ``c^{t-1}`` the last round's cluster centres;
- propagated through the consensus: ``s = q @ IoU`` over this round's clusters; the loss is
  ``alpha * (the memory loss) + (1 - alpha) * CE(s, class probabilities)``.

Differences: a crop that the last round left out (a DBSCAN outlier) has no one-hot and keeps only its
softmax; the released code mixes the one-hot from its second refinement on (here from the first, so a
2-round run uses it at all); with a camera-aware memory a cluster's logit is the mean of its proxies'
logits (as the reference's memory averages its entries' logits per label).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F


def consensus(previous: np.ndarray, current: np.ndarray) -> sp.csr_matrix:
    """(K_prev, K_cur): ``|C_i & C_j| / |C_i | C_j|`` of the two rounds' clusters (label -1: in none),
    each row normalised to sum 1 (a row whose cluster shares no crop with this round's stays 0)."""
    previous, current = np.asarray(previous, np.int64), np.asarray(current, np.int64)
    k_prev, k_cur = int(previous.max()) + 1, int(current.max()) + 1
    both = (previous >= 0) & (current >= 0)
    inter = sp.csr_matrix((np.ones(int(both.sum())), (previous[both], current[both])), shape=(k_prev, k_cur))
    inter.sum_duplicates()
    size_prev = np.bincount(previous[previous >= 0], minlength=k_prev)
    size_cur = np.bincount(current[current >= 0], minlength=k_cur)
    coo = inter.tocoo()
    iou = coo.data / (size_prev[coo.row] + size_cur[coo.col] - coo.data)
    rows = np.bincount(coo.row, weights=iou, minlength=k_prev)
    return sp.csr_matrix((iou / rows[coo.row], (coo.row, coo.col)), shape=(k_prev, k_cur))


class SoftLabels:
    """RLCC's soft labels of one round's training crops, made per batch (memory O(N x D), not O(N x K))."""

    def __init__(self, features: np.ndarray, previous_labels: np.ndarray, previous_centers: np.ndarray,
                 current_labels: np.ndarray, alpha: float = 0.9, temperature: float = 30.0,
                 device: torch.device | str = "cpu"):
        """``features``: this round's features of the training crops; ``previous_labels``: their last-round
        clusters (-1: none); ``current_labels``: this round's (0..K-1); ``previous_centers``: (K_prev, D)."""
        self.features = F.normalize(torch.as_tensor(np.asarray(features, np.float32)), dim=1).to(device)
        self.previous = torch.as_tensor(np.asarray(previous_labels, np.int64)).to(device)
        self.centers = F.normalize(torch.as_tensor(np.asarray(previous_centers, np.float32)), dim=1).to(device)
        c = consensus(previous_labels, current_labels).tocoo()
        self.consensus = torch.sparse_coo_tensor(np.stack([c.row, c.col]), c.data.astype(np.float32),
                                                 c.shape, check_invariants=True).to(device).coalesce()
        self.alpha, self.temperature = alpha, temperature

    def rows(self, positions: torch.Tensor) -> torch.Tensor:
        """(B, K_cur) soft labels of the crops at ``positions`` (into the round's training crops)."""
        q = torch.softmax(self.temperature * self.features[positions] @ self.centers.T, dim=1)
        prev = self.previous[positions]
        had = prev >= 0
        onehot = F.one_hot(prev.clamp_min(0), len(self.centers)).to(q.dtype)
        q = torch.where(had[:, None], self.alpha * onehot + (1 - self.alpha) * q, q)
        return torch.sparse.mm(self.consensus.t(), q.T).T  # q @ consensus


def soft_label_loss(class_logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``-sum_k s_k log p_k``, batch mean (RLCC's Loss2)."""
    return -(soft.to(class_logits.dtype) * F.log_softmax(class_logits, dim=1)).sum(1).mean()
