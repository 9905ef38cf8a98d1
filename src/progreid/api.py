"""The Python API behind the CLI: each function is one user-level job."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from progreid.data.images import image_files, load_images
from progreid.data.layouts import load_dataset, require_parts
from progreid.data.records import Record
from progreid.engine.device import resolve_device
from progreid.engine.evaluate import EvalOptions, evaluate_split
from progreid.engine.extract import extract_features
from progreid.evaluation.metrics import RankingMetrics
from progreid.footage import DEFAULT_STRIDE
from progreid.models import load_model
from progreid.models.checkpoint import atomic_write, save_npy

__all__ = ["crops", "evaluate", "export", "extract", "load_model", "rank", "write_json", "write_records_csv"]

EXPORT_FORMATS = ("torchreid", "onnx", "torchscript")


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
            progress: bool = True, onnx: str | Path | None = None) -> dict[str, Path]:
    """Write ``{part}_features.npy`` and ``{part}_records.csv`` for each part; return the .npy paths.

    ``onnx``: compute the features with onnxruntime from an exported model (its input size from its
    metadata) instead of torch, as a deployment would."""
    split = load_dataset(data, layout)
    require_parts(split, *parts)
    if onnx:
        from progreid.export.onnx_format import input_size, onnx_features

        size = input_size(onnx)
    else:
        model = load_model(arch, weights)
        dev = resolve_device(device)
    out = Path(out)
    written = {}
    for part in parts:
        records: list[Record] = getattr(split, part)
        images = load_images([r.path for r in records], size, progress=progress)
        feats = onnx_features(onnx, images, batch_size or 32) if onnx else \
            extract_features(model, images, batch_size, dev, progress=progress, desc=part)
        npy = out / f"{part}_features.npy"
        save_npy(npy, feats)
        atomic_write(out / f"{part}_records.csv", lambda tmp: write_records_csv(tmp, records))
        written[part] = npy
    return written


def crops(out: str | Path, listing: str | Path | None = None, video: str | Path | None = None,
          tracks: str | Path | None = None, camera: int | None = None, stride: int | str = DEFAULT_STRIDE,
          min_height: int = 40):
    """Cut crops from camera videos along tracker tracks into ``out`` (see :mod:`progreid.footage.crops`):
    either a ``listing`` of cameras or one ``video``/``tracks``/``camera``."""
    from progreid.errors import ProgReIDError
    from progreid.footage.crops import CameraFootage, cut_crops, read_listing

    if listing and (video or tracks or camera is not None):
        raise ProgReIDError("give either --list or --video/--tracks/--camera, not both.")
    if listing:
        cameras = read_listing(listing)
    elif video and tracks and camera is not None:
        cameras = [CameraFootage(Path(video), Path(tracks), int(camera))]
    else:
        raise ProgReIDError("crops needs --video, --tracks and --camera (one camera) or --list FILE (several).")
    return cut_crops(cameras, out, stride, min_height)


def export(source: str | Path, fmt: str, out: str | Path, arch: str | None = None, round_: int | None = None,
           check_images: str | Path | None = None, size: tuple[int, int] | None = None) -> dict[str, object]:
    """Write a run's (or bare weights') model as ``fmt``; ONNX is checked against torch on crops.

    Returns {"path": written file, "max_abs_difference": onnx vs torch (onnx only), "checked_on": ...}."""
    from progreid.errors import ProgReIDError
    from progreid.export.source import load_export_source

    if fmt not in EXPORT_FORMATS:
        raise ProgReIDError(f"--format {fmt!r}: choose one of {list(EXPORT_FORMATS)}.")
    src = load_export_source(source, arch, round_, size)
    Path(out).mkdir(parents=True, exist_ok=True) if not Path(out).suffix else None
    if fmt == "torchreid":
        from progreid.export.torchreid_format import write_torchreid

        return {"path": write_torchreid(src, out)}
    if fmt == "torchscript":
        from progreid.export.torchscript_format import write_torchscript

        return {"path": write_torchscript(src, out)}
    from progreid.export.onnx_format import max_difference, write_onnx

    path = write_onnx(src, out)
    paths, checked_on = _check_crops(check_images)
    images = load_images(paths, src.size, progress=False, use_cache=False) if paths else \
        np.random.default_rng(0).integers(0, 256, (8, *src.size, 3), dtype=np.uint8)
    return {"path": path, "max_abs_difference": max_difference(src, path, images),
            "checked_on": checked_on if paths else "8 random images (pass --check-images DIR for real crops)"}


def _check_crops(folder: str | Path | None, n: int = 32) -> tuple[list[str], str]:
    if not folder:
        return [], ""
    paths = image_files(folder, recursive=True)[:n]
    return [str(p) for p in paths], f"{len(paths)} crops of {folder}"


def rank(weights: str | Path, query: str | Path, gallery: str | Path, out: str | Path, arch: str | None = None,
         top: int = 10, max_queries: int = 50, size: tuple[int, int] | None = None, device: str = "auto",
         progress: bool = True) -> Path:
    """A page of ranked lists for plain folders of crops (no labels), from a run folder or weights."""
    from progreid.export.source import load_export_source
    from progreid.report.rank_page import write_rank_page

    src = load_export_source(weights, arch, None, size)
    q_paths = [str(p) for p in image_files(query, recursive=True)][:max_queries]
    g_paths = [str(p) for p in image_files(gallery, recursive=True)]
    dev = resolve_device(device)
    qf = extract_features(src.model, load_images(q_paths, src.size, progress=progress), 0, dev, progress=progress)
    gf = extract_features(src.model, load_images(g_paths, src.size, progress=progress), 0, dev, progress=progress)
    return write_rank_page(out, q_paths, g_paths, qf, gf, top, f"ranked lists: {Path(weights).name}")


def write_records_csv(path: str | Path, records: list[Record]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "pid", "camid", "sequence", "frame", "track"])
        for r in records:
            w.writerow([r.path, r.pid, r.camid, r.sequence, "" if r.frame is None else r.frame,
                        "" if r.track is None else r.track])


def write_json(path: str | Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))

