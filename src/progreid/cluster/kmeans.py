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
  among the centers of its ``nprobe`` nearest cells, the cells being a k-means of the centers into
  sqrt(K) groups, redone every iteration (an inverted file over the centers, in matrix products):
  O(N x nprobe x sqrt(K) x D). Its price, the inertia against exact Lloyd from the same initial
  centers, is measured in BENCHMARKS.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm


PLUSPLUS_BUDGET = 2e8   # N x K above which seeding is a random sample
EXACT_BUDGET = 2e9      # N x K above which the assignment goes through an inverted file
IVF_NPROBE = 8


@dataclass
class KMeansResult:
    centers: np.ndarray   # (K, D) float32
    labels: np.ndarray    # (N,) int64
    inertia: float        # sum of squared distances to the assigned center
    n_iter: int
    init: str = "k-means++"
    assign: str = "exact"


def _ivf_assign(x: torch.Tensor, x_sq: torch.Tensor, c: torch.Tensor, seed: int,
                nprobe: int = IVF_NPROBE) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate nearest center: the centers are grouped into sqrt(K) cells (k-means of the centers),
    each point probes its ``nprobe`` nearest cells and takes the nearest center among theirs. Every
    distance is a matrix product (BLAS / GPU), cell by cell, over the points that probe that cell."""
    k = len(c)
    cells = kmeans(c, max(1, int(round(math.sqrt(k)))), max_iter=10, seed=seed, init="random", assign="exact")
    cell_centers = torch.as_tensor(cells.centers).to(x.device)
    cell_of = torch.as_tensor(cells.labels).to(x.device)
    nprobe = min(nprobe, len(cell_centers))
    cc_sq = (cell_centers * cell_centers).sum(1)
    probes = torch.cat([torch.addmm(cc_sq[None, :], x[s:s + 65536], cell_centers.T, alpha=-2.0).topk(
        nprobe, dim=1, largest=False).indices for s in range(0, len(x), 65536)])
    # inverted lists: for each cell, the points that probe it
    flat = probes.reshape(-1)
    order = torch.argsort(flat, stable=True)
    point_of = order // nprobe
    bounds = torch.searchsorted(flat[order], torch.arange(len(cell_centers) + 1, device=x.device)).tolist()
    members = torch.argsort(cell_of, stable=True)
    m_bounds = torch.searchsorted(cell_of[members], torch.arange(len(cell_centers) + 1, device=x.device)).tolist()
    c_sq = (c * c).sum(1)
    best = torch.full((len(x),), float("inf"), dtype=x.dtype, device=x.device)
    label = torch.zeros(len(x), dtype=torch.long, device=x.device)
    for cell in range(len(cell_centers)):
        pts = point_of[bounds[cell]:bounds[cell + 1]]
        cents = members[m_bounds[cell]:m_bounds[cell + 1]]
        if len(pts) == 0 or len(cents) == 0:
            continue
        for s in range(0, len(pts), 65536):
            p = pts[s:s + 65536]
            d, j = torch.addmm(c_sq[cents][None, :], x[p], c[cents].T, alpha=-2.0).min(1)
            better = d < best[p]
            best[p[better]] = d[better]
            label[p[better]] = cents[j[better]]
    return label, (best + x_sq).clamp_min_(0)


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
           progress: bool = False, init: str = "auto", assign: str = "auto") -> KMeansResult:
    """Cluster ``features`` (N, D) into ``k`` groups. Deterministic for a given ``seed`` and device.

    ``init``: k-means++ | random | auto; ``assign``: exact | ivf | auto (see the module docstring)."""
    x = torch.as_tensor(np.asarray(features, np.float32)).to(device) if isinstance(features, np.ndarray) \
        else features.float().to(device)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= K <= N, got K={k}, N={n}")
    gen = torch.Generator().manual_seed(seed)
    x_sq = (x * x).sum(1)
    chunk = _chunk_rows(k)
    init = init if init != "auto" else ("k-means++" if n * k <= PLUSPLUS_BUDGET else "random")
    assign = assign if assign != "auto" else ("exact" if n * k <= EXACT_BUDGET else "ivf")
    if init not in ("k-means++", "random") or assign not in ("exact", "ivf"):
        raise ValueError(f"k-means init {init!r} / assign {assign!r}: choose k-means++|random and exact|ivf")
    if init == "k-means++":
        centers = kmeans_plusplus(x, k, gen, n_trials)
    else:
        centers = x[torch.randperm(n, generator=gen)[:k].to(x.device)].clone()

    def nearest(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _sq_dists_min(x, x_sq, c, chunk) if assign == "exact" else _ivf_assign(x, x_sq, c, seed)

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
        new_labels, mins = nearest(centers)
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
