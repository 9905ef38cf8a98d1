"""Fine-tuners: train ``state.model`` on the round's selected samples and their pseudo-classes.

Interface: ``fn(ctx, state, indices, classes, seed) -> FitStats``; ``indices`` index the target's
training images, ``classes`` are 0..C-1. The loss is ``train.loss`` (softmax with a fresh
classifier, batch-hard triplet, or both); what differs between methods is where training starts.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np

from progreid.engine.context import RunContext
from progreid.engine.fit import FitStats, fit
from progreid.engine.state import RunState
from progreid.errors import ProgReIDError
from progreid.label_ensemble import SoftLabels
from progreid import distributed
from progreid.memory import CameraAwareMemory, ClusterMemory, camera_proxies, centroids
from progreid.registry import Registry

FineTuner = Callable[[RunContext, RunState, np.ndarray, np.ndarray, int], FitStats]
FINE_TUNERS: Registry[FineTuner] = Registry("fine_tune")


def _warmup_features(ctx: RunContext, state: RunState, features: np.ndarray | None,
                     indices: np.ndarray) -> np.ndarray | None:
    """Features of the starting model for the classifier warm-up, only when one is configured."""
    if ctx.cfg.train.classifier_warmup <= 0 or "softmax" not in ctx.cfg.train.loss or features is None:
        return None
    return ctx.rows_everywhere(features, indices)


@FINE_TUNERS.register("restart")
def restart_from_original(ctx: RunContext, state: RunState, indices: np.ndarray, classes: np.ndarray,
                          seed: int) -> FitStats:
    """PUL: every round fine-tunes a fresh copy of the *original* model (a fresh classifier too), so
    only better pseudo-labels carry over between rounds, never the previous round's drift."""
    if state.original_features is None and ctx.cfg.train.classifier_warmup > 0:
        untrained = state.last_round == 0 and state.features is not None  # round 1: the model is the original
        state.original_features = state.features if untrained else ctx.extract_train(state.original,
                                                                                      "train (original)")
    state.model = copy.deepcopy(state.original)
    return fit(state.model, ctx.target.train_images, indices, classes, ctx.cfg.train, ctx.device, seed, ctx.progress,
               desc=f"round {state.last_round + 1}",
               features=_warmup_features(ctx, state, state.original_features, indices))


@FINE_TUNERS.register("continue")
def continue_training(ctx: RunContext, state: RunState, indices: np.ndarray, classes: np.ndarray,
                      seed: int) -> FitStats:
    """TCUL/SUL: training continues from the previous round's model."""
    return fit(state.model, ctx.target.train_images, indices, classes, ctx.cfg.train, ctx.device, seed, ctx.progress,
               desc=f"round {state.last_round + 1}", features=_warmup_features(ctx, state, state.features, indices))


def _needs_contrast_loss(ctx: RunContext) -> None:
    if ctx.cfg.train.loss != "contrast":
        raise ProgReIDError(f"stages.fine_tune cluster_memory trains with train.loss contrast, not "
                            f"{ctx.cfg.train.loss!r}. Fix: --set train.loss=contrast.")


@FINE_TUNERS.register("cluster_memory", check=_needs_contrast_loss,
                      reads=("train.temperature", "train.memory_momentum", "train.memory", "train.epoch_length", "train.support",
                             "train.support_lambda", "train.lp_weight", "train.lp_temperature", "train.label_ensemble",
                             "train.ensemble_alpha", "train.ensemble_temperature"))
def contrast_with_memory(ctx: RunContext, state: RunState, indices: np.ndarray, classes: np.ndarray,
                         seed: int) -> FitStats:
    """Cluster contrast: a memory of the clusters' normalised centroids (features of the model that
    clustered), InfoNCE against it with momentum updates; training continues from the previous
    round and the learning-rate schedule runs across rounds (a round is one clustering).

    One difference from the reference (alibaba/cluster-contrast-reid keeps one Adam optimizer for
    all epochs): Adam's moment estimates start afresh every round, as for every progreid method,
    so that a round's inputs are exactly what the run folder saves and ``--resume`` is exact."""
    t = ctx.cfg.train
    targets = None
    if t.memory == "camera":
        cameras = np.array([ctx.target.train[i].camid for i in indices])
        proxies = distributed.on_main(lambda: camera_proxies(state.features[indices], classes, cameras))
        memory = CameraAwareMemory(proxies, t.temperature, t.memory_momentum, device=ctx.device)
        targets = proxies.sample_proxy
    else:  # the memory's entries from rank 0's features: the other ranks hold none
        memory = ClusterMemory(distributed.on_main(lambda: centroids(state.features[indices], classes)),
                               t.temperature, t.memory_momentum, ctx.device)
    soft = ensembled_labels(ctx, state, indices, classes) if t.label_ensemble else None
    return fit(state.model, ctx.target.train_images, indices, classes, t, ctx.device, seed, ctx.progress,
               desc=f"round {state.last_round + 1}", memory=memory, epoch_offset=state.last_round * t.epochs,
               memory_targets=targets, total_epochs=ctx.cfg.loop.max_rounds * t.epochs, soft_labels=soft,
               epoch_batches=epoch_batches(ctx))


def epoch_batches(ctx: RunContext) -> int:
    """P x K batches per epoch: 0 (every cluster once, ``train.epoch_length: clusters``), or ``crops``: the
    training pool's crops over the batch size, whatever the clustering found. With every cluster once a round
    trains in proportion to K, and K follows the clustering: on cuhk03-mini cc's 252 clusters gave 60% of
    the steps that the oracle's 422 true identities give in the same round (BENCHMARKS.md, issue-28 section)."""
    t = ctx.cfg.train
    return math.ceil(len(ctx.pool) / (t.p * t.k)) if t.epoch_length == "crops" else 0


def ensembled_labels(ctx: RunContext, state: RunState, indices: np.ndarray, classes: np.ndarray) -> SoftLabels | None:
    """RLCC's soft labels of this round's training crops from the last round's clusters (none in round 1),
    and this round's clusters and centres kept in the run state for the next (so resume is exact)."""
    n = len(ctx.target.train)
    previous = state.arrays.get("ensemble_labels")
    current = np.full(n, -1, np.int64)
    current[indices] = classes
    soft = None
    features = distributed.on_main(lambda: state.features[indices])  # rank 0 holds the features
    if previous is not None:
        t = ctx.cfg.train
        soft = SoftLabels(features, previous[indices], state.arrays["ensemble_centers"], classes, t.ensemble_alpha,
                          t.ensemble_temperature, ctx.device)
    state.arrays["ensemble_labels"] = current
    state.arrays["ensemble_centers"] = centroids(features, classes)
    return soft
