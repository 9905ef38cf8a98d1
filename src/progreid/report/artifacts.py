"""Small JSON artifacts the loop leaves for the report: ranked lists and cluster samples.

Written at every evaluation / round (the last one wins), so a report can be built at any time
without re-extracting features.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from progreid.data.records import Record
from progreid.evaluation.distance import pairwise_distance
from progreid.models.checkpoint import atomic_write

RANKED_FILE = "ranked.json"
CLUSTERS_FILE = "clusters.json"


def sample_queries(query: list[Record], n: int, seed: int = 0) -> np.ndarray:
    """``n`` queries of distinct identities, the same ones every round."""
    rng = np.random.default_rng(seed)
    first_of_id: dict[int, int] = {}
    for i, r in enumerate(query):
        first_of_id.setdefault(r.pid, i)
    ids = np.array(sorted(first_of_id.values()))
    return np.sort(rng.choice(ids, size=min(n, len(ids)), replace=False))


def save_ranked_lists(path: str | Path, round_: int, qf: np.ndarray, gf: np.ndarray, query: list[Record],
                      gallery: list[Record], n_queries: int = 8, top: int = 10, seed: int = 0) -> None:
    picks = sample_queries(query, n_queries, seed)
    dist = pairwise_distance(qf[picks], gf).numpy()
    g_pid = np.array([g.pid for g in gallery])
    g_cam = np.array([g.camid for g in gallery])
    out = []
    for row, qi in zip(dist, picks):
        q = query[qi]
        order = np.argsort(row, kind="stable")[:top]
        kinds = np.where(g_pid[order] != q.pid, "wrong", np.where(g_cam[order] == q.camid, "junk", "match"))
        out.append({"path": q.path, "pid": q.pid, "camid": q.camid,
                    "n_matches": int(((g_pid == q.pid) & (g_cam != q.camid)).sum()),
                    "gallery": [{"path": gallery[j].path, "pid": int(g_pid[j]), "camid": int(g_cam[j]),
                                 "dist": round(float(row[j]), 4), "kind": str(k)} for j, k in zip(order, kinds)]})
    payload = {"round": round_, "queries": out}
    atomic_write(path, lambda t: Path(t).write_text(json.dumps(payload)))


def save_cluster_samples(path: str | Path, round_: int, records: list[Record], labels: np.ndarray,
                         reliable: np.ndarray, n_clusters: int = 6, per_cluster: int = 12) -> None:
    """The largest clusters with a mix of reliable and rejected members (no ground truth involved)."""
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    mixed = [k for k in np.argsort(-sizes, kind="stable")
             if reliable[labels == k].any() and not reliable[labels == k].all()]
    chosen = (mixed or list(np.argsort(-sizes, kind="stable")))[:n_clusters]
    clusters = []
    for k in chosen:
        members = np.flatnonzero(labels == k)
        kept, dropped = members[reliable[members]], members[~reliable[members]]
        n_dropped = min(len(dropped), per_cluster // 3)  # show what was rejected, not only what was kept
        members = np.concatenate([kept[:per_cluster - n_dropped], dropped[:n_dropped]])
        clusters.append({"cluster": int(k), "size": int(sizes[k]), "reliable": int(reliable[labels == k].sum()),
                         "members": [{"path": records[i].path, "camid": records[i].camid,
                                      "frame": records[i].frame, "reliable": bool(reliable[i])} for i in members]})
    payload = {"round": round_, "clusters": clusters}
    atomic_write(path, lambda t: Path(t).write_text(json.dumps(payload)))
