"""A straightforward per-query implementation (torchreid's ``eval_market1501`` shape).

Kept as the oracle for tests and the baseline for the evaluation benchmark. It sorts each
query's full row with ties broken as in :mod:`metrics` (negatives ahead of tied matches).
"""

from __future__ import annotations

import numpy as np

from progreid.evaluation.metrics import RankingMetrics


def evaluate_reference(dist: np.ndarray, q_pids, g_pids, q_cams, g_cams, max_rank: int = 50) -> RankingMetrics:
    dist = np.asarray(dist)
    q_pids, g_pids, q_cams, g_cams = map(np.asarray, (q_pids, g_pids, q_cams, g_cams))
    all_cmc, all_ap, all_inp = [], [], []
    skipped = 0
    for i in range(dist.shape[0]):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        d, matches = dist[i][keep], (g_pids[keep] == q_pids[i]).astype(np.int64)
        order = np.lexsort((matches, d))  # by distance, then negatives (0) before matches (1)
        raw = matches[order]
        if not raw.any():
            skipped += 1
            continue
        cum = raw.cumsum()
        last = np.flatnonzero(raw).max()
        all_inp.append(cum[last] / (last + 1.0))
        cmc = np.minimum(cum, 1)[:max_rank]
        if len(cmc) < max_rank:
            cmc = np.pad(cmc, (0, max_rank - len(cmc)), constant_values=cmc[-1])
        all_cmc.append(cmc)
        precision = cum / (np.arange(len(raw)) + 1.0)
        all_ap.append((precision * raw).sum() / raw.sum())
    ap = np.asarray(all_ap)
    return RankingMetrics(cmc=np.asarray(all_cmc, np.float64).mean(0), mAP=float(ap.mean()),
                          mINP=float(np.mean(all_inp)), num_valid=len(all_ap), num_skipped=skipped, ap=ap)
