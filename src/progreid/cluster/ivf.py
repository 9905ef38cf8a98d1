"""An inverted file in matrix products: approximate nearest neighbours whose cost grows linearly in N.

The searched points are grouped into cells of a fixed size (the caller's k-means of them); each query
probes its ``nprobe`` nearest cells and keeps the best ``k`` points among theirs. The work is done cell
by cell: every query that probes a cell is scored against that cell's points in one matrix product
(BLAS on CPU, the GPU), and a running top-k per query is merged. faiss's IVFFlat scans the same
candidates one query at a time; batching them per cell runs at matrix-product speed (200k crops,
30-NN, same cells and probes: 34 s here against faiss-cpu's 203 s, a one-off comparison; README "Dependencies").

Cost per query: C cell centers (the probe) + ``nprobe x cell size`` points, times D. With cells of a
fixed size, C = N_points / cell size, so the total is N_q x nprobe x cell size x D (linear in N) plus
N_q x C x D (quadratic, but 1/cell size of the exact search; it dominates only past ~10M points on
this CPU, see README "Scaling").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class InvertedFile:
    """Cells over ``points``: ``centers`` (C, D), and each point's cell as sorted lists."""
    centers: torch.Tensor
    members: torch.Tensor   # point indices sorted by cell
    bounds: list[int]       # cell c holds members[bounds[c]:bounds[c + 1]]

    @classmethod
    def build(cls, centers: torch.Tensor, cell_of: torch.Tensor) -> "InvertedFile":
        members = torch.argsort(cell_of, stable=True)
        bounds = torch.searchsorted(cell_of[members], torch.arange(len(centers) + 1, device=cell_of.device))
        return cls(centers, members, bounds.tolist())


def nearest_cells(x: torch.Tensor, centers: torch.Tensor, nprobe: int, metric: str = "l2",
                  chunk: int = 65536) -> torch.Tensor:
    """(N, nprobe) indices of each row's nearest cell centers, nearest first: by squared L2, or by
    inner product with the *normalised* centers (``ip``, for unit rows). The latter keeps a cell whose
    mean sits near the origin (it averages unlike rows) from being every row's nearest by L2, a hub
    that every query would scan (measured: 3.6x the work on identity-structured features)."""
    nprobe = min(nprobe, len(centers))
    if metric == "ip":
        c, bias, alpha = torch.nn.functional.normalize(centers, dim=1), torch.zeros(len(centers)), 1.0
    else:
        c, bias, alpha = centers, -(centers * centers).sum(1), 2.0
    bias = bias.to(x.device, x.dtype)
    return torch.cat([torch.addmm(bias[None, :], x[s:s + chunk], c.T, alpha=alpha)
                      .topk(nprobe, dim=1).indices for s in range(0, len(x), chunk)])


def search(queries: torch.Tensor, points: torch.Tensor, ivf: InvertedFile, probes: torch.Tensor, k: int,
           metric: str = "ip", chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``k`` points for each query among the points of its probed cells.

    ``metric``: ``ip`` ranks by inner product (cosine on normalised rows) and returns it; ``l2`` ranks
    by squared distance and returns ``2 q.p - |p|^2`` (the squared distance is ``|q|^2`` minus it).
    Returns (scores, indices), best first; a query with fewer than ``k`` candidates keeps -inf / -1.
    """
    if metric not in ("ip", "l2"):
        raise ValueError(f"metric {metric!r}: choose ip or l2")
    n_cells = len(ivf.centers)
    flat = probes.reshape(-1)
    order = torch.argsort(flat, stable=True)
    query_of = order // probes.shape[1]
    q_bounds = torch.searchsorted(flat[order], torch.arange(n_cells + 1, device=flat.device)).tolist()
    bias = -(points * points).sum(1) if metric == "l2" else torch.zeros(len(points), dtype=points.dtype,
                                                                             device=points.device)
    alpha = 2.0 if metric == "l2" else 1.0
    best_v = torch.full((len(queries), k), float("-inf"), dtype=queries.dtype, device=queries.device)
    best_i = torch.full((len(queries), k), -1, dtype=torch.long, device=queries.device)
    for cell in range(n_cells):
        cand = ivf.members[ivf.bounds[cell]:ivf.bounds[cell + 1]]
        asking = query_of[q_bounds[cell]:q_bounds[cell + 1]]
        if len(cand) == 0 or len(asking) == 0:
            continue
        cand_pts, cand_bias = points[cand], bias[cand]
        for s in range(0, len(asking), chunk):
            q = asking[s:s + chunk]  # distinct: a query probes a cell at most once
            block = torch.addmm(cand_bias[None, :], queries[q], cand_pts.T, alpha=alpha)
            if k == 1:
                v, j = block.max(1)
                better = v > best_v[q, 0]
                best_v[q[better], 0] = v[better]
                best_i[q[better], 0] = cand[j[better]]
                continue
            v, pos = block.topk(min(k, block.shape[1]), dim=1)  # this cell's best, then merged
            v = torch.cat([best_v[q], v], 1)
            top, at = v.topk(k, dim=1)
            best_v[q], best_i[q] = top, torch.cat([best_i[q], cand[pos]], 1).gather(1, at)
    return best_v, best_i
