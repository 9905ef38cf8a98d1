"""The k-reciprocal encoding (cc/tcc's clustering distance, and re-ranking) at scale: the per-crop loop
it was (``progreid.cluster.jaccard_reference``) against the array form it is
(``progreid.cluster.jaccard.expanded_neighbourhoods``), on the same 30-NN lists of synthetic 512-d
features with identity structure (``scale.features``), in one process, one size at a time.

    python benchmarks/bench.py kreciprocal --sizes 100000 1000000

Per size: seconds and milliseconds per crop for each form, whether their V matrices are equal
(the same members, values within 1e-5), and the Jaccard overlaps (``min_overlap_distance``) after
them, which were already array operations. The 10M projection multiplies the per-crop times.
"""

from __future__ import annotations

import time

import numpy as np

K1, K2 = 30, 6


def measure(n: int, reference: bool = True) -> dict:
    from benchmarks.scale import features
    from progreid.cluster.jaccard import expanded_neighbourhoods, knn, min_overlap_distance, row_dots
    from progreid.cluster.jaccard_reference import expanded_neighbourhoods_per_crop

    x = features(n)
    t = time.perf_counter()
    rank, _ = knn(x, K1)
    t_knn = time.perf_counter() - t
    distance = lambda i, j: 2 - 2 * row_dots(x, i, j)  # noqa: E731 - |x_i - x_j|^2, as jaccard_distance
    t = time.perf_counter()
    fast = expanded_neighbourhoods(rank, K1, K2, distance)
    t_fast = time.perf_counter() - t
    row = {"n": n, "knn_s": round(t_knn, 1), "array_s": round(t_fast, 1), "array_ms_per_crop": 1000 * t_fast / n}
    if reference:
        t = time.perf_counter()
        slow = expanded_neighbourhoods_per_crop(rank, K1, K2, distance)
        t_slow = time.perf_counter() - t
        same_members = fast.nnz == slow.nnz and bool((fast != 0).multiply(slow != 0).nnz == fast.nnz)
        diff = abs(fast - slow).max() if same_members else float("nan")
        row.update(loop_s=round(t_slow, 1), loop_ms_per_crop=1000 * t_slow / n, equal=bool(same_members and diff <= 1e-5),
                   max_abs_difference=float(diff))
    t = time.perf_counter()
    min_overlap_distance(fast)
    row["overlaps_ms_per_crop"] = 1000 * (time.perf_counter() - t) / n
    return row


def render(rows: list[dict], machine: str) -> str:
    lines = ["| N | 30-NN graph (s) | per-crop loop (s, ms/crop) | array form (s, ms/crop) | speed-up | equal | "
             "overlaps (ms/crop) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        loop = f"{r['loop_s']} ({r['loop_ms_per_crop']:.3f})" if "loop_s" in r else "not run"
        speed = f"**{r['loop_s'] / max(r['array_s'], 1e-9):.1f}x**" if "loop_s" in r else ""
        equal = ("yes" if r["equal"] else f"NO ({r['max_abs_difference']:.1e})") if "equal" in r else ""
        lines.append(f"| {r['n']:,} | {r['knn_s']} | {loop} | {r['array_s']} ({r['array_ms_per_crop']:.3f}) | {speed} | "
                     f"{equal} | {r['overlaps_ms_per_crop']:.3f} |")
    last = rows[-1]
    proj = (f"At 10M crops, by the per-crop times at {last['n']:,}: the encoding "
            + (f"{last['loop_ms_per_crop'] * 1e7 / 6e4:.0f} minutes as a loop, " if "loop_s" in last else "")
            + f"{last['array_ms_per_crop'] * 1e7 / 6e4:.0f} minutes as arrays, and the overlaps "
              f"{last['overlaps_ms_per_crop'] * 1e7 / 6e4:.0f} minutes, on rank 0 of this CPU (one process; "
              "the products are scipy's, single-threaded).")
    return f"""## 10. k-reciprocal encoding at scale (cc, tcc, re-ranking)
Machine: {machine}. Command: `python benchmarks/bench.py kreciprocal --sizes {' '.join(str(r['n']) for r in rows)}`.
k1 = {K1}, k2 = {K2}, 512-d synthetic features (section 9's). Both forms read the same 30-NN lists; "equal": the
same members in every row and values within 1e-5. The loop is `progreid.cluster.jaccard_reference` (the code
before; the test oracle now), the array form `progreid.cluster.jaccard.expanded_neighbourhoods` (sparse products
for the set overlaps, no loop per crop).

{chr(10).join(lines)}

{proj}
"""
