"""The Python API behind the CLI: each function is one user-level job."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from progreid.data.images import load_images
from progreid.data.layouts import load_dataset, require_parts
from progreid.data.records import Record
from progreid.engine.device import resolve_device
from progreid.engine.evaluate import EvalOptions, evaluate_split
from progreid.engine.extract import extract_features
from progreid.evaluation.metrics import RankingMetrics
from progreid.models import load_model
from progreid.models.checkpoint import atomic_write, save_npy

__all__ = ["evaluate", "extract", "load_model", "write_json", "write_records_csv"]


def evaluate(data: str | Path, arch: str, weights: str | Path | None, layout: str = "auto",
             opts: EvalOptions = EvalOptions(), device: str = "auto", json_out: str | Path | None = None,
             progress: bool = True) -> RankingMetrics:
    """Direct evaluation of ``weights`` on ``data``'s query/gallery split."""
    split = load_dataset(data, layout)
    require_parts(split, "query", "gallery")
    model = load_model(arch, weights)
    metrics = evaluate_split(model, split, opts, resolve_device(device), progress)
    if json_out:
        write_json(json_out, {**metrics.as_percent(), "num_queries": metrics.num_valid,
                              "num_skipped_queries": metrics.num_skipped, "data": str(data),
                              "arch": arch, "weights": str(weights) if weights else None,
                              "metric": opts.metric, "rerank": opts.rerank})
    return metrics


def extract(data: str | Path, arch: str, weights: str | Path | None, out: str | Path,
            parts: tuple[str, ...] = ("train", "query", "gallery"), layout: str = "auto",
            batch_size: int = 0, size: tuple[int, int] = (256, 128), device: str = "auto",
            progress: bool = True) -> dict[str, Path]:
    """Write ``{part}_features.npy`` and ``{part}_records.csv`` for each part; return the .npy paths."""
    split = load_dataset(data, layout)
    require_parts(split, *parts)
    model = load_model(arch, weights)
    dev = resolve_device(device)
    out = Path(out)
    written = {}
    for part in parts:
        records: list[Record] = getattr(split, part)
        images = load_images([r.path for r in records], size, progress=progress)
        feats = extract_features(model, images, batch_size, dev, progress=progress, desc=part)
        npy = out / f"{part}_features.npy"
        save_npy(npy, feats)
        atomic_write(out / f"{part}_records.csv", lambda tmp: write_records_csv(tmp, records))
        written[part] = npy
    return written


def write_records_csv(path: str | Path, records: list[Record]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "pid", "camid", "sequence", "frame"])
        for r in records:
            w.writerow([r.path, r.pid, r.camid, r.sequence, "" if r.frame is None else r.frame])


def write_json(path: str | Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))

