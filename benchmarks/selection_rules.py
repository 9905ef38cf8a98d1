"""What each similarity-selection rule keeps on real features, against ground truth (diagnostics only).

PUL's and SUL's rules differ only in what a sample is compared with (``select.reference``): its
cluster's center sample (PUL, the paper), any cluster's center sample (PUL, the released code), or
the cluster center itself (SUL, the TCUL paper). This prints, per rule and lambda, the fraction
kept, the reliable set's pair precision and how many cameras each reliable pseudo-identity spans.

    progreid extract --data ../shared/data/market1501-mini --weights W --out runs/feats_market --parts train
    python benchmarks/selection_rules.py runs/feats_market --lams 0.7 0.85

k-means runs as PUL runs it: K = N/16 (``cluster.k``), raw features, Euclidean, seed 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.derived_settings import load
from progreid.cluster.kmeans import kmeans
from progreid.engine.stages.pseudo_label import num_clusters
from progreid.evaluation.clustering import cameras_per_cluster, pair_precision
from progreid.select import REFERENCES, select_similarity


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--lams", nargs="+", type=float, default=[0.7, 0.85])
    p.add_argument("--k", default="0", help="number of clusters (cluster.k): a number, 0 = N/16")
    args = p.parse_args()
    for folder in args.folders:
        x, records, pids = load(folder, None)
        cams = np.array([r.camid for r in records])
        k = num_clusters(args.k, len(x))
        km = kmeans(x, k, seed=0)
        print(f"\n### {folder.name}: {len(x)} crops, {len(set(pids))} people, K = {k}\n")
        print("| reference | lambda | kept | reliable pair precision | cameras per reliable pseudo-identity |")
        print("|---|---|---|---|---|")
        for reference in REFERENCES:
            for lam in args.lams:
                sel = select_similarity(x, km.labels, km.centers, lam, "euclidean", reference)
                r = sel.reliable
                print(f"| {reference} | {lam} | {100 * r.mean():.0f}% | "
                      f"{100 * pair_precision(km.labels[r], pids[r]):.0f}% | "
                      f"{cameras_per_cluster(km.labels, cams, r):.2f} |")


if __name__ == "__main__":
    main()
