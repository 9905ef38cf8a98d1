"""Decode every image once into a uint8 array at the model's input size, cached on disk.

Re-ID rounds read the same crops again and again; decoding JPEGs each time would dominate a CPU
round. The cache is a ``.npy`` file (memory-mapped on reuse) keyed by the input size and every
file's path, byte size and modification time, so a changed file list or file invalidates it.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from progreid.errors import DatasetError
from progreid.models.checkpoint import save_npy


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (and below it with ``recursive``), sorted; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder of images. Fix: check the path.")
    found = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir())
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise DatasetError(f"{folder}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return found


def default_cache_dir() -> Path:
    return Path(os.environ.get("PROGREID_CACHE", Path.home() / ".cache" / "progreid")) / "images"


def decode_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """RGB, bilinear resize to ``size`` = (height, width), as torchvision's ``Resize`` on PIL."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc}). Fix: remove or replace the file.") from None


def cache_key(paths: Sequence[str], size: tuple[int, int]) -> str:
    h = hashlib.sha1(f"v1 {size[0]}x{size[1]}\n".encode())
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            raise DatasetError(f"{p}: image file is missing. Fix: restore it or reload the dataset.") from None
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def load_images(paths: Sequence[str], size: tuple[int, int] = (256, 128), cache_dir: str | Path | None = None,
                workers: int | None = None, progress: bool = True, use_cache: bool = True) -> np.ndarray:
    """All ``paths`` as one (N, H, W, 3) uint8 array, decoded in parallel threads on a cache miss."""
    paths = list(paths)
    if not paths:
        return np.zeros((0, size[0], size[1], 3), np.uint8)
    target: Path | None = None
    if use_cache:
        target = Path(cache_dir or default_cache_dir()) / f"{cache_key(paths, size)}.npy"
        if target.is_file():
            arr = np.load(target, mmap_mode="r")
            if arr.shape == (len(paths), size[0], size[1], 3):
                return arr
    out = np.empty((len(paths), size[0], size[1], 3), np.uint8)
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    from tqdm import tqdm

    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(lambda p: decode_image(p, size), paths, chunksize=64)
        for i, img in enumerate(tqdm(it, total=len(paths), desc="decode", disable=not progress, leave=False)):
            out[i] = img
    if target is not None:
        try:
            save_npy(target, out)
        except OSError:
            pass  # a read-only or full cache folder only costs speed
    return out
