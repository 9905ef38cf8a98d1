"""Start a verify folder: draw the queries, extract each model's features, rank the candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from progreid.data.images import load_images
from progreid.data.layouts import load_dataset
from progreid.engine.extract import extract_features
from progreid.errors import ProgReIDError
from progreid.select import l2n
from progreid.verify.session import (EXCLUSION_NOTE, Query, Session, candidate_mask, choose_exclusion,
                                     merge_shown, query_and_pool, rank_candidates, stratified_sample)


def build_session(data: str | Path, weights: list[str], n_queries: int = 50, top_k: int = 10,
                  arch: str | None = None, round_: int | None = None, seed: int = 0, layout: str = "auto",
                  simulate: bool = False, device: str = "cpu", progress: bool = True,
                  log=print, size: tuple[int, int] | None = None, train_crops: bool = False) -> Session:
    """``size``: the input (height, width) for bare weights (a run folder's own size otherwise)."""
    from progreid.export.source import load_export_source

    if not weights:
        raise ProgReIDError("verify needs --weights (a run folder or a weights file); repeat it to compare models.")
    if n_queries < 1 or top_k < 1:
        raise ProgReIDError(f"--queries {n_queries} / --top {top_k}: both must be at least 1.")
    split = load_dataset(data, layout)
    query_side, pool, mode = query_and_pool(split, simulate, train_crops)
    same = query_side is pool
    exclusion = "protocol" if mode == "benchmark" else choose_exclusion(pool)
    rng = np.random.default_rng(seed)
    picked = stratified_sample(np.array([r.camid for r in query_side]), n_queries, rng)
    masks = [candidate_mask(query_side[i], pool, mode, exclusion) for i in picked]
    if mode == "benchmark":  # as evaluation does: a query whose person has no valid gallery crop is left out
        pids = np.array([r.pid for r in pool])
        keep = [j for j, m in enumerate(masks) if (pids[m] == query_side[picked[j]].pid).any()]
    else:
        keep = [j for j, m in enumerate(masks) if m.any()]
    picked, masks = picked[keep], [masks[j] for j in keep]
    if not len(picked):
        raise ProgReIDError(f"{data}: no query has a candidate to compare with. Fix: more crops, or several cameras.")
    log(f"verify: {len(picked)} queries from {len(query_side)} crops; "
        + ("Market-1501 protocol on the gallery split" if mode == "benchmark" else EXCLUSION_NOTE[exclusion]))
    features, decoded = [], {}  # the crops decoded once per input size, whatever the number of models
    for w in weights:
        src = load_export_source(w, arch, round_, size)
        if src.size not in decoded:
            decoded[src.size] = (load_images([r.path for r in pool], src.size, progress=progress), None if same else
                                 load_images([query_side[i].path for i in picked], src.size, progress=progress))
        pool_images, q_images = decoded[src.size]
        pf = l2n(extract_features(src.model, pool_images, 0, device, progress=progress, desc="candidates"))
        qf = pf[picked] if same else l2n(extract_features(src.model, q_images, 0, device, progress=progress,
                                                          desc="queries"))
        features.append((qf, pf))  # query rows in the order drawn
    ranked = rank_candidates(features, np.arange(len(picked)), masks, top_k)
    offset = 0 if same else len(query_side)
    images = [r.path for r in pool] if same else [*(r.path for r in query_side), *(r.path for r in pool)]
    queries = []
    for j, q in enumerate(picked):
        lists = [[c + offset for c in lst] for lst in ranked[j]]
        queries.append(Query(query=int(q), shown=merge_shown(lists, rng), ranked=lists))
    return Session(data=str(data), mode=mode, models=[str(w) for w in weights], top_k=top_k, seed=seed,
                   exclusion=exclusion, images=images, queries=queries)
