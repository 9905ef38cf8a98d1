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
from progreid.errors import ProgReIDError
from progreid.folder_lock import ensure_writable_folder
from progreid.evaluation.metrics import RankingMetrics
from progreid.footage import DEFAULT_STRIDE
from progreid.models import load_model
from progreid.models.checkpoint import atomic_write, save_npy

__all__ = ["adapt_config", "crops", "evaluate", "export", "extract", "load_model", "rank", "require_new_folder",
           "verify", "verify_labels", "verify_score",
           "require_new_file", "write_json", "write_records_csv"]

EXPORT_FORMATS = ("torchreid", "onnx", "torchscript")


def adapt_config(out: str | Path, method: str | None = None, preset: str | None = None,
                 file: str | Path | None = None, overrides: list[str] | None = None, resume: bool = False,
                 max_rounds: int | None = None):
    """The config an ``adapt`` call asks for, and its round budget for ``--resume``.

    A new run: the method's preset (``pul``, ``paper`` unless named), the file, the overrides. A
    resumed run: the config saved in ``out`` with only what was given explicitly applied, so that
    the run folder can name each setting that differs from the run's own (and refuse it); a
    ``loop.max_rounds`` given there extends the run like ``--max-rounds``."""
    import copy

    from progreid.config import load_config, merge, parse_override, read_config_file
    from progreid.engine.rundir import RunDir
    from progreid.options import validate

    overrides = list(overrides or [])
    run = RunDir(out)
    if not (resume and run.config_file.is_file()):
        return load_config(method or "pul", preset or "paper", file, overrides), max_rounds
    saved = run.saved_config()
    cfg = copy.deepcopy(saved)
    cfg.method = method or cfg.method
    cfg.preset = preset or cfg.preset
    if file:
        merge(cfg, read_config_file(file), str(file))
    for text in overrides:
        merge(cfg, parse_override(text), f"override {text!r}")
    validate(cfg)
    if max_rounds is None and cfg.loop.max_rounds != saved.loop.max_rounds:
        max_rounds = cfg.loop.max_rounds
    cfg.loop.max_rounds = saved.loop.max_rounds
    return cfg, max_rounds


def require_new_file(path: str | Path, force: bool = False, option: str = "--out") -> Path:
    """``path`` as a file to write: an existing file is kept unless ``force``; a folder there is an error."""
    path = Path(path)
    if path.is_dir():
        raise ProgReIDError(f"{option} {path}: is a folder, and a file is needed here. Fix: give a file name.")
    if path.exists() and not force:
        raise ProgReIDError(f"{option} {path}: already exists. Fix: choose another name, or pass --force to "
                            "replace it.")
    ensure_writable_folder(path.parent if str(path.parent) else Path("."), option)
    return path


