"""How the data-derived settings behave on real features, against ground truth (diagnostics only):
DBSCAN eps on the k-reciprocal Jaccard distance, the K estimate, the calibrated frame window and
the precision of temporal must-links.

    progreid extract --data ../shared/data/market1501-mini --weights W --out runs/feats_market --parts train
    python benchmarks/derived_settings.py runs/feats_market [runs/feats_cuhk03 ...] [--subset manifest.csv]

``--subset``: keep only the training crops a manifest lists (e.g. the 4-crops-per-person copy written
by derived_datasets.py). ``--k-grid``: the K estimate for other neighbourhood sizes (k1) and DBSCAN
min_samples, to see whether any one setting holds across crops-per-person. ``--k-alternatives``: other
label-free counts (silhouette-best k-means K, FINCH's first-neighbour partitions) and what limits them
all (same-person neighbours among the 30 nearest, cross-camera nearest-neighbour precision). With frame
ids it also prints the must-links, tcc's clustering per link_blend, and the cannot-link table. Prints
markdown tables.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from progreid.cluster.density import auto_eps, dbscan, with_links
from progreid.cluster.jaccard import jaccard_distance
from progreid.data.records import UNLABELED, Record
from progreid.evaluation.clustering import pair_precision, purity
from progreid.temporal import blend_along_links, calibrate_frame_window, must_links, record_arrays


def load(folder: Path, subset: Path | None):
    x = np.load(folder / "train_features.npy")
    rows = list(csv.DictReader((folder / "train_records.csv").open()))
    keep = np.ones(len(rows), bool)
    if subset:
        listed = {r["path"] for r in csv.DictReader(subset.open()) if r.get("split", "train") == "train"}
        keep = np.array([str(Path(r["path"]).resolve()) in listed for r in rows])
    rows = [r for r, k in zip(rows, keep) if k]
    records = [Record(r["path"], UNLABELED, int(r["camid"]), int(r["sequence"] or 0),
                      int(r["frame"]) if r["frame"] else None) for r in rows]
    return x[keep], records, np.array([int(r["pid"]) for r in rows])


def describe(labels: np.ndarray, pids: np.ndarray, cams: np.ndarray) -> str:
    c = labels >= 0
    k = int(labels.max()) + 1 if c.any() else 0
    sizes = np.bincount(labels[c]) if c.any() else np.zeros(1, int)
    per = np.mean([len(set(cams[labels == i])) for i in range(k)]) if k else 0
    return (f"{k} | {100 * c.mean():.0f}% | {100 * pair_precision(labels[c], pids[c]):.0f}% | "
            f"{100 * purity(labels[c], pids[c]):.0f}% | {sizes.max()} | {per:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--subset", type=Path)
    p.add_argument("--k-grid", action="store_true", help="K estimate for k1 in 10 20 30 x min_samples in 2 3 4")
    p.add_argument("--k-alternatives", action="store_true", help="silhouette and FINCH counts, neighbour evidence")
    args = p.parse_args()
    for folder in args.folders:
        x, records, pids = load(folder, args.subset)
        cams = np.array([r.camid for r in records])
        dist = jaccard_distance(x, 30, 6)
        eps, counts = auto_eps(dist, 4)
        print(f"\n### {folder.name}{' (' + args.subset.parent.name + ')' if args.subset else ''}: "
              f"{len(x)} crops, {len(set(pids))} people\n")
        print("| eps | clusters | clustered | pair precision | purity | largest | cameras per cluster |")
        print("|---|---|---|---|---|---|---|")
        for e in sorted({0.3, 0.4, 0.5, 0.6, eps}):
            label = f"**{e} (auto)**" if e == eps else f"{e}"
            print(f"| {label} | {describe(dbscan(dist, e, 4), pids, cams)} |")
        ids = len(set(pids))
        print(f"\nK estimate (cluster.k auto): {counts[eps]} for {ids} people ({100 * (counts[eps] - ids) / ids:+.0f}%); "
              f"N/16 = {round(len(x) / 16)}")
        if args.k_grid:
            print("\n| k1 \\ min_samples | 2 | 3 | 4 |\n|---|---|---|---|")
            for k1 in (10, 20, 30):
                d = jaccard_distance(x, k1, 6)
                cells = [auto_eps(d, ms)[1] for ms in (2, 3, 4)]
                print(f"| {k1} | " + " | ".join(f"{max(c.values())} ({100 * (max(c.values()) - ids) / ids:+.0f}%)"
                                                for c in cells) + " |")
        if args.k_alternatives:
            k_alternatives(x, pids, cams)
        if all(r.frame is not None for r in records):
            window = calibrate_frame_window(x, records)
            i, j = must_links(x, records, window, 10)
            linked = with_links(dist, i, j)
            eps_l, _ = auto_eps(linked, 4)
            print(f"\nframe window (auto) per camera: {window}; must-links: {len(i)}, "
                  f"{100 * (pids[i] == pids[j]).mean():.2f}% the same person")
            print(f"\nwith must-links: auto eps {eps_l}: clusters | clustered | pair precision | purity | largest | "
                  f"cameras per cluster = {describe(dbscan(linked, eps_l, 4), pids, cams)}")
            print(f"\ntcc's clustering at the appearance-only eps {eps} (cc's), must-links, features blended with"
                  f" their linked group:\n\n| link_blend | other-camera nearest neighbour the same person | clusters |"
                  " clustered | pair precision | purity | largest | cameras per cluster |\n|---|---|---|---|---|---|---|---|")
            for blend in (0.0, 0.25, 0.5, 0.75):
                y = blend_along_links(x, i, j, blend)
                blended = dist if blend == 0 else jaccard_distance(y, 30, 6)
                print(f"| {blend} | {100 * cross_camera_precision(y, pids, cams):.0f}% | "
                      f"{describe(dbscan(with_links(blended, i, j), eps, 4), pids, cams)} |")
            cannot_link_table(dbscan(dist, eps, 4), records, pids, window)


def cross_camera_precision(x: np.ndarray, pids: np.ndarray, cams: np.ndarray) -> float:
    """How often a crop's nearest neighbour (cosine) among the other cameras' crops is the same person."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    sims[cams[:, None] == cams[None]] = -np.inf
    return float((pids[sims.argmax(1)] == pids).mean())


