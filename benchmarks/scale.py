"""Scaling of pseudo-labelling: k-means (K = N/16) and the 30-NN graph on synthetic 512-d features
with identity structure, one fresh process per (size, operation) so its peak memory is its own.

    python benchmarks/bench.py scale --sizes 10000 100000 1000000

Features: N/16 identities in N/256 groups of similar-looking people (a group is a random unit
direction, an identity its group's plus Gaussian noise of per-dimension sigma 0.04, a sample its
identity's plus sigma 0.035, each normalised): a crop's nearest crops are its identity's, then those
of similar people, as with re-ID features.
At 100k the approximations are priced, and the sparse k-reciprocal re-ranking is timed: k-means with IVF assignment against exact Lloyd from the
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


SPOT_CHECK = 2000  # rows whose exact answer checks an approximate run at any size


def spot_check_knn(x: np.ndarray, idx: np.ndarray, seed: int = 0) -> float:
    """Recall of ``idx`` (rows' 30-NN, itself first) against the exact answer on sampled rows."""
    import torch

    rows = np.random.default_rng(seed).choice(len(x), min(SPOT_CHECK, len(x)), replace=False)
    xt = torch.as_tensor(x)
    exact = np.concatenate([(xt[rows[s:s + 200]] @ xt.T).topk(idx.shape[1], dim=1).indices.numpy()
                            for s in range(0, len(rows), 200)])
    return float(np.mean([len(np.intersect1d(idx[r][1:], e[1:])) / (idx.shape[1] - 1) for r, e in zip(rows, exact)]))


def spot_check_kmeans(x: np.ndarray, centers: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Fraction of sampled rows whose label is their exactly nearest final center."""
    import torch

    from progreid.cluster.kmeans import _chunk_rows, _sq_dists_min

    rows = np.random.default_rng(seed).choice(len(x), min(SPOT_CHECK, len(x)), replace=False)
    xs, c = torch.as_tensor(x[rows]), torch.as_tensor(centers)
    nearest = _sq_dists_min(xs, (xs * xs).sum(1), c, _chunk_rows(len(c)))[0].numpy()
    return float(np.mean(nearest == labels[rows]))


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
        if r.assign == "ivf":
            out["seconds"], out["peak_mb"] = round(time.perf_counter() - start, 2), round(peak_mb(), 1)
            out["agreement"] = spot_check_kmeans(x, r.centers, r.labels)
    elif op == "knn":
        idx, _ = knn(x, NEIGHBOURS)
        out.update(method="ivf" if n > KNN_EXACT_LIMIT else "exact")
        if out["method"] == "ivf":
            out["seconds"], out["peak_mb"] = round(time.perf_counter() - start, 2), round(peak_mb(), 1)
            out["recall_sampled"] = spot_check_knn(x, idx)
    elif op == "kmeans_price":  # same random initial centers: exact Lloyd vs IVF assignment
        runs = {}
        for a in ("exact", "ivf"):
            t = time.perf_counter()
            runs[a] = kmeans(x, k, max_iter=KMEANS_ITERS, seed=0, init="random", assign=a)
            out[f"seconds_{a}"] = round(time.perf_counter() - t, 2)
        out.update(k=k, **{f"inertia_{a}": exact_inertia(x, r.centers) for a, r in runs.items()},
                   **{f"iters_{a}": r.n_iter for a, r in runs.items()})
    elif op == "knn_price":
        t = time.perf_counter()
        exact, _ = knn(x, NEIGHBOURS, method="exact")
        out["seconds_exact"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        approx, _ = knn(x, NEIGHBOURS, method="ivf")
        out["seconds_ivf"] = round(time.perf_counter() - t, 2)
        hits = sum(len(np.intersect1d(a[1:], b[1:], assume_unique=True)) for a, b in zip(exact, approx))
        out["recall"] = hits / (len(x) * (NEIGHBOURS - 1))
    elif op == "rerank":  # k-reciprocal re-ranking of N / 50 queries against the rest, no N x N matrix
        from progreid.evaluation.rerank import re_ranked_rows

        n_q = n // 50
        rows = re_ranked_rows(x[:n_q], x[n_q:])
        nearest = np.concatenate([rows(s, min(s + 256, n_q)).argmin(1).numpy() for s in range(0, n_q, 256)])
        out.update(queries=n_q, gallery=n - n_q, dense_gb=round(4 * n * n / 1e9, 1), checked=int(len(nearest)))
    out.setdefault("seconds", round(time.perf_counter() - start, 2))
    out.setdefault("peak_mb", round(peak_mb(), 1))  # ivf rows took theirs before the spot check
    return out


def measure(op: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, op, str(n)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{op} at {n}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exponent(points: list[tuple[int, float]]) -> float:
    """Slope of log(seconds) against log(N) over (N, seconds) points: 1 is linear."""
    if len(points) < 2:
        return float("nan")
    ln_n = np.log([n for n, _ in points])
    ln_t = np.log([max(t, 1e-3) for _, t in points])
    return float(np.polyfit(ln_n, ln_t, 1)[0])


def _how(r: dict) -> str:
    if r["op"] == "kmeans":
        how = f"{r['init']} init, {r['assign']} assignment, {r['iters']} iterations"
        return how + (f"; {100 * r['agreement']:.2f}% of {SPOT_CHECK} sampled rows on their exact nearest center"
                      if "agreement" in r else "")
    return r["method"] + (f"; recall {100 * r['recall_sampled']:.2f}% on {SPOT_CHECK} sampled rows"
                          if "recall_sampled" in r else "")


PRICE_N = 100_000


def report(sizes: list[int], log=print) -> tuple[str, list[dict]]:
    results = [measure(op, n) for op in ("kmeans", "knn") for n in sizes] + \
        [measure(op, PRICE_N) for op in ("kmeans_price", "knn_price", "rerank")]
    for r in results:
        log(json.dumps(r))
    return render(results), results


def render(results: list[dict], price_n: int = PRICE_N) -> str:
    """The BENCHMARKS.md text from measured rows (``python scale.py render LOG`` redraws it from a log)."""
    rows = [r for r in results if r["op"] in ("kmeans", "knn")]
    km, kn, rr = (next(r for r in results if r["op"] == op) for op in ("kmeans_price", "knn_price", "rerank"))
    lines = ["| operation | N | K / k | how | seconds | peak RSS (MB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        kk = r.get("k", NEIGHBOURS)
        lines.append(f"| {'k-means' if r['op'] == 'kmeans' else f'{NEIGHBOURS}-NN graph'} | {r['n']:,} | {kk:,} | "
                     f"{_how(r)} | {r['seconds']:.1f} | {r['peak_mb']:,.0f} |")
    auto = {op: exponent([(r["n"], r["seconds"]) for r in rows if r["op"] == op]) for op in ("kmeans", "knn")}
    last = {op: exponent([(r["n"], r["seconds"]) for r in rows if r["op"] == op][-2:]) for op in ("kmeans", "knn")}
    # the scalable variants alone: their time at the price size, then every larger size where auto chose them
    ivf = {"kmeans": [(price_n, km["seconds_ivf"])] + [(r["n"], r["seconds"]) for r in rows
                                                      if r["op"] == "kmeans" and r["n"] > price_n and r["assign"] == "ivf"],
           "knn": [(price_n, kn["seconds_ivf"])] + [(r["n"], r["seconds"]) for r in rows
                                                   if r["op"] == "knn" and r["n"] > price_n and r["method"] == "ivf"]}
    per_iter = [(price_n, km["seconds_ivf"] / km["iters_ivf"])] + [
        (r["n"], r["seconds"] / r["iters"]) for r in rows if r["op"] == "kmeans" and r["n"] > price_n and r["assign"] == "ivf"]
    ratio = km["inertia_ivf"] / km["inertia_exact"]
    text = "\n".join(lines) + (
        f"\n\nGrowth exponent of time in N (log-log slope; 1 is linear), automatic choices, all sizes / the last two: "
        f"k-means {auto['kmeans']:.2f} / {last['kmeans']:.2f}, 30-NN graph {auto['knn']:.2f} / {last['knn']:.2f} "
        f"(below {price_n:,} the exact variants run, whose time grows as N^2). "
        f"The scalable variants alone, from N = {price_n:,} up: k-means IVF {exponent(ivf['kmeans']):.2f} "
        f"(per iteration {exponent(per_iter):.2f}), IVF 30-NN graph {exponent(ivf['knn']):.2f}.\n\n"
        f"Price of the approximations at N = {price_n:,}: k-means with IVF assignment reaches "
        f"**{ratio:.4f}x** the inertia of exact Lloyd from the same random initial centers "
        f"({km['iters_ivf']} vs {km['iters_exact']} iterations; {km['seconds_ivf']:.0f} s vs {km['seconds_exact']:.0f} s); "
        f"the IVF 30-NN graph recalls **{100 * kn['recall']:.2f}%** of the exact graph's neighbours "
        f"({kn['seconds_ivf']:.0f} s vs {kn['seconds_exact']:.0f} s).\n\n"
        f"k-reciprocal re-ranking (k1 = 20, k2 = 6) of {rr['queries']:,} queries against a {rr['gallery']:,}-image "
        f"gallery, sparse (`re_ranked_rows`): {rr['seconds']:.0f} s, peak RSS {rr['peak_mb']:,.0f} MB; the reference's "
        f"dense (Q+G)^2 matrix alone would be {rr['dense_gb']} GB.")
    return text


if __name__ == "__main__":
    print(json.dumps(run_one(sys.argv[1], int(sys.argv[2]))))
