"""Evaluate a model on a dataset's query/gallery split: the direct-transfer baseline and per-round test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from progreid.data.images import load_images
from progreid.data.layouts import require_parts
from progreid.data.records import Record, Split
from progreid.engine.extract import extract_features
from progreid.evaluation.metrics import RankingMetrics, evaluate_features, evaluate_ranking
from progreid.evaluation.rerank import re_ranking


@dataclass
class EvalOptions:
    metric: str = "cosine"
    rerank: bool = False
    flip: bool = False
    batch_size: int = 0  # 0: by device (see extract_features)
    size: tuple[int, int] = (256, 128)


def records_arrays(records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r.pid for r in records], np.int64), np.array([r.camid for r in records], np.int64)


def evaluate_split(model: nn.Module, split: Split, opts: EvalOptions = EvalOptions(),
                   device: torch.device | str = "cpu", progress: bool = True,
                   query_images: np.ndarray | None = None, gallery_images: np.ndarray | None = None) -> RankingMetrics:
    """Extract query and gallery features with ``model`` and compute the ranking metrics."""
    require_parts(split, "query", "gallery")
    if query_images is None:
        query_images = load_images([r.path for r in split.query], opts.size, progress=progress)
    if gallery_images is None:
        gallery_images = load_images([r.path for r in split.gallery], opts.size, progress=progress)
    qf = extract_features(model, query_images, opts.batch_size, device, opts.flip, progress, "query")
    gf = extract_features(model, gallery_images, opts.batch_size, device, opts.flip, progress, "gallery")
    return evaluate_arrays(qf, gf, split, opts)


def evaluate_arrays(qf: np.ndarray, gf: np.ndarray, split: Split, opts: EvalOptions = EvalOptions()) -> RankingMetrics:
    q_pids, q_cams = records_arrays(split.query)
    g_pids, g_cams = records_arrays(split.gallery)
    if opts.rerank:
        return evaluate_ranking(re_ranking(qf, gf, metric=opts.metric), q_pids, g_pids, q_cams, g_cams)
    return evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, metric=opts.metric)
