"""The progressive loop shared by PUL, SUL and TCUL:

    extract -> label (k-means | nearest moving center) -> select -> fine-tune -> (update centers)
    -> evaluate -> stop?

Each stage is a plain function chosen by the config; the loop owns the order, the timing, the
run folder and resumption. Round 0 is the direct-transfer evaluation of the original model.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file

from progreid.cluster import assign, kmeans
from progreid.cluster.centers import center_shift, update_centers
from progreid.config import Config
from progreid.engine.device import resolve_device
from progreid.engine.evaluate import EvalOptions, evaluate_arrays
from progreid.engine.extract import extract_features
from progreid.engine.fit import fit
from progreid.engine.rundir import RunDir
from progreid.engine.target import labeled_subset, load_target
from progreid.errors import ProgReIDError
from progreid.evaluation.clustering import cameras_per_cluster, label_diagnostics
from progreid.models import load_model, save_weights
from progreid.report.artifacts import CLUSTERS_FILE, RANKED_FILE, save_cluster_samples, save_ranked_lists
from progreid.report.plots import plot_rounds
from progreid.select import l2n, select

IMAGES_PER_CLUSTER = 16  # K = N / 16 when cluster.k = 0 (Market-1501 has ~17 images per identity)


def num_clusters(cfg: Config, n: int) -> int:
    k = cfg.cluster.k or max(2, round(n / IMAGES_PER_CLUSTER))
    if k > n:
        raise ProgReIDError(f"cluster.k={k} exceeds the {n} unlabeled training images. Fix: lower cluster.k.")
    return k


def build_original(cfg: Config) -> torch.nn.Module:
    return load_model(cfg.model.arch, cfg.model.weights or None, last_stride=cfg.model.last_stride,
                      embedding_dim=cfg.model.embedding_dim)


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        yield
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - start, 2)


def reliable_stalled(rows: list[dict[str, Any]], tol: float, patience: int) -> bool:
    """True when the reliable count changed by less than ``tol`` (relative) ``patience`` rounds in a row."""
    counts = [r["reliable"] for r in rows if r["round"] >= 1]
    if len(counts) <= patience:
        return False
    recent = counts[-(patience + 1):]
    return all(abs(b - a) / max(a, 1) < tol for a, b in zip(recent, recent[1:]))


def summary_line(row: dict[str, Any], max_rounds: int) -> str:
    parts = [f"round {row['round']}/{max_rounds}"]
    if row["round"] > 0:
        parts.append(f"K {row['k']}  reliable {row['reliable']}/{row['num_train']} ({100 * row['reliable_fraction']:.1f}%)")
    if "mAP" in row:
        parts.append(f"R1 {row['rank1']:.1f}  mAP {row['mAP']:.1f}")
    if "reliable_pair_precision" in row:
        parts.append(f"reliable precision {100 * row['reliable_pair_precision']:.1f}%")
    parts.append(" ".join(f"{k} {v:.0f}s" for k, v in row["seconds"].items()))
    return "  |  ".join(parts)


def adapt(cfg: Config, out: str | Path, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = print, max_rounds: int | None = None) -> list[dict[str, Any]]:
    """Run (or resume) an adaptation; returns one metrics row per round (round 0 = direct transfer).

    ``max_rounds`` with ``resume`` continues a run, finished or not, up to that many rounds: the
    rounds it adds are the ones an uninterrupted run with that budget would have made (same seeds).
    """
    run = RunDir(out)
    cfg, state = run.start(cfg, resume)
    if max_rounds is not None and max_rounds != cfg.loop.max_rounds:
        state = run.set_max_rounds(cfg, state, max_rounds)
    device = resolve_device(cfg.device)
    target = load_target(cfg, progress)
    if cfg.select.method == "temporal" and not target.split.has_frames:
        raise ProgReIDError(
            f"--method {cfg.method} selects by frame ids, but {target.split.name!r} has no 'frame' field "
            "(e.g. CUHK03). Fix: use --method sul or --method pul, which select by feature similarity.")
    labeled_idx, labeled_cls = labeled_subset(cfg, target)
    pool = np.setdiff1d(np.arange(len(target.train)), labeled_idx)
    pool_records = [target.train[i] for i in pool]
    pool_cameras = np.array([r.camid for r in pool_records])
    k = num_clusters(cfg, len(pool))
    model = build_original(cfg)
    pristine = copy.deepcopy(model)  # PUL fine-tunes a fresh copy of the original model every round
    rows: list[dict[str, Any]] = []
    centers: np.ndarray | None = None
    last = -1
    if state is not None:
        last = state["last_round"]
        rows = [r for r in run.metrics() if r["round"] <= last]
        run.write_metrics(rows)
        if last >= 1:
            model.load_state_dict(load_file(str(run.checkpoint(last))))
            if state.get("has_centers"):
                centers = run.load_array("centers", last)
        if state.get("finished"):
            log(f"{run.path}: run already finished at round {last}.")
            return rows
        log(f"resuming {run.path} after round {last}")
    eval_opts = EvalOptions(size=(cfg.data.height, cfg.data.width))

    def evaluate(m: torch.nn.Module, rnd: int) -> dict[str, Any]:
        qf = extract_features(m, target.query_images, device=device, progress=progress, desc="query")
        gf = extract_features(m, target.gallery_images, device=device, progress=progress, desc="gallery")
        save_ranked_lists(run.path / RANKED_FILE, rnd, qf, gf, target.split.query, target.split.gallery, seed=cfg.seed)
        return evaluate_arrays(qf, gf, target.split, eval_opts).as_percent()

    if last < 0:
        timer = Timer()
        row: dict[str, Any] = {"round": 0}
        if target.has_test and cfg.loop.eval_every:
            with timer("evaluate"):
                row.update(evaluate(model, 0))
        row["seconds"] = timer.seconds
        rows.append(row)
        run.write_metrics(rows)
        run.write_state({"last_round": 0, "finished": False, "has_centers": False})
        log(summary_line(row, cfg.loop.max_rounds))
        last = 0

    features: np.ndarray | None = None  # features of the current model, when already computed
    original_features: np.ndarray | None = None  # of the original model (classifier warm-up when init=original)
    finished = False
    for rnd in range(last + 1, cfg.loop.max_rounds + 1):
        timer = Timer()
        seed = cfg.seed * 1000 + rnd
        with timer("extract"):
            if features is None:
                features = extract_features(model, target.train_images, device=device, progress=progress, desc="train")
            x = l2n(features[pool]) if cfg.cluster.normalize else features[pool]
        with timer("cluster"):
            if cfg.cluster.labels == "kmeans" or centers is None:
                km = kmeans(x, k, cfg.cluster.max_iter, cfg.cluster.tol, cfg.cluster.rtol, seed=seed,
                            device=device, progress=progress)
                labels, centers = km.labels, km.centers
            elif cfg.cluster.labels == "centers":
                labels, _ = assign(x, centers, "cosine")
            else:
                raise ProgReIDError(f"cluster.labels {cfg.cluster.labels!r}: choose kmeans or centers.")
        with timer("select"):
            sel = select(cfg.select.method, x, labels, centers, lam=cfg.select.lam,
                         frame_window=cfg.select.frame_window, records=pool_records,
                         center_metric="euclidean" if cfg.cluster.labels == "kmeans" else "cosine")
        _, classes = np.unique(labels[sel.reliable], return_inverse=True)
        train_idx = np.concatenate([pool[sel.reliable], labeled_idx])
        train_cls = np.concatenate([classes, labeled_cls + (classes.max() + 1 if len(classes) else 0)])
        start_features = features
        if cfg.train.init == "original":
            if rnd > 1 or last > 0:
                model = copy.deepcopy(pristine)
            if cfg.train.classifier_warmup > 0:
                with timer("extract"):
                    if original_features is None:
                        original_features = features if rnd == 1 else extract_features(
                            model, target.train_images, device=device, progress=progress, desc="train (original)")
                start_features = original_features
        with timer("train"):
            stats = fit(model, target.train_images, train_idx, train_cls, cfg.train, device, seed, progress,
                        desc=f"round {rnd}", features=start_features[train_idx])
        features = None
        row = {"round": rnd, "k": int(k), "num_train": int(len(pool)), "reliable": int(sel.reliable.sum()),
               "reliable_fraction": round(float(sel.reliable.mean()), 4), "labeled": int(len(labeled_idx)),
               "reliable_cameras_per_cluster": round(cameras_per_cluster(
                   labels, pool_cameras, sel.reliable), 3),
               "train_loss": round(stats.loss[-1], 4), "train_images_per_second": round(stats.images_per_second, 1)}
        if cfg.cluster.center_update > 0:
            with timer("update"):
                features = extract_features(model, target.train_images, device=device, progress=progress, desc="train")
                xn = l2n(features[pool]) if cfg.cluster.normalize else features[pool]
                new_centers = update_centers(centers, xn, labels, cfg.cluster.center_update, cfg.cluster.beta)
                row["center_shift"] = round(center_shift(centers, new_centers), 5)
                centers = new_centers
        if target.has_test and cfg.loop.eval_every and (rnd % cfg.loop.eval_every == 0 or rnd == cfg.loop.max_rounds):
            with timer("evaluate"):
                row.update(evaluate(model, rnd))
        save_cluster_samples(run.path / CLUSTERS_FILE, rnd, pool_records, labels, sel.reliable)
        row.update(label_diagnostics(labels, sel.reliable, None if target.truth is None else target.truth[pool]))
        row["seconds"] = timer.seconds
        rows.append(row)
        finished = rnd == cfg.loop.max_rounds or (
            cfg.select.method != "all" and reliable_stalled(rows, cfg.loop.stop_tol, cfg.loop.stop_patience))
        save_weights(model, run.checkpoint(rnd))
        if centers is not None and cfg.cluster.labels == "centers":
            run.save_array("centers", rnd, centers)
        run.write_metrics(rows)
        run.write_state({"last_round": rnd, "finished": finished, "has_centers": cfg.cluster.labels == "centers"})
        log(summary_line(row, cfg.loop.max_rounds))
        plot_rounds(rows, run.path / "curves.png")
        if finished:
            if rnd < cfg.loop.max_rounds:
                log(f"stopping: the reliable set stopped growing (under {cfg.loop.stop_tol:.0%} for "
                    f"{cfg.loop.stop_patience} rounds)")
            break
    if not finished:
        run.write_state({"last_round": rows[-1]["round"], "finished": True,
                         "has_centers": cfg.cluster.labels == "centers"})
    from progreid.report.html import build_report

    log(f"report: {build_report(run.path, f'{cfg.method.upper()} on {target.split.name}')}")
    return rows
