"""Scaling of pseudo-labelling: k-means (K = N/16) and the 30-NN graph on synthetic 512-d features
with identity structure, one fresh process per (size, operation) so its peak memory is its own.

    python benchmarks/bench.py scale --sizes 10000 100000 1000000

Features: N/16 identities in N/256 groups of similar-looking people (a group is a random unit
direction, an identity its group's plus Gaussian noise of per-dimension sigma 0.04, a sample its
identity's plus sigma 0.035, each normalised): a crop's nearest crops are its identity's, then those
of similar people, as with re-ID features.
At 100k the approximations are priced: k-means with IVF assignment against exact Lloyd from the
same random initial centers (inertia of both final centers under exact assignment), and the IVF
30-NN graph's recall against the exact one.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import numpy as np

DIM, PER_ID, NEIGHBOURS, KMEANS_ITERS = 512, 16, 30, 20


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def features(n: int, seed: int = 0, chunk: int = 65536) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = max(1, n // PER_ID)
    groups = _unit(rng.standard_normal((max(1, ids // PER_ID), DIM), dtype=np.float32))  # looks people share
    centers = _unit(groups[rng.integers(0, len(groups), ids)] + rng.standard_normal((ids, DIM), dtype=np.float32) * 0.04)
    out = np.empty((n, DIM), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = centers[rng.integers(0, ids, m)] + rng.standard_normal((m, DIM), dtype=np.float32) * 0.035
        out[s:s + m] = _unit(x)
    return out


def peak_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024


def exact_inertia(x: np.ndarray, centers: np.ndarray) -> float:
    import torch

    from progreid.cluster.kmeans import _chunk_rows, _sq_dists_min

    xt, ct = torch.as_tensor(x), torch.as_tensor(centers)
    return float(_sq_dists_min(xt, (xt * xt).sum(1), ct, _chunk_rows(len(ct)))[1].double().sum())


def run_one(op: str, n: int) -> dict:
    """One measurement in this process (called through ``python scale.py OP N``)."""
    from progreid.cluster.jaccard import KNN_EXACT_LIMIT, knn
    from progreid.cluster.kmeans import kmeans

    x = features(n)
    k = max(2, n // PER_ID)
    out: dict = {"op": op, "n": n}
    start = time.perf_counter()
    if op == "kmeans":
        r = kmeans(x, k, max_iter=KMEANS_ITERS, seed=0)
        out.update(k=k, init=r.init, assign=r.assign, iters=r.n_iter)
    elif op == "knn":
        idx, _ = knn(x, NEIGHBOURS)
        out.update(method="ivf" if n > KNN_EXACT_LIMIT else "exact")
    elif op == "kmeans_price":  # same random initial centers: exact Lloyd vs IVF assignment
        runs = {a: kmeans(x, k, max_iter=KMEANS_ITERS, seed=0, init="random", assign=a) for a in ("exact", "ivf")}
        out.update(k=k, **{f"inertia_{a}": exact_inertia(x, r.centers) for a, r in runs.items()},
                   **{f"iters_{a}": r.n_iter for a, r in runs.items()})
    elif op == "knn_price":
        exact, _ = knn(x, NEIGHBOURS, method="exact")
        approx, _ = knn(x, NEIGHBOURS, method="ivf")
        hits = sum(len(np.intersect1d(a[1:], b[1:], assume_unique=True)) for a, b in zip(exact, approx))
        out["recall"] = hits / (len(x) * (NEIGHBOURS - 1))
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["peak_mb"] = round(peak_mb(), 1)
    return out


def measure(op: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, op, str(n)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{op} at {n}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exponent(rows: list[dict]) -> float:
    """Slope of log(seconds) against log(N): 1 is linear."""
    if len(rows) < 2:
        return float("nan")
    ln_n = np.log([r["n"] for r in rows])
    ln_t = np.log([max(r["seconds"], 1e-3) for r in rows])
    return float(np.polyfit(ln_n, ln_t, 1)[0])


def report(sizes: list[int], log=print) -> tuple[str, list[dict]]:
    rows = []
    for op in ("kmeans", "knn"):
        for n in sizes:
            rows.append(measure(op, n))
            log(json.dumps(rows[-1]))
    price_n = 100_000
    prices = [measure("kmeans_price", price_n), measure("knn_price", price_n)]
    for p in prices:
        log(json.dumps(p))
    lines = ["| operation | N | K / k | how | seconds | peak RSS (MB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        how = f"{r['init']} init, {r['assign']} assignment, {r['iters']} iterations" if r["op"] == "kmeans" \
            else f"{r['method']}"
        kk = r.get("k", NEIGHBOURS)
        lines.append(f"| {'k-means' if r['op'] == 'kmeans' else f'{NEIGHBOURS}-NN graph'} | {r['n']:,} | {kk:,} | "
                     f"{how} | {r['seconds']:.1f} | {r['peak_mb']:,.0f} |")
    fits = {op: exponent([r for r in rows if r["op"] == op and r["n"] >= min(sizes[-2:] if len(sizes) > 1 else sizes)])
            for op in ("kmeans", "knn")}
    fits_all = {op: exponent([r for r in rows if r["op"] == op]) for op in ("kmeans", "knn")}
    km, kn = prices
    ratio = km["inertia_ivf"] / km["inertia_exact"]
    text = "\n".join(lines) + (
        f"\n\nGrowth exponent of time in N (log-log slope, all sizes / the last two): k-means "
        f"{fits_all['kmeans']:.2f} / {fits['kmeans']:.2f}, 30-NN graph {fits_all['knn']:.2f} / {fits['knn']:.2f}.\n\n"
        f"Price of the approximations at N = {price_n:,}: k-means with IVF assignment reaches "
        f"**{ratio:.4f}x** the inertia of exact Lloyd from the same random initial centers "
        f"({km['iters_ivf']} vs {km['iters_exact']} iterations; {km['seconds']:.0f} s for both); "
        f"the IVF 30-NN graph recalls **{100 * kn['recall']:.1f}%** of the exact graph's neighbours.")
    return text, rows + prices


if __name__ == "__main__":
    print(json.dumps(run_one(sys.argv[1], int(sys.argv[2]))))
