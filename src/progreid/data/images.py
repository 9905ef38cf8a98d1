"""Decode every image once into a uint8 array at the model's input size, cached on disk.

Re-ID rounds read the same crops again and again; decoding JPEGs each time would dominate a CPU
round. The cache is a ``.npy`` file (memory-mapped on reuse) keyed by the input size and every
file's path, byte size and modification time, so a changed file list or file invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from progreid import distributed
from progreid.errors import DatasetError


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass(frozen=True)
class ImageLimits:
    """What a person crop can be: an image over ``max_pixels`` is refused before it is decoded (a
    decompression bomb, or a whole frame by mistake), one whose shorter side is under ``min_side``
    pixels is not a crop a model can learn from. Defaults no person crop reaches (``data.*``)."""

    max_pixels: int = 50_000_000
    min_side: int = 8

    def check(self, path: str, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise DatasetError(f"{path}: {width}x{height} pixels, over data.max_pixels={self.max_pixels}: not a person "
                               "crop (or a decompression bomb). Fix: remove or crop it, or raise data.max_pixels.")
        if min(width, height) < self.min_side:
            raise DatasetError(f"{path}: {width}x{height} pixels, under data.min_side={self.min_side}: too small to be "
                               "a person crop. Fix: remove it, or lower data.min_side (data.bad_images=skip skips it).")


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


def decode_image(path: str, size: tuple[int, int], limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """RGB, bilinear resize to ``size`` = (height, width), as torchvision's ``Resize`` on PIL; the
    image's size is checked against ``limits`` from its header, before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # limits.check says it instead
            im_file = Image.open(path)
        with im_file as im:
            limits.check(path, *im.size)
            im = im.convert("RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise DatasetError(f"{path}: too many pixels to be a person crop (PIL refuses it as a decompression bomb). "
                           "Fix: remove or crop it.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc}). Fix: remove or replace the file.") from None


def cache_key(paths: Sequence[str], size: tuple[int, int], limits: ImageLimits = ImageLimits()) -> str:
    h = hashlib.sha1(f"v1 {size[0]}x{size[1]}\n".encode())
    if limits != ImageLimits():  # other limits can make other crops unreadable (the cache remembers which)
        h.update(f"limits {limits.max_pixels} {limits.min_side}\n".encode())
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            raise DatasetError(f"{p}: image file is missing. Fix: restore it or reload the dataset.") from None
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def load_images(paths: Sequence[str], size: tuple[int, int] = (256, 128), cache_dir: str | Path | None = None,
                workers: int | None = None, progress: bool = True, use_cache: bool = True,
                bad: list[int] | None = None, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """All ``paths`` as one (N, H, W, 3) uint8 array, decoded in parallel threads on a cache miss.

    With the cache, images are decoded straight into a memory-mapped file (never all in RAM), each
    ``torchrun`` rank its slice. ``bad``: a list to collect the positions of unreadable images
    (zero-filled; over or under ``limits`` too) instead of failing on the first; the cache remembers them.
    """
    paths = list(paths)
    if not paths:
        return np.zeros((0, size[0], size[1], 3), np.uint8)
    shape = (len(paths), size[0], size[1], 3)
    if not use_cache:
        out = np.empty(shape, np.uint8)
        _report_bad(paths, _decode_into(out, paths, range(len(paths)), size, workers, progress, bad is not None,
                                        limits), bad, limits)
        return out
    target = Path(cache_dir or default_cache_dir()) / f"{cache_key(paths, size, limits)}.npy"
    sidecar = target.with_suffix(".bad.json")
    if not (target.is_file() and np.load(target, mmap_mode="r").shape == shape) and \
            not _build_cache(target, sidecar, paths, shape, workers, progress, bad is not None, limits):
        return load_images(paths, shape[1:3], workers=workers, progress=progress, use_cache=False, bad=bad,
                           limits=limits)
    known_bad = json.loads(sidecar.read_text()) if sidecar.is_file() else []
    _report_bad(paths, known_bad, bad, limits)
    return np.load(target, mmap_mode="r")


def _report_bad(paths: list[str], found: list[int], bad: list[int] | None, limits: ImageLimits) -> None:
    if found and bad is None:
        decode_image(paths[found[0]], (8, 8), limits)  # raises the error that names the file
    if bad is not None:
        bad.extend(found)


def _decode_into(out: np.ndarray, paths: list[str], rows: range, size: tuple[int, int], workers: int | None,
                 progress: bool, skip_bad: bool, limits: ImageLimits) -> list[int]:
    """Decode ``paths[rows]`` into ``out[rows]``; return the unreadable rows (zero-filled) when ``skip_bad``."""
    from tqdm import tqdm

    def read(i: int) -> np.ndarray | None:
        try:
            return decode_image(paths[i], size, limits)
        except DatasetError:
            if not skip_bad:
                raise
            return None

    failed = []
    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        it = pool.map(read, rows, chunksize=64)
        for i, img in zip(rows, tqdm(it, total=len(rows), desc="decode", disable=not progress, leave=False)):
            if img is None:
                out[i] = 0
                failed.append(i)
            else:
                out[i] = img
    return failed


def _build_cache(target: Path, sidecar: Path, paths: list[str], shape: tuple[int, ...], workers: int | None,
                 progress: bool, skip_bad: bool, limits: ImageLimits) -> bool:
    """Fill ``target`` through a uniquely named partial file renamed into place (a crash or a
    concurrent run never leaves a half-written cache); under torchrun each rank decodes its slice."""
    partial = None
    if distributed.is_main():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".partial.npy")
            os.close(fd)
            np.lib.format.open_memmap(name, mode="w+", dtype=np.uint8, shape=shape).flush()
            partial = name
        except OSError:
            partial = None
    partial = distributed.broadcast(partial)
    if partial is None:
        return False  # a read-only or full cache folder only costs speed: decode into memory instead
    try:
        arr = np.lib.format.open_memmap(partial, mode="r+")
        failed = _decode_into(arr, paths, range(len(paths))[distributed.shard(len(paths))], shape[1:3], workers,
                              progress, skip_bad, limits)
        arr.flush()
        del arr
        failed = sorted(i for part in distributed.gather_objects(failed) for i in part)
        distributed.barrier()
        if distributed.is_main():
            if failed:
                sidecar.write_text(json.dumps(failed))
            else:
                sidecar.unlink(missing_ok=True)
            os.replace(partial, target)
        distributed.barrier()
        return True
    finally:
        if distributed.is_main() and os.path.exists(partial):
            os.unlink(partial)
