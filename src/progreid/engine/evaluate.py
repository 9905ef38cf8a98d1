"""Evaluate a model on a dataset's query/gallery split: the one place the CLI (direct transfer), the
loop (every round's test) and the ranked-list artifacts get their features and metrics from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from progreid import distributed
from progreid.data.images import load_images
from progreid.data.layouts import require_parts
from progreid.data.records import Record, Split
from progreid.engine.extract import extract_features
from progreid.evaluation.metrics import RankingMetrics, evaluate_distance_rows, evaluate_features, evaluate_ranking
from progreid.evaluation.rerank import DENSE_LIMIT, re_ranked_rows, re_ranking


@dataclass
class EvalOptions:
    metric: str = "cosine"
    rerank: bool = False
    flip: bool = False
    batch_size: int = 0  # 0: by device (see extract_features)
    size: tuple[int, int] = (256, 128)


def records_arrays(records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r.pid for r in records], np.int64), np.array([r.camid for r in records], np.int64)


@dataclass
class Evaluation:
    metrics: RankingMetrics
    query_features: np.ndarray | None    # None on ranks other than 0 under torchrun
    gallery_features: np.ndarray | None


def evaluate_model(model: nn.Module, split: Split, opts: EvalOptions = EvalOptions(),
                   device: torch.device | str = "cpu", progress: bool = True,
                   query_images: np.ndarray | None = None, gallery_images: np.ndarray | None = None) -> Evaluation:
    """Extract query and gallery features with ``model`` (images decoded here unless given) and rank."""
    require_parts(split, "query", "gallery")
    if query_images is None:
        query_images = load_images([r.path for r in split.query], opts.size, progress=progress)
    if gallery_images is None:
        gallery_images = load_images([r.path for r in split.gallery], opts.size, progress=progress)
    qf = extract_features(model, query_images, opts.batch_size, device, opts.flip, progress, "query", gather="main")
    gf = extract_features(model, gallery_images, opts.batch_size, device, opts.flip, progress, "gallery",
                          gather="main")
    # under torchrun rank 0 ranks and shares the metrics; the others hold no features
    metrics = distributed.on_main(lambda: evaluate_arrays(qf, gf, split, opts))
    return Evaluation(metrics, qf, gf)


def evaluate_split(model: nn.Module, split: Split, opts: EvalOptions = EvalOptions(),
                   device: torch.device | str = "cpu", progress: bool = True) -> RankingMetrics:
    """The ranking metrics of ``model`` on ``split`` (its images decoded through the cache)."""
    return evaluate_model(model, split, opts, device, progress).metrics


def evaluate_arrays(qf: np.ndarray, gf: np.ndarray, split: Split, opts: EvalOptions = EvalOptions()) -> RankingMetrics:
    q_pids, q_cams = records_arrays(split.query)
    g_pids, g_cams = records_arrays(split.gallery)
    if opts.rerank and len(qf) + len(gf) > DENSE_LIMIT:  # no (Q+G)^2 matrix
        if opts.metric != "cosine":
            raise ValueError(f"re-ranking {len(qf) + len(gf)} images (over {DENSE_LIMIT}) needs --metric cosine: "
                             "the sparse re-ranking that large galleries need is implemented for cosine only")
        return evaluate_distance_rows(re_ranked_rows(qf, gf), len(qf), len(gf), q_pids, g_pids, q_cams, g_cams)
    if opts.rerank:
        return evaluate_ranking(re_ranking(qf, gf, metric=opts.metric), q_pids, g_pids, q_cams, g_cams)
    return evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, metric=opts.metric)
