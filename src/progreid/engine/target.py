"""Load the unlabeled target domain: records without labels, images, and ground truth kept apart.

Identities of the training split are deleted at load (OpenUnReID's habit); a copy is kept only for
the diagnostics (cluster purity, reliable-set precision), which report and never feed back.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from progreid.config import Config
from progreid.data.images import ImageLimits, load_images
from progreid.data.layouts import load_dataset, require_parts
from progreid.data.records import UNLABELED, Record, Split, without_labels
from progreid.errors import ProgReIDError


@dataclass
class TargetData:
    split: Split                      # query/gallery keep their labels (they are the test)
    train: list[Record]               # labels deleted
    truth: np.ndarray | None          # ground-truth pids of train, for diagnostics only
    train_images: np.ndarray
    query_images: np.ndarray | None
    gallery_images: np.ndarray | None
    bad_train: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # unreadable, skipped

    @property
    def has_test(self) -> bool:
        return self.query_images is not None and len(self.split.query) > 0 and len(self.split.gallery) > 0


def load_target(cfg: Config, progress: bool = True) -> TargetData:
    if not cfg.data.target:
        raise ProgReIDError("no target dataset: pass --target DIR (or set data.target).")
    split = load_dataset(cfg.data.target, cfg.data.layout)
    require_parts(split, "train")
    truth = np.array([r.pid for r in split.train], np.int64)
    size = (cfg.data.height, cfg.data.width)
    has_test = bool(split.query) and bool(split.gallery)
    bad: list[int] | None = [] if cfg.data.bad_images == "skip" else None
    limits = ImageLimits(cfg.data.max_pixels, cfg.data.min_side)
    train_images = load_images([r.path for r in split.train], size, progress=progress, bad=bad, limits=limits)
    return TargetData(
        split=split,
        train=without_labels(split.train),
        truth=None if np.any(truth == UNLABELED) else truth,
        train_images=np.asarray(train_images),
        bad_train=np.array(sorted(bad or []), np.int64),
        query_images=load_images([r.path for r in split.query], size, progress=progress, limits=limits)
        if has_test else None,
        gallery_images=load_images([r.path for r in split.gallery], size, progress=progress, limits=limits)
        if has_test else None,
    )


def labeled_subset(cfg: Config, target: TargetData) -> tuple[np.ndarray, np.ndarray]:
    """Semi-supervised PUL: (train indices, class ids 0..L-1) of the labeled target images.

    From ``semi.labeled_csv`` (``path,pid``; paths relative to the CSV or absolute), or, as an
    experiment on a dataset with ground truth, the images of ``semi.labeled_ids`` random identities.
    """
    if cfg.semi.labeled_csv:
        csv_path = Path(cfg.semi.labeled_csv)
        find = _train_image_finder(target, csv_path)
        idx, pids = [], []
        for lineno, row in _csv_rows(csv_path, "semi.labeled_csv"):
            i = find(row.get("path"))
            if i is None or not (row.get("pid") or "").strip().lstrip("-").isdigit():
                raise ProgReIDError(f"{csv_path}:{lineno}: {row} is not a 'path,pid' row of a training image.")
            idx.append(i)
            pids.append(int(row["pid"]))
        _, classes = np.unique(pids, return_inverse=True)
        return np.array(idx, np.int64), classes.astype(np.int64)
    if cfg.semi.labeled_ids > 0:
        if target.truth is None:
            raise ProgReIDError("semi.labeled_ids needs a target whose training images carry identities.")
        ids = np.unique(target.truth)
        chosen = np.random.default_rng(cfg.seed).choice(ids, size=min(cfg.semi.labeled_ids, len(ids)), replace=False)
        idx = np.flatnonzero(np.isin(target.truth, chosen))
        _, classes = np.unique(target.truth[idx], return_inverse=True)
        return idx.astype(np.int64), classes.astype(np.int64)
    return np.zeros(0, np.int64), np.zeros(0, np.int64)


def cannot_link_pairs(cfg: Config, target: TargetData) -> np.ndarray:
    """(M, 2) train indices of the ``semi.cannot_links_csv`` pairs (``path_a,path_b``: crops a person
    was shown as different people, ``verify --write-cannot-links``); none without the file."""
    if not cfg.semi.cannot_links_csv:
        return np.zeros((0, 2), np.int64)
    csv_path = Path(cfg.semi.cannot_links_csv)
    find = _train_image_finder(target, csv_path)
    pairs = []
    for lineno, row in _csv_rows(csv_path, "semi.cannot_links_csv"):
        a, b = find(row.get("path_a")), find(row.get("path_b"))
        if a is None or b is None:
            raise ProgReIDError(f"{csv_path}:{lineno}: {row} is not a 'path_a,path_b' row of two training images.")
        pairs.append((a, b))
    return np.array(pairs, np.int64).reshape(-1, 2)


def _csv_rows(csv_path: Path, key: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV with a header line; a missing file is an error naming ``key``."""
    if not csv_path.is_file():
        raise ProgReIDError(f"{csv_path}: CSV not found ({key}).")
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        yield from enumerate(csv.DictReader(fh), 2)


def _train_image_finder(target: TargetData, csv_path: Path) -> Callable[[str | None], int | None]:
    """A CSV's path (relative to the CSV, absolute, or a bare file name) -> its training image index."""
    where = {str(Path(r.path).resolve()): i for i, r in enumerate(target.train)}
    by_name = {Path(r.path).name: i for i, r in enumerate(target.train)}

    def find(text: str | None) -> int | None:
        if not text:
            return None
        path = Path(text)
        return where.get(str((csv_path.parent / path).resolve()), by_name.get(path.name))

    return find
