"""CMC, mAP and mINP without sorting whole gallery rows.

The usual implementation argsorts every query's row (O(G log G) per query, one at a time). All
these metrics only need the rank of each *true match*, and that rank is
``(matches before it) + (negatives with a distance <= its distance)``. So per chunk of queries we
take the few match distances (top-k over a masked row) and count the negatives before each with a
distance histogram plus an exact comparison inside the shared bins: O(G) per query, vectorised,
memory bounded by the chunk size.

Protocol (Market-1501): gallery entries with the query's id AND camera are ignored; queries with
no valid match are skipped and counted. Ties are broken pessimistically: a negative at exactly a
match's distance ranks ahead of it (the reference implementation uses the same rule).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from progreid.evaluation.distance import pairwise_distance

RANKS = (1, 5, 10, 20)


@dataclass
class RankingMetrics:
    """Fractions in [0, 1]; ``as_percent`` gives the user-facing numbers."""

    cmc: np.ndarray                 # cmc[k-1] = fraction of queries with a true match in the top k
    mAP: float
    mINP: float
    num_valid: int
    num_skipped: int                # queries without any valid match in the gallery
    ap: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # per valid query

    def rank(self, k: int) -> float:
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def as_percent(self) -> dict[str, float]:
        out = {f"rank{k}": round(100 * self.rank(k), 2) for k in RANKS}
        out["mAP"] = round(100 * self.mAP, 2)
        out["mINP"] = round(100 * self.mINP, 2)
        return out

    def summary(self) -> str:
        p = self.as_percent()
        return (f"R1 {p['rank1']:.1f}  R5 {p['rank5']:.1f}  R10 {p['rank10']:.1f}  R20 {p['rank20']:.1f}  "
                f"mAP {p['mAP']:.1f}  mINP {p['mINP']:.1f}  ({self.num_valid} queries"
                + (f", {self.num_skipped} without a valid match skipped)" if self.num_skipped else ")"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("ap")
        d["cmc"] = self.cmc.tolist()
        return d


def _chunk_ranks(dist: torch.Tensor, q_pids: torch.Tensor, q_cams: torch.Tensor, g_pids: torch.Tensor,
                 g_cams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based ranks of each query's true matches (padded with -1) and the match counts.

    rank of match j = j + (negatives with distance <= d_j). Negatives are counted in two steps:
    a coarse histogram over distance bins (one ``bincount`` for the chunk) gives, exactly, the
    negatives in bins below match j's bin; only the few negatives sharing a bin with a match are
    then compared with the match distances themselves.
    """
    n_q, n_g = dist.shape
    same_id = q_pids[:, None] == g_pids[None, :]
    match = same_id & (q_cams[:, None] != g_cams[None, :])  # same id AND camera: ignored
    n_match = match.sum(1)
    p_max = int(n_match.max()) if n_q else 0
    if p_max == 0:
        return torch.full((n_q, 0), -1, dtype=torch.long), n_match
    inf = torch.tensor(float("inf"), dtype=dist.dtype)
    match_d = torch.where(match, dist, inf).topk(p_max, dim=1, largest=False).values  # ascending, inf-padded
    valid = torch.arange(p_max)[None, :] < n_match[:, None]
    neg_d = torch.where(same_id, inf, dist)  # matches and ignored entries are not negatives

    # Bins over [lo, hi]. The mapping is monotone, so a histogram of negatives counts, exactly,
    # those in bins below a match's bin. Infinite distances (non-negatives) land in bin n_bins;
    # negatives just past the farthest match may share its bin: the exact step handles them.
    lo = float(dist.min())
    hi = float(match_d[valid].max())
    n_bins = max(64, min(n_g // 4, 1 << 16))
    scale = n_bins / (hi - lo) * (1 - 1e-6) if hi > lo else 1.0  # never 0: inf * 0 is nan
    shift = torch.tensor(-lo * scale, dtype=dist.dtype)

    def to_bin(d: torch.Tensor) -> torch.Tensor:
        return torch.add(shift, d, alpha=scale).clamp_(0, n_bins).to(torch.int32)

    neg_bin = to_bin(neg_d)
    match_bin = to_bin(match_d).long()  # padded matches land in bin n_bins
    flat = neg_bin + (torch.arange(n_q, dtype=torch.int32) * (n_bins + 1))[:, None]
    hist = torch.bincount(flat.view(-1), minlength=n_q * (n_bins + 1)).view(n_q, n_bins + 1)
    below = hist.cumsum(1) - hist  # negatives in bins strictly below each bin
    neg_before = below.gather(1, match_bin)

    # negatives that share a bin with some match of their query: compare exactly
    has_match = torch.zeros(n_q, n_bins + 1, dtype=torch.bool)
    has_match.scatter_(1, match_bin, valid)
    rows, cols = has_match.gather(1, neg_bin.long()).nonzero(as_tuple=True)
    if len(rows):
        vals = neg_d[rows, cols]
        first = (match_d[rows] < vals[:, None]).sum(1)  # first match j with d_j >= value
        end = (match_bin[rows] <= neg_bin[rows, cols].long()[:, None]).sum(1)  # past the last match in its bin
        diff = torch.zeros(n_q, p_max + 1, dtype=torch.long)
        diff.index_put_((rows, first), torch.ones_like(first), accumulate=True)
        diff.index_put_((rows, end), -torch.ones_like(end), accumulate=True)
        neg_before = neg_before + diff.cumsum(1)[:, :p_max]
    ranks = torch.arange(p_max)[None, :] + neg_before
    return torch.where(valid, ranks, torch.full_like(ranks, -1)), n_match


def evaluate_ranking(dist: np.ndarray | torch.Tensor, q_pids, g_pids, q_cams, g_cams,
                     max_rank: int = 50, chunk_size: int = 0) -> RankingMetrics:
    """Metrics from a precomputed (Q, G) distance matrix (smaller = more similar)."""
    dist = torch.as_tensor(dist)
    return _evaluate(lambda s, e: dist[s:e], dist.shape[0], dist.shape[1], q_pids, g_pids, q_cams, g_cams,
                     max_rank, chunk_size)


def evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, metric: str = "cosine",
                      max_rank: int = 50, chunk_size: int = 0) -> RankingMetrics:
    """Metrics from features, computing distances chunk by chunk: memory stays O(chunk x G)."""
    qf_t, gf_t = torch.as_tensor(np.asarray(qf, np.float32)), torch.as_tensor(np.asarray(gf, np.float32))
    return _evaluate(lambda s, e: pairwise_distance(qf_t[s:e], gf_t, metric), len(qf_t), len(gf_t),
                     q_pids, g_pids, q_cams, g_cams, max_rank, chunk_size)


def evaluate_distance_rows(dist_rows: Callable[[int, int], torch.Tensor], n_q: int, n_g: int, q_pids, g_pids,
                           q_cams, g_cams, max_rank: int = 50, chunk_size: int = 0) -> RankingMetrics:
    """Metrics from a function giving the (e - s, G) distances of query rows [s, e) (a distance too
    large to hold at once, e.g. re-ranked ones)."""
    return _evaluate(dist_rows, n_q, n_g, q_pids, g_pids, q_cams, g_cams, max_rank, chunk_size)


def _evaluate(dist_rows, n_q: int, n_g: int, q_pids, g_pids, q_cams, g_cams, max_rank: int,
              chunk_size: int) -> RankingMetrics:
    q_pids, g_pids, q_cams, g_cams = (torch.as_tensor(np.asarray(a, np.int64)) for a in (q_pids, g_pids, q_cams, g_cams))
    if chunk_size <= 0:  # ~64 MB of float32 distances per chunk
        chunk_size = max(1, min(n_q, (16 << 20) // max(n_g, 1)))
    hits = torch.zeros(max_rank, dtype=torch.float64)
    aps, inps = [], []
    skipped = 0
    for s in range(0, n_q, chunk_size):
        e = min(s + chunk_size, n_q)
        ranks, n_match = _chunk_ranks(dist_rows(s, e), q_pids[s:e], q_cams[s:e], g_pids, g_cams)
        ok = n_match > 0
        skipped += int((~ok).sum())
        ranks, n_match = ranks[ok], n_match[ok]
        if len(ranks) == 0:
            continue
        first = ranks[:, 0]
        hits += (first[:, None] < torch.arange(1, max_rank + 1)[None, :]).sum(0).double()
        j = torch.arange(ranks.shape[1])[None, :].double()
        prec = torch.where(ranks >= 0, (j + 1) / (ranks.double() + 1), torch.zeros((), dtype=torch.float64))
        aps.append(prec.sum(1) / n_match.double())
        last = ranks.gather(1, (n_match - 1)[:, None]).squeeze(1)
        inps.append(n_match.double() / (last.double() + 1))
    valid = n_q - skipped
    if valid == 0:
        raise ValueError("no query has a valid match in the gallery: check the query/gallery split.")
    ap = torch.cat(aps).numpy()
    return RankingMetrics(cmc=(hits / valid).numpy(), mAP=float(ap.mean()), mINP=float(torch.cat(inps).mean()),
                          num_valid=valid, num_skipped=skipped, ap=ap)
