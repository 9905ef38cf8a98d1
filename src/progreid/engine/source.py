"""Step 0: supervised training on a labeled source dataset, making the "original model"."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from progreid.config import Config
from progreid.data.images import load_images
from progreid.data.layouts import load_dataset, require_parts
from progreid.data.records import relabel
from progreid.engine.context import build_model
from progreid.engine.device import resolve_device
from progreid.engine.evaluate import EvalOptions, evaluate_split
from progreid.engine.fit import fit
from progreid.engine.rundir import RunDir
from progreid.errors import ProgReIDError
from progreid.models import save_weights

MODEL_FILE = "model.safetensors"


def train_source(cfg: Config, out: str | Path, progress: bool = True,
                 log: Callable[[str], None] = print, force: bool = False) -> dict[str, Any]:
    """Train on ``cfg.data.source``'s labeled train split; evaluate on ``cfg.data.target`` if given.

    Writes ``model.safetensors`` and ``metrics.json`` into ``out`` (an existing model there is kept
    unless ``force``); returns the metrics.
    """
    if not cfg.data.source:
        raise ProgReIDError("no source dataset: pass --source DIR (a labeled dataset).")
    run = RunDir(out)
    if (run.path / MODEL_FILE).exists() and not force:
        raise ProgReIDError(f"{run.path / MODEL_FILE}: already exists. Fix: choose another --out, or pass --force "
                            "to train again over it.")
    try:
        cfg, _, _ = run.start(cfg, resume=False, force=force)
        return _train(cfg, run, progress, log)
    finally:
        run.lock.release()


def _train(cfg: Config, run: RunDir, progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    source = load_dataset(cfg.data.source, cfg.data.layout)
    require_parts(source, "train")
    if any(r.pid < 0 for r in source.train):
        raise ProgReIDError(f"{cfg.data.source}: source training images must all carry identities (pid).")
    log(source.format_statistics())
    size = (cfg.data.height, cfg.data.width)
    images = np.asarray(load_images([r.path for r in source.train], size, progress=progress))
    classes, n_classes = relabel(source.train)
    device = resolve_device(cfg.device)
    model = build_model(cfg)
    start = time.perf_counter()
    stats = fit(model, images, np.arange(len(images)), np.asarray(classes), cfg.train, device, cfg.seed, progress,
                desc="source")
    result: dict[str, Any] = {"classes": n_classes, "images": len(images), "epochs": stats.epochs,
                              "train_loss": [round(v, 4) for v in stats.loss],
                              "train_seconds": round(time.perf_counter() - start, 1),
                              "train_images_per_second": round(stats.images_per_second, 1)}
    save_weights(model, run.path / MODEL_FILE)
    for name, folder in (("source", cfg.data.source), ("target", cfg.data.target)):
        if not folder:
            continue
        split = source if name == "source" else load_dataset(folder, "auto")
        if split.query and split.gallery:
            metrics = evaluate_split(model, split, EvalOptions(size=size), device, progress)
            result[name] = metrics.as_percent()
            log(f"{name} {split.name}: {metrics.summary()}")
    from progreid.api import write_json

    write_json(run.path / "metrics.json", result)
    log(f"wrote {run.path / MODEL_FILE}")
    return result
