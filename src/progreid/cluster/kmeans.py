"""k-means with k-means++ initialisation, in torch (multi-threaded BLAS on CPU, or the GPU).

Distances come from ``|x|^2 - 2 x.c + |c|^2`` in row chunks, so memory is O(chunk x K), never
O(N^2). Convergence follows sklearn's rule (total squared center shift below
``tol * mean feature variance``, or no label change) so the two are comparable; ``rtol`` adds an
early stop once an iteration lowers the inertia by less than that fraction, which reaches
sklearn's inertia within a fraction of a percent in far fewer iterations (see BENCHMARKS.md).

At scale (a million crops, K = N/16) two steps stop being affordable, and ``init``/``assign`` pick
the scalable variant, on their own when N x K is large (the choice is in the result):
- k-means++ seeding costs ~log(K) x N x K x D: above ``PLUSPLUS_BUDGET`` the initial centers are a
  seeded random sample of the points (faiss's default);
- the exact assignment costs N x K x D per iteration: above ``EXACT_BUDGET`` each point is assigned
  among the centers of its ``IVF_NPROBE`` nearest cells, a cell being ~``CENTERS_PER_CELL`` centers
  (a k-means of the centers, warm-started each iteration; an inverted file in matrix products, see
  ``ivf.py``): O(N x (K / CENTERS_PER_CELL + IVF_NPROBE x CENTERS_PER_CELL) x D), linear in N for the
  sizes that fit one machine. Its price, the inertia against exact Lloyd from the same initial
  centers, is measured in BENCHMARKS.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .ivf import InvertedFile, nearest_cells, search


PLUSPLUS_BUDGET = 2e8   # N x K above which seeding is a random sample
EXACT_BUDGET = 2e9      # N x K above which the assignment goes through an inverted file
IVF_NPROBE = 8          # cells of centers each point probes
CENTERS_PER_CELL = 64


@dataclass
class KMeansResult:
    centers: np.ndarray   # (K, D) float32
    labels: np.ndarray    # (N,) int64
    inertia: float        # sum of squared distances to the assigned center
    n_iter: int
    init: str = "k-means++"
    assign: str = "exact"


class _CenterCells:
    """The inverted file over the current centers, for IVF assignment: cells of about
    ``CENTERS_PER_CELL`` centers, warm-started every iteration from the previous cells (two Lloyd
    steps: the centers move little between iterations). On unit rows (re-ID features) the cells are a
    spherical k-means of the centers' directions and points probe by inner product (``ivf.py``: L2
    probing makes a near-origin cell every point's first probe); otherwise L2 throughout. Each point
    also scores the center it had, so an iteration never moves a point to a worse center than its
    previous one (measured: fewer iterations, inertia within 0.1% of exact Lloyd)."""

    def __init__(self, seed: int, unit_rows: bool):
        self.seed = seed
        self.metric = "ip" if unit_rows else "l2"
        self.cell_centers: torch.Tensor | None = None

    def assign(self, x: torch.Tensor, x_sq: torch.Tensor, c: torch.Tensor,
               previous: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        n_cells = max(1, round(len(c) / CENTERS_PER_CELL))
        warm = self.cell_centers if self.cell_centers is not None else "random"
        directions = torch.nn.functional.normalize(c, dim=1) if self.metric == "ip" else c
        cells = kmeans(directions, n_cells, max_iter=2 if self.cell_centers is not None else 10, seed=self.seed,
                       init=warm, assign="exact", device=x.device)
        self.cell_centers = torch.as_tensor(cells.centers).to(x.device)
        cell_of = nearest_cells(directions, self.cell_centers, 1, metric=self.metric)[:, 0] \
            if self.metric == "ip" else torch.as_tensor(cells.labels).to(x.device)
        ivf = InvertedFile.build(self.cell_centers, cell_of)
        probes = nearest_cells(x, self.cell_centers, IVF_NPROBE, metric=self.metric)
        score, label = search(x, c, ivf, probes, 1, metric="l2")
        score, label = score[:, 0], label[:, 0]
        if previous is not None:
            for s in range(0, len(x), 65536):
                p = previous[s:s + 65536]
                kept = 2 * (x[s:s + 65536] * c[p]).sum(1) - (c[p] * c[p]).sum(1)
                better = kept > score[s:s + 65536]
                score[s:s + 65536][better], label[s:s + 65536][better] = kept[better], p[better]
        return label, (x_sq - score).clamp_min_(0)


def _sq_dists_min(x: torch.Tensor, x_sq: torch.Tensor, c: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest center and its squared distance for every row of ``x``."""
    c_sq = (c * c).sum(1)
    labels = torch.empty(len(x), dtype=torch.long, device=x.device)
    mins = torch.empty(len(x), dtype=x.dtype, device=x.device)
    for s in range(0, len(x), chunk):
        d = torch.addmm(c_sq[None, :], x[s:s + chunk], c.T, alpha=-2.0)  # |c|^2 - 2 x.c
        m, idx = d.min(1)
        labels[s:s + chunk] = idx
        mins[s:s + chunk] = (m + x_sq[s:s + chunk]).clamp_min_(0)
    return labels, mins