def first_neighbour_partitions(x: np.ndarray) -> list[int]:
    """FINCH (Sarfraz et al., CVPR 2019): link each sample to its first neighbour (and samples sharing
    one), take connected components, repeat on the components' mean features. Cluster count per level."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    labels, current, counts = np.arange(len(x)), x, []
    while len(current) > 2:
        sims = current @ current.T
        np.fill_diagonal(sims, -np.inf)
        first = sims.argmax(1)
        n = len(current)
        link = csr_matrix((np.ones(n), (np.arange(n), first)), shape=(n, n))
        k, part = connected_components(link + link.T + link @ link.T, directed=False)
        if k == n:
            break
        labels = part[labels]
        counts.append(int(k))
        current = np.stack([x[labels == c].mean(0) for c in range(k)])
        current /= np.linalg.norm(current, axis=1, keepdims=True)
    return counts


def k_alternatives(x: np.ndarray, pids: np.ndarray, cams: np.ndarray) -> None:
    """Other label-free counts of the people, and the neighbour statistics that bound any of them."""
    from sklearn.metrics import silhouette_score

    from progreid.cluster import kmeans

    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n, ids = len(x), len(set(pids))
    scores = {}
    for per in (2, 3, 4, 6, 8, 12, 16, 24):
        labels = kmeans(x, n // per, 30, seed=0).labels
        scores[n // per] = silhouette_score(x, labels, metric="cosine", sample_size=min(n, 4000), random_state=0)
    best = max(scores, key=scores.get)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :30]
    same_top = (pids[top] == pids[:, None]).sum(1).mean()
    cross = cross_camera_precision(x, pids, cams)
    print(f"\nsilhouette-best k-means K: {best} ({100 * (best - ids) / ids:+.0f}%; K tried: "
          + ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()) + ")")
    print(f"FINCH partitions: {first_neighbour_partitions(x)} for {ids} people")
    print(f"same person among the 30 nearest: {same_top:.1f} of {n / ids - 1:.1f} on average; "
          f"nearest neighbour in another camera the same person: {100 * cross:.0f}%")


def cannot_link_table(labels: np.ndarray, records: list[Record], pids: np.ndarray, window: dict[int, int]) -> None:
    """Would a temporal cannot-link help? Pairs of one cluster from one camera, by how far apart they
    are (in frame windows, or in different sequences): the share that are different people is the
    precision a rule splitting them would have."""
    cams, seqs, frames = record_arrays(records)
    a, b = [], []
    for k in range(labels.max() + 1):
        m = np.flatnonzero(labels == k)
        i, j = np.triu_indices(len(m), 1)
        same_cam = cams[m[i]] == cams[m[j]]
        a.append(m[i][same_cam])
        b.append(m[j][same_cam])
    a, b = np.concatenate(a), np.concatenate(b)
    gap = np.abs(frames[a] - frames[b]) / np.array([window[int(c)] for c in cams[a]])
    different = pids[a] != pids[b]
    same_seq = seqs[a] == seqs[b]
    print("\n| same-camera pairs in one cluster (eps auto) | pairs | different people |\n|---|---|---|")
    for lo, hi in [(0, 1), (1, 2), (2, 5), (5, 10), (10, 20), (20, 50), (50, np.inf)]:
        s = same_seq & (gap >= lo) & (gap < hi)
        print(f"| same sequence, {lo}-{hi} windows apart | {s.sum()} | {100 * different[s].mean():.0f}% |")
    print(f"| different sequences | {(~same_seq).sum()} | {100 * different[~same_seq].mean():.0f}% |")


if __name__ == "__main__":
    main()
