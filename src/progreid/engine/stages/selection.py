"""Reliable-sample selectors: which pseudo-labelled pool samples train this round.

Interface: ``fn(ctx, features, pseudo) -> Selection``. The algorithms live in ``progreid.select``;
these bind them to the run's options (``select.*``) and records.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from progreid.engine.context import RunContext
from progreid.engine.stages.pseudo_label import PseudoLabels
from progreid.errors import ProgReIDError
from progreid.registry import Registry
from progreid.select import Selection, select_all, select_clustered, select_similarity, select_temporal

Selector = Callable[[RunContext, np.ndarray, PseudoLabels], Selection]
SELECTORS: Registry[Selector] = Registry("select")


def require_frames(ctx: RunContext) -> None:
    if not ctx.target.split.has_frames:
        raise ProgReIDError(
            f"--method {ctx.cfg.method} selects by frame ids, but {ctx.target.split.name!r} has no 'frame' field "
            "(e.g. CUHK03). Fix: use --method sul or --method pul, which select by feature similarity.")


@SELECTORS.register("similarity", reads=("select.lam", "select.reference"))
def by_similarity(ctx: RunContext, features: np.ndarray, pseudo: PseudoLabels) -> Selection:
    """PUL (and SUL): cos(f_i, reference) > ``select.lam``, the reference named by ``select.reference``."""
    return select_similarity(features, pseudo.labels, pseudo.centers, ctx.cfg.select.lam, pseudo.center_metric,
                             ctx.cfg.select.reference)


@SELECTORS.register("temporal", check=require_frames, reads=("select.frame_window",))
def by_frame_proximity(ctx: RunContext, features: np.ndarray, pseudo: PseudoLabels) -> Selection:
    """TCUL (eq. 3): within ``select.frame_window`` frames of the (cluster, camera) group's temporary
    center; ``auto`` calibrates the window per camera on the current features (logged in the row)."""
    window = ctx.frame_windows(features)
    sel = select_temporal(features, pseudo.labels, pseudo.centers, ctx.pool_records, window)
    if ctx.cfg.select.frame_window == "auto":
        sel.info["frame_window"] = {str(k): v for k, v in window.items()}
    return sel


@SELECTORS.register("all")
def everything(ctx: RunContext, features: np.ndarray, pseudo: PseudoLabels) -> Selection:
    """No selection: the PUL paper's ablation."""
    return select_all(features, pseudo.labels, pseudo.centers, pseudo.center_metric)


@SELECTORS.register("clustered")
def clustered(ctx: RunContext, features: np.ndarray, pseudo: PseudoLabels) -> Selection:
    """Cluster contrast: every sample DBSCAN put in a cluster; its outliers (-1) sit the round out."""
    return select_clustered(features, pseudo.labels, pseudo.centers, pseudo.center_metric)