def _chunk_rows(n_cols: int, budget: int = 1 << 24) -> int:
    return max(256, budget // max(n_cols, 1))


def seeding_dtype(device: torch.device) -> torch.dtype:
    """bf16 where matmuls in it are fast (GPU, AVX-512 CPUs), else fp32.

    Seeding reads all N points once per center (memory-bound); bf16 halves the bytes and uses
    the bf16 dot-product units: 3.6x faster here. It only steers the D^2 sampling, on centered
    data; Lloyd iterations and the reported inertia stay fp32.
    """
    if device.type == "cuda" or torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX"):
        return torch.bfloat16
    return torch.float32


def kmeans_plusplus(x: torch.Tensor, k: int, gen: torch.Generator, n_trials: int | None = None) -> torch.Tensor:
    """Greedy k-means++ (Arthur & Vassilvitskii; sklearn's variant with 2 + log K local trials)."""
    n = len(x)
    n_trials = n_trials or 2 + int(math.log(k))
    xc = x - x.mean(0, keepdim=True)  # distances are translation-invariant; centering avoids cancellation
    xs = xc.to(seeding_dtype(x.device))
    x_sq = (xc * xc).sum(1)
    chosen = torch.empty(k, dtype=torch.long)
    first = int(torch.randint(n, (1,), generator=gen))
    chosen[0] = first
    closest = ((xc - xc[first]) ** 2).sum(1).clamp_min_(0)
    for c in range(1, k):
        pot = closest.sum()
        if float(pot) <= 0:  # fewer distinct points than clusters: duplicate a center
            chosen[c:] = torch.randint(n, (k - c,), generator=gen)
            break
        r = torch.rand(n_trials, generator=gen, dtype=torch.float64).to(x.device) * float(pot)
        cand = torch.searchsorted(torch.cumsum(closest.double(), 0), r).clamp_(max=n - 1)
        dots = (xs[cand] @ xs.T).float()  # (trials, N)
        d = (x_sq[None, :] - 2 * dots + x_sq[cand][:, None]).clamp_min_(0)
        d = torch.minimum(d, closest[None, :])
        best = int(d.sum(1).argmin())
        chosen[c] = cand[best]
        closest = d[best]
    return x[chosen.to(x.device)].clone()


def kmeans(features: np.ndarray | torch.Tensor, k: int, max_iter: int = 300, tol: float = 1e-4,
           rtol: float = 1e-4, seed: int = 0, n_trials: int | None = None, device: str | torch.device = "cpu",
           progress: bool = False, init: str | torch.Tensor = "auto", assign: str = "auto") -> KMeansResult:
    """Cluster ``features`` (N, D) into ``k`` groups. Deterministic for a given ``seed`` and device.

    ``init``: k-means++ | random | auto, or the (k, D) initial centers (a warm start);
    ``assign``: exact | ivf | auto (see the module docstring)."""
    x = torch.as_tensor(np.asarray(features, np.float32)).to(device) if isinstance(features, np.ndarray) \
        else features.float().to(device)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= K <= N, got K={k}, N={n}")
    gen = torch.Generator().manual_seed(seed)
    x_sq = (x * x).sum(1)
    chunk = _chunk_rows(k)
    given = None
    if isinstance(init, torch.Tensor):
        given, init = init.float().to(device), "given"
        if given.shape != (k, x.shape[1]):
            raise ValueError(f"k-means initial centers of shape {tuple(given.shape)}, expected ({k}, {x.shape[1]})")
    init = init if init != "auto" else ("k-means++" if n * k <= PLUSPLUS_BUDGET else "random")
    assign = assign if assign != "auto" else ("exact" if n * k <= EXACT_BUDGET else "ivf")
    if init not in ("k-means++", "random", "given") or assign not in ("exact", "ivf"):
        raise ValueError(f"k-means init {init!r} / assign {assign!r}: choose k-means++|random and exact|ivf")
    if init == "k-means++":
        centers = kmeans_plusplus(x, k, gen, n_trials)
    elif init == "random":
        centers = x[torch.randperm(n, generator=gen)[:k].to(x.device)].clone()
    else:
        centers = given.clone()
    cells = _CenterCells(seed, unit_rows=bool(((x_sq - 1).abs() < 1e-3).all()))

    def nearest(c: torch.Tensor, previous: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return _sq_dists_min(x, x_sq, c, chunk) if assign == "exact" else cells.assign(x, x_sq, c, previous)

    shift_tol = tol * float(x.var(0).mean())
    labels, mins = nearest(centers)
    inertia = float(mins.sum())
    it = 0
    bar = tqdm(total=max_iter, desc="k-means", disable=not progress, leave=False)
    for it in range(1, max_iter + 1):
        counts = torch.bincount(labels, minlength=k)
        new = torch.zeros_like(centers).index_add_(0, labels, x)
        empty = counts == 0
        new[~empty] /= counts[~empty, None].to(x.dtype)
        if empty.any():  # relocate empty clusters to the worst-served points (as sklearn does)
            far = mins.topk(int(empty.sum())).indices
            new[empty] = x[far]
        shift = float(((new - centers) ** 2).sum())
        centers = new
        new_labels, mins = nearest(centers, labels)
        new_inertia = float(mins.sum())
        bar.update(1)
        unchanged = bool(torch.equal(new_labels, labels))
        gain = (inertia - new_inertia) / max(inertia, 1e-12)
        labels, inertia = new_labels, new_inertia
        if unchanged or shift <= shift_tol or (rtol > 0 and 0 <= gain < rtol):
            break
    bar.close()
    return KMeansResult(centers.cpu().numpy(), labels.cpu().numpy(), inertia, it, init, assign)


def assign(features: np.ndarray, centers: np.ndarray, metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """Label each sample with its nearest center (TCUL eq. 1-2). Returns (labels, similarity or -sq dist)."""
    x = torch.as_tensor(np.asarray(features, np.float32))
    c = torch.as_tensor(np.asarray(centers, np.float32))
    if metric == "cosine":
        sim = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(c, dim=1).T
        best, labels = sim.max(1)
        return labels.numpy(), best.numpy()
    labels, mins = _sq_dists_min(x, (x * x).sum(1), c, _chunk_rows(len(c)))
    return labels.numpy(), -mins.numpy()
