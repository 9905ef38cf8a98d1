"""How each round of a run clusters, and how other clustering rules would have clustered the same
features (ground truth only measures; no rule reads it).

    python benchmarks/oversplit.py runs/NAME [--rounds 1 2 3] [--eps 0.3 0.49] [--camera-jaccard] [--temporal]

For every round r of a finished run: the training crops' features of the model that round r clustered
(the original weights for round 1, round r-1's checkpoint after), the k-reciprocal Jaccard distance, and
per rule: clusters (K) against the people, the share of crops clustered, pair precision and recall,
clusters per person, cameras per cluster, and the label-free over-segmentation signals of
``progreid.evaluation.oversegmentation``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from progreid.cluster.density import auto_eps, dbscan
from progreid.cluster.jaccard import jaccard_distance
from progreid.evaluation.clustering import pair_precision, pair_recall
from progreid.evaluation.oversegmentation import camera_split_pairs, merge_pairs


def round_features(run: Path, r: int):
    from progreid.config import config_from_dict
    from progreid.engine.context import build_context, build_model
    from progreid.engine.rundir import RunDir
    from progreid.models.checkpoint import load_weights
    import yaml

    rd = RunDir(run)
    cfg = config_from_dict(yaml.safe_load(rd.config_file.read_text()))
    ctx = build_context(cfg, progress=False)
    model = build_model(cfg)
    if r > 1:
        load_weights(model, rd.checkpoint(r - 1), cfg.model.arch)
    x = ctx.pool_features(ctx.extract_train(model))
    return ctx, x


def temporal_rules(ctx, x: np.ndarray, dist, eps: float):
    """(name, labels) of tcc's rule at its quick preset's settings, and of cc's clustering merged along
    the same must-links after DBSCAN (a must-link as a constraint on clusters, not a distance)."""
    from progreid.cluster.density import with_links
    from progreid.config import load_config
    from progreid.engine.stages.pseudo_label import merge_linked_clusters
    from progreid.temporal import blend_along_links, must_links

    c, tcc = ctx.cfg.cluster, load_config("tcc", "quick").cluster
    i, j = must_links(x, ctx.pool_records, ctx.frame_windows(x), tcc.link_k)
    blended = jaccard_distance(blend_along_links(x, i, j, tcc.link_blend), c.k1, c.k2)
    yield f"tcc: links at ~0 + blend {tcc.link_blend}", dbscan(with_links(blended, i, j), eps, c.min_samples)
    yield "tcc: links at ~0, no blend", dbscan(with_links(dist, i, j), eps, c.min_samples)
    yield "cc + merge clusters joined by must-links", merge_linked_clusters(dbscan(dist, eps, c.min_samples), i, j)[0]


def describe(labels: np.ndarray, pids: np.ndarray, cams: np.ndarray) -> dict:
    c = labels >= 0
    k = int(labels.max()) + 1 if c.any() else 0
    lab, pid = labels[c], pids[c]
    per_person = [len(np.unique(lab[pid == p])) for p in np.unique(pid)]
    pairs = np.unique(np.stack([lab, cams[c]], 1), axis=0)
    return {"K": k, "people": len(np.unique(pids)), "clustered": round(float(c.mean()), 3),
            "precision": round(pair_precision(lab, pid), 3), "recall": round(pair_recall(lab, pid), 3),
            "clusters_per_person": round(float(np.mean(per_person)), 2),
            "cameras_per_cluster": round(float(np.bincount(pairs[:, 0]).mean()), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--rounds", type=int, nargs="+")
    p.add_argument("--eps", type=float, nargs="*", default=[], help="fixed radii to compare (on CA-Jaccard too, with --camera-jaccard)")
    p.add_argument("--camera-jaccard", action="store_true", help="also DBSCAN on CA-Jaccard's camera-aware "
                   "distance (cluster.distance=camera_jaccard) at its own most-clusters radius")
    p.add_argument("--temporal", action="store_true", help="also tcc's rule (must-links at distance ~0, blended "
                   "features, eps on appearance) and cc's clusters merged along the same must-links afterwards")
    args = p.parse_args()
    rows = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines()]
    rounds = args.rounds or [r["round"] for r in rows if r["round"] >= 1]
    first_eps = None
    for r in rounds:
        ctx, x = round_features(args.run, r)
        pids = ctx.target.truth[ctx.pool]
        cams = ctx.pool_cameras
        c = ctx.cfg.cluster
        dist = jaccard_distance(x, c.k1, c.k2)
        eps, _ = auto_eps(dist, c.min_samples)
        first_eps = eps if first_eps is None else first_eps
        for name, e in [("most clusters", eps), ("round-1 radius", first_eps), *((f"eps {e}", e) for e in args.eps)]:
            labels = dbscan(dist, float(e), c.min_samples)
            pairs, threshold = camera_split_pairs(x, labels, cams)
            out = {"round": r, "rule": name, "eps": round(float(e), 3), **describe(labels, pids, cams),
                   "split_pairs": len(pairs), "split_threshold": threshold}
            print(json.dumps(out), flush=True)
            merged = merge_pairs(labels, pairs)
            print(json.dumps({"round": r, "rule": name + " + merge split pairs", "eps": round(float(e), 3),
                              **describe(merged, pids, cams)}), flush=True)
        if args.camera_jaccard:
            from types import SimpleNamespace

            from progreid.cluster.camera_jaccard import camera_jaccard_distance
            from progreid.engine.stages.pseudo_label import intra_camera_neighbours

            k = intra_camera_neighbours(ctx, SimpleNamespace(arrays={}), x)  # cluster.k1_intra auto on these features
            visits = np.unique(np.stack([pids, cams], 1), axis=0, return_counts=True)[1]
            ca = camera_jaccard_distance(x, cams, k1_intra=k)
            ca_eps, _ = auto_eps(ca, c.min_samples)
            print(json.dumps({"round": r, "rule": "camera_jaccard, most clusters", "eps": round(float(ca_eps), 3),
                              "k1_intra_auto": k, "true_crops_per_person_and_camera": float(np.median(visits)),
                              **describe(dbscan(ca, ca_eps, c.min_samples), pids, cams)}), flush=True)
            for e in args.eps:  # the same fixed radii on CA-Jaccard
                print(json.dumps({"round": r, "rule": f"camera_jaccard, eps {e}", "eps": round(float(e), 3),
                                  **describe(dbscan(ca, float(e), c.min_samples), pids, cams)}), flush=True)
        if args.temporal:
            for name, labels in temporal_rules(ctx, x, dist, eps):
                print(json.dumps({"round": r, "rule": name, "eps": round(float(eps), 3),
                                  **describe(labels, pids, cams)}), flush=True)


if __name__ == "__main__":
    main()
