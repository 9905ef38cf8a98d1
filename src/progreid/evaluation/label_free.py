"""What the unlabeled training crops alone say about a model: signals a user with no labeled test set
can read every round (``label_free_*`` in ``metrics.jsonl``).

- ``label_free_cycle``: cross-camera cycle consistency. For a crop i, its nearest crop j in another
  camera, and j's nearest crop in i's camera: the share of crops for which that is i again. A model
  whose features match people across cameras returns to the start more often; one that matches
  backgrounds or viewpoints does not. Needs two or more cameras.
- ``label_free_cross_camera``: the share of each crop's 10 nearest crops that come from other cameras,
  over the share a camera-blind ranking would give (the other cameras' share of all crops). Low values:
  the features cluster by camera.
- ``label_free_score`` (higher is better): the one a user should compare runs and rounds by; its
  definition, and the evidence for it, are in ``label_free_score``'s docstring.

Computed on up to ``sample`` crops (a seeded sample), in row chunks: linear in N beyond it.
"""

from __future__ import annotations

import numpy as np
import torch


def _sample(n: int, sample: int, seed: int) -> np.ndarray:
    if n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))


def label_free_signals(features: np.ndarray, cameras: np.ndarray, sample: int = 20000, seed: int = 0,
                       k: int = 10, chunk: int = 1024) -> dict[str, float]:
    """The signals above for ``features`` (N, D) of crops taken by ``cameras`` (N,); {} with one camera."""
    idx = _sample(len(features), sample, seed)
    cams = np.asarray(cameras)[idx]
    values, cam_of = np.unique(cams, return_inverse=True)
    if len(values) < 2 or len(idx) < 2 * k:
        return {}
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(features, np.float32)[idx]), dim=1)
    c = torch.as_tensor(cam_of)
    n, n_cams = len(x), len(values)
    other_nn = torch.empty(n, dtype=torch.long)
    best_in_cam = torch.empty((n, n_cams), dtype=torch.long)  # each crop's nearest crop in every camera
    cross_share = torch.empty(n, dtype=torch.float32)  # whatever the default dtype (float64 in checks)
    members = [torch.nonzero(c == cam).ravel() for cam in range(n_cams)]
    for s in range(0, n, chunk):
        sim = x[s:s + chunk] @ x.T
        rows = torch.arange(s, min(s + chunk, n))
        sim[rows - s, rows] = -2.0  # not itself
        same = c[rows][:, None] == c[None, :]
        other_nn[rows] = sim.masked_fill(same, -3.0).argmax(1)
        for cam, cols in enumerate(members):
            best_in_cam[rows, cam] = cols[sim[:, cols].argmax(1)]
        top = sim.topk(k, dim=1).indices
        cross_share[rows] = (c[top] != c[rows][:, None]).float().mean(1)
    back = best_in_cam[other_nn, c]
    cycle = float((back == torch.arange(n)).float().mean())
    counts = torch.bincount(c, minlength=n_cams).float()
    blind = 1 - (counts[c] - 1) / (n - 1)  # other cameras' share of everyone else, per crop
    return {"label_free_cycle": round(cycle, 4),
            "label_free_cross_camera": round(float((cross_share / blind).mean()), 4)}


def label_free_score(signals: dict[str, float]) -> float | None:
    """The label-free estimate a run's rows and rounds are compared by (higher is better): the
    cross-camera neighbour share, None where there is one camera. Chosen on three runs on
    market1501-mini (oracle, cc, tcc; BENCHMARKS.md "label-free"): within each it rises with the true
    mAP at every evaluated round (Spearman 1.0 in all three), where the cycle consistency dipped at a
    round that gained mAP in two of them (0.8) and picked a round 3 mAP below tcc's best; on
    cuhk03-mini (cc) the cycle fell while mAP rose 11.9 -> 19.9, the share rose. Two targets, four runs:
    a signal, not a verdict."""
    return signals.get("label_free_cross_camera")


def best_round(rows: list[dict], last: int | None = None) -> tuple[int, float] | None:
    """(round, score) of the adapted round (1..``last``) with the highest ``label_free_score``, a later
    round winning a tie; None when no round has one (one camera). The score is recomputed from each row's
    signals, so a run written under an earlier definition of the score is read by the current one."""
    scored = [(label_free_score(r), r["round"]) for r in rows
              if r.get("round", 0) >= 1 and (last is None or r["round"] <= last)]
    scored = [(s, r) for s, r in scored if s is not None]
    if not scored:
        return None
    score, round_ = max(scored)
    return round_, float(score)