def require_new_folder(path: str | Path, force: bool = False, option: str = "--out") -> Path:
    """``path`` as a folder to write into: one holding files is refused unless ``force``."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ProgReIDError(f"{option} {path}: already holds files. Fix: choose a new or empty folder, or pass "
                            "--force to write into it.")
    return ensure_writable_folder(path, option)


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
            progress: bool = True, onnx: str | Path | None = None, force: bool = False) -> dict[str, Path]:
    """Write ``{part}_features.npy`` and ``{part}_records.csv`` for each part; return the .npy paths.

    ``onnx``: compute the features with onnxruntime from an exported model (its input size from its
    metadata) instead of torch, as a deployment would. Features already in ``out`` are kept unless ``force``."""
    split = load_dataset(data, layout)
    require_parts(split, *parts)
    ensure_writable_folder(out)
    for part in parts:
        require_new_file(Path(out) / f"{part}_features.npy", force)
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
          min_height: int = 40, force: bool = False):
    """Cut crops from camera videos along tracker tracks into ``out`` (see :mod:`progreid.footage.crops`):
    either a ``listing`` of cameras or one ``video``/``tracks``/``camera``. A crops folder made before
    is appended to; a folder holding anything else is refused unless ``force``."""
    from progreid.footage.crops import SOURCES_NAME, CameraFootage, cut_crops, read_listing

    if not (Path(out) / SOURCES_NAME).is_file():
        require_new_folder(out, force)

    if listing and (video or tracks or camera is not None):
        raise ProgReIDError("give either --list or --video/--tracks/--camera, not both.")
    if listing:
        cameras = read_listing(listing)
    elif video and tracks and camera is not None:
        cameras = [CameraFootage(Path(video), Path(tracks), int(camera))]
    else:
        raise ProgReIDError("crops needs --video, --tracks and --camera (one camera) or --list FILE (several).")
    return cut_crops(cameras, out, stride, min_height)


def export(source: str | Path, fmt: str, out: str | Path, arch: str | None = None, round_: int | str | None = None,
           check_images: str | Path | None = None, size: tuple[int, int] | None = None,
           force: bool = False) -> dict[str, object]:
    """Write a run's (or bare weights') model as ``fmt``; ONNX is checked against torch on crops.
    An existing output file is kept unless ``force``.

    Returns {"path": written file, "sidecar": ONNX facts for BoxMOT (onnx only), "max_abs_difference": onnx vs torch (onnx only), "checked_on": ...}."""
    from progreid.export.source import load_export_source

    if fmt not in EXPORT_FORMATS:
        raise ProgReIDError(f"--format {fmt!r}: choose one of {list(EXPORT_FORMATS)}.")
    from progreid.export.naming import export_path

    src = load_export_source(source, arch, round_, size)
    path, note = export_path(fmt, out, src.arch, src.file_stem)
    require_new_file(path, force)
    done: dict[str, object] = {"path": path, "note": note, "round": src.round}
    if fmt == "torchreid":
        from progreid.export.torchreid_format import write_torchreid

        return {**done, "path": write_torchreid(src, path)}
    if fmt == "torchscript":
        from progreid.export.torchscript_format import write_torchscript

        return {**done, "path": write_torchscript(src, path)}
    from progreid.export.onnx_format import max_difference, sidecar_path, write_onnx

    write_onnx(src, path)
    done["sidecar"] = sidecar_path(path)
    paths, checked_on = _check_crops(check_images)
    images = load_images(paths, src.size, progress=False, use_cache=False) if paths else \
        np.random.default_rng(0).integers(0, 256, (8, *src.size, 3), dtype=np.uint8)
    return {**done, "max_abs_difference": max_difference(src, path, images),
            "checked_on": checked_on if paths else "8 random images (pass --check-images DIR for real crops)"}


def _check_crops(folder: str | Path | None, n: int = 32) -> tuple[list[str], str]:
    if not folder:
        return [], ""
    paths = image_files(folder, recursive=True)[:n]
    return [str(p) for p in paths], f"{len(paths)} crops of {folder}"


def rank(weights: str | Path, query: str | Path, gallery: str | Path, out: str | Path, arch: str | None = None,
         top: int = 10, max_queries: int = 50, size: tuple[int, int] | None = None, device: str = "auto",
         progress: bool = True, round_: int | None = None, force: bool = False) -> Path:
    """A page of ranked lists for plain folders of crops (no labels), from a run folder (its last
    finished round, or ``round_``) or weights. An existing page is kept unless ``force``."""
    from progreid.export.source import load_export_source
    from progreid.report.rank_page import write_rank_page

    require_new_file(out, force)
    src = load_export_source(weights, arch, round_, size)
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



def verify(data: str | Path, weights: list[str], out: str | Path, queries: int = 50, top_k: int = 10,
           arch: str | None = None, round_: int | None = None, seed: int = 0, layout: str = "auto",
           simulate: bool = False, device: str = "auto", progress: bool = True, log=print,
           size: tuple[int, int] | None = None, train_crops: bool = False):
    """Open (or start) the verify folder ``out``: the queries and each model's candidates, drawn once,
    so that answers given on different days are to the same questions. With ``simulate`` every open
    query is answered from ground truth. Returns the session (``progreid.verify.session.Session``)."""
    from progreid.verify.build import build_session
    from progreid.verify.session import SESSION_FILE, load_session
    from progreid.verify.simulate import simulate_answers

    out = ensure_writable_folder(out)
    if (out / SESSION_FILE).is_file():
        session = load_session(out)
        asked = {"data": str(data), "models": [str(w) for w in weights]}
        differs = [k for k, v in asked.items() if v != getattr(session, k)]
        if differs:
            raise ProgReIDError(f"--out {out}: holds a verify session for other {' and '.join(differs)} "
                                f"({', '.join(f'{k}={getattr(session, k)}' for k in differs)}). Fix: the same "
                                "--data and --weights to continue it, or another --out.")
        log(f"continuing {out}: {len(session.queries)} queries")
    else:
        session = build_session(data, weights, queries, top_k, arch, round_, seed, layout, simulate,
                                resolve_device(device), progress, log, size, train_crops)
        session.save(out)
    if simulate:
        simulate_answers(session, out, layout)
    return session


def verify_score(out: str | Path) -> dict[str, object]:
    """The estimate of a verify folder's answers (what the page shows and ``verify --score`` prints)."""
    from progreid.verify.score import score
    from progreid.verify.session import load_session

    return score(load_session(out), out)


def verify_labels(out: str | Path, csv_path: str | Path, force: bool = False) -> int:
    """Write the confirmed matches as ``path,pid`` groups for ``adapt --labeled-csv``; returns the groups."""
    from progreid.verify.labels import write_labeled_csv
    from progreid.verify.session import load_session

    require_new_file(csv_path, force)
    return write_labeled_csv(load_session(out), out, csv_path)


def verify_cannot_links(out: str | Path, csv_path: str | Path, force: bool = False) -> int:
    """Write the shown-but-not-matched crops as ``path_a,path_b`` pairs for ``adapt --cannot-links``
    (read with ``semi.labels_as=links``); returns the number of pairs."""
    from progreid.verify.labels import write_cannot_links_csv
    from progreid.verify.session import load_session

    require_new_file(csv_path, force)
    return write_cannot_links_csv(load_session(out), out, csv_path)
