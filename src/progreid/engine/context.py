"""What a run knows before its first round and never changes: config, device, data, the unlabeled pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from progreid.cluster.constraints import PairConstraints
from progreid.config import Config
from progreid.data.records import Record
from progreid import distributed
from progreid.engine.device import resolve_device
from progreid.engine.extract import extract_features
from progreid.engine.target import TargetData, cannot_link_pairs, labeled_subset, load_target
from progreid.models import load_model
from progreid.select import l2n
from progreid.temporal import calibrate_frame_window, parse_frame_window


def build_model(cfg: Config) -> nn.Module:
    """The original model: ``cfg.model.arch`` with ``cfg.model.weights``. Whatever the weights do not
    cover (everything, without weights) is initialised from ``cfg.seed``, not the process's RNG state."""
    torch.manual_seed(cfg.seed)
    return load_model(cfg.model.arch, cfg.model.weights or None, last_stride=cfg.model.last_stride,
                      embedding_dim=cfg.model.embedding_dim, bn_neck=cfg.model.bn_neck,
                      pooling=cfg.model.pooling, gem_p=cfg.model.gem_p)


@dataclass
class RunContext:
    cfg: Config
    device: torch.device
    target: TargetData
    pool: np.ndarray           # indices into target.train that are pseudo-labelled (all but the labeled ones)
    labeled_idx: np.ndarray    # semi-supervised: indices of labeled target images ...
    labeled_cls: np.ndarray    # ... and their classes 0..L-1
    progress: bool = True
    constraints: PairConstraints | None = None  # semi.labels_as=links: the groups and cannot-links, in pool positions

    @property
    def pool_records(self) -> list[Record]:
        return [self.target.train[i] for i in self.pool]

    @property
    def pool_cameras(self) -> np.ndarray:
        return np.array([self.target.train[i].camid for i in self.pool])

    def extract_train(self, model: nn.Module, desc: str = "train") -> np.ndarray:
        """Features of every training image (the labeled ones too). Under torchrun they are gathered on
        rank 0 alone (10M crops are 20 GB of features: one copy, not one per rank); the other ranks get
        an empty placeholder, and a stage that needs rows of them there asks ``rows_everywhere``."""
        feats = extract_features(model, self.target.train_images, device=self.device, progress=self.progress,
                                 desc=desc, gather="main")
        return feats if feats is not None else np.zeros((0, model.feature_dim), np.float32)

    @staticmethod
    def rows_everywhere(features: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """``features[indices]`` on every rank, from rank 0's features."""
        return distributed.broadcast(features[indices] if distributed.is_main() else None)

    def pool_features(self, features: np.ndarray) -> np.ndarray:
        """The rows the pseudo-labelling sees, L2-normalised if ``cluster.normalize``."""
        x = features[self.pool]
        return l2n(x) if self.cfg.cluster.normalize else x

    def frame_windows(self, features: np.ndarray) -> dict[int, int]:
        """Per camera: ``select.frame_window`` frames, or calibrated on the pool's crops when auto."""
        fw = self.cfg.select.frame_window
        if fw == "auto":
            return calibrate_frame_window(features, self.pool_records)
        return {int(cam): parse_frame_window(fw) for cam in np.unique(self.pool_cameras)}

    def evaluates(self, round_: int) -> bool:
        """Whether round ``round_`` ends with a test on the target's query/gallery split."""
        every, last = self.cfg.loop.eval_every, self.cfg.loop.max_rounds
        return self.target.has_test and every > 0 and (round_ % every == 0 or round_ == last)


DENSITY_LABELLERS = ("dbscan", "temporal_dbscan")  # the pseudo-labellers that take must/cannot-links


def labels_as(cfg: Config) -> str:
    """``semi.labels_as`` resolved: ``auto`` is links for a density clustering (cc, tcc: on cuhk03-mini
    50 answers as links gave cc +2.1 mAP, mean of 3 seeds, where as classes they gave -0.1; BENCHMARKS.md),
    classes for k-means (PUL's own semi-supervised setting)."""
    if cfg.semi.labels_as != "auto":
        return cfg.semi.labels_as
    return "links" if cfg.stages.pseudo_label in DENSITY_LABELLERS else "classes"


def build_context(cfg: Config, progress: bool = True, device: str | None = None) -> RunContext:
    """``device`` overrides ``cfg.device`` (a ``torchrun`` rank's own GPU) without changing the config."""
    device = resolve_device(device or cfg.device)  # a wrong --device fails before any image is read
    target = load_target(cfg, progress)
    labeled_idx, labeled_cls = labeled_subset(cfg, target)
    if labels_as(cfg) == "links":  # the labeled crops stay in the pool, tied by must-links
        pool = np.setdiff1d(np.arange(len(target.train)), target.bad_train)
        constraints = pair_constraints(pool, labeled_idx, labeled_cls, cannot_link_pairs(cfg, target))
        empty = np.zeros(0, np.int64)
        return RunContext(cfg, device, target, pool, empty, empty, progress, constraints)
    pool = np.setdiff1d(np.arange(len(target.train)), np.union1d(labeled_idx, target.bad_train))
    return RunContext(cfg, device, target, pool, labeled_idx, labeled_cls, progress)


def pair_constraints(pool: np.ndarray, labeled_idx: np.ndarray, labeled_cls: np.ndarray,
                     cannot: np.ndarray) -> PairConstraints:
    """Train indices -> pool positions (``pool`` is sorted); a pair touching an unreadable crop is dropped."""
    groups = np.full(len(pool), -1, np.int64)
    pos, inside = _pool_positions(pool, labeled_idx)
    groups[pos[inside]] = labeled_cls[inside]
    (a, in_a), (b, in_b) = _pool_positions(pool, cannot[:, 0]), _pool_positions(pool, cannot[:, 1])
    ok = in_a & in_b & (a != b)
    return PairConstraints(groups, np.stack([a[ok], b[ok]], 1).astype(np.int64).reshape(-1, 2))


def _pool_positions(pool: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions of ``idx`` in the sorted ``pool``, whether each is there)."""
    pos = np.minimum(np.searchsorted(pool, idx), max(len(pool) - 1, 0))
    return pos, (pool[pos] == idx) if len(pool) else np.zeros(len(idx), bool)
