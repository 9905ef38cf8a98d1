"""Dataset layouts: turn a folder on disk into a :class:`Split`.

Each layout is a function ``root -> Split`` in :data:`LAYOUTS`. ``auto`` looks at the folder
and picks one, so most users never name a layout.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Callable

from progreid.data.images import IMAGE_SUFFIXES
from progreid.data.records import UNLABELED, Record, Split
from progreid.errors import DatasetError

MARKET_PARTS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

Loader = Callable[[Path], Split]
LAYOUTS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        LAYOUTS[name] = fn
        return fn

    return wrap


def _image_files(folder: Path) -> list[Path]:
    """The images directly in ``folder``; none is not an error here (an empty Market part)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _parse_folder(folder: Path, pattern: re.Pattern, example: str,
                  to_record: Callable[[Path, re.Match], Record | None]) -> list[Record]:
    """Parse every image name in ``folder``; the first name that does not match is an error."""
    records = []
    for path in _image_files(folder):
        m = pattern.fullmatch(path.name)
        if m is None:
            raise DatasetError(
                f"{path}: file name does not match the expected pattern "
                f"{pattern.pattern!r} (for example {example}). "
                "Fix: rename the files, or choose another --layout (see `progreid datasets --help`)."
            )
        rec = to_record(path, m)
        if rec is not None:
            records.append(rec)
    return records


def _market_style(root: Path, name: str, pattern: re.Pattern, example: str,
                  to_record: Callable[[Path, re.Match], Record | None]) -> Split:
    _check_root(root)
    found = {part: root / sub for part, sub in MARKET_PARTS.items() if (root / sub).is_dir()}
    if not found:
        raise DatasetError(
            f"{root}: none of the folders {', '.join(d + '/' for d in MARKET_PARTS.values())} exist "
            f"(expected {name} layout). Fix: point --data at the folder that contains them."
        )
    split = Split(name=root.name)
    for part, folder in found.items():
        setattr(split, part, _parse_folder(folder, pattern, example, to_record))
    return split


def _check_root(root: Path) -> None:
    if not root.exists():
        raise DatasetError(f"{root}: dataset folder does not exist. Fix: check the --data path.")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, expected a dataset folder (or a CSV manifest with --layout csv).")


MARKET_RE = re.compile(r"(-?\d+)_c(\d+)s(\d+)_(\d+)_(\d+)\.(?:jpg|jpeg|png)", re.IGNORECASE)


def _market_record(path: Path, m: re.Match) -> Record | None:
    pid, cam, seq, frame = (int(g) for g in m.groups()[:4])
    if pid == -1:  # junk boxes: excluded by the protocol
        return None
    return Record(str(path), pid, cam, seq, frame)


@register("market1501")
def load_market1501(root: Path) -> Split:
    """Market-1501: ``0002_c1s1_000451_03.jpg`` (id, camera, sequence, frame, box); id -1 dropped."""
    return _market_style(Path(root), "Market-1501", MARKET_RE, "0002_c1s1_000451_03.jpg", _market_record)


def _id_camera_layout(name: str, title: str, pattern: re.Pattern, example: str, frame_field: bool) -> Loader:
    """A Market-style layout whose names carry (id, camera, third number): a global frame or an index."""
    def to_record(path: Path, m: re.Match) -> Record:
        pid, cam, third = (int(g) for g in m.groups())
        return Record(str(path), pid, cam, 0, third if frame_field else None)

    def load(root: Path) -> Split:
        return _market_style(Path(root), title, pattern, example, to_record)

    load.__doc__ = f"{title}: ``{example}``" + ("; frame numbers are global per camera." if frame_field
                                                else " (id, camera, image index); no frame ids.")
    return register(name)(load)


DUKE_RE = re.compile(r"(\d+)_c(\d+)_f(\d+)\.(?:jpg|jpeg|png)", re.IGNORECASE)
CUHK03_RE = re.compile(r"(\d+)_c(\d+)_(\d+)\.(?:jpg|jpeg|png)", re.IGNORECASE)
load_dukemtmc = _id_camera_layout("dukemtmc", "DukeMTMC-reID", DUKE_RE, "0001_c2_f0046182.jpg", frame_field=True)
load_cuhk03 = _id_camera_layout("cuhk03", "CUHK03", CUHK03_RE, "0001_c1_00.png", frame_field=False)


MSMT_LISTS = {"train": ("list_train.txt", "list_val.txt"), "query": ("list_query.txt",),
              "gallery": ("list_gallery.txt",)}
MSMT_DIRS = {"train": ("train", "mask_train_v2"), "query": ("test", "mask_test_v2"),
             "gallery": ("test", "mask_test_v2")}


@register("msmt17")
def load_msmt17(root: Path) -> Split:
    """MSMT17: list files with ``relative/path.jpg pid`` lines; camera is the 3rd field of the name.

    ``list_val.txt`` joins the training set (as in torchreid). Names such as
    ``0000_000_01_0303morning_0015_0.jpg`` carry no usable frame counter, so frame is ``None``.
    """
    root = Path(root)
    _check_root(root)
    split = Split(name=root.name)
    for part, lists in MSMT_LISTS.items():
        image_dir = next((root / d for d in MSMT_DIRS[part] if (root / d).is_dir()), None)
        records: list[Record] = []
        for list_name in lists:
            list_file = root / list_name
            if not list_file.is_file():
                if list_name == "list_val.txt":
                    continue
                raise DatasetError(f"{list_file}: missing (expected MSMT17 layout with list_train.txt, "
                                   "list_query.txt, list_gallery.txt). Fix: point --data at MSMT17's root.")
            if image_dir is None:
                raise DatasetError(f"{root}: no image folder {' or '.join(MSMT_DIRS[part])}/ for {part}.")
            for lineno, line in enumerate(list_file.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                fields = line.split()
                try:
                    rel, pid = fields[0], int(fields[1])
                    camid = int(Path(rel).name.split("_")[2])
                except (IndexError, ValueError):
                    raise DatasetError(f"{list_file}:{lineno}: expected 'train/0000/0000_000_01_0303morning_0015_0.jpg 0', "
                                       f"got {line.strip()!r}.") from None
                records.append(Record(str(image_dir / rel), pid, camid, 0, None))
        setattr(split, part, records)
    return split


MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("path", "camid", "pid", "frame", "sequence", "track", "split")


@register("csv")
def load_manifest(root: Path) -> Split:
    """A user's own camera network: ``manifest.csv`` with ``path,camid[,pid][,frame][,sequence][,track][,split]``.

    ``path`` is relative to the CSV's folder; an empty ``pid`` means unlabeled (the usual case);
    ``track`` is a tracker's id within (camid, sequence) (``progreid crops`` writes it);
    ``split`` is train (default), query or gallery.
    """
    root = Path(root)
    csv_path = root if root.suffix.lower() == ".csv" else root / MANIFEST_NAME
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: manifest not found. Fix: write a CSV with a header "
                           f"'path,camid[,pid][,frame][,sequence][,track][,split]' there.")
    base = csv_path.parent
    split = Split(name=base.name)
    first_line: dict[str, int] = {}
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's byte-order mark is no column
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        unknown = [h for h in header if h not in MANIFEST_COLUMNS]
        if "path" not in header or "camid" not in header or unknown:
            raise DatasetError(f"{csv_path}: header {header} must contain 'path' and 'camid' and only "
                               f"columns of {list(MANIFEST_COLUMNS)}.")
        for lineno, row in enumerate(reader, 2):
            if None in row or None in row.values():  # csv's marks for more or fewer fields than the header
                raise DatasetError(f"{csv_path}:{lineno}: not as many fields as the header's {len(header)} "
                                   f"({','.join(header)}). Fix: one value per column, empty where unknown.")
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            try:
                rec = Record(
                    path=str(base / row["path"]),
                    camid=int(row["camid"]),
                    pid=int(row["pid"]) if row.get("pid") else UNLABELED,
                    frame=int(row["frame"]) if row.get("frame") else None,
                    sequence=int(row["sequence"]) if row.get("sequence") else 0,
                    track=int(row["track"]) if row.get("track") else None,
                )
            except ValueError as exc:
                raise DatasetError(f"{csv_path}:{lineno}: {exc}; camid, pid, frame, sequence and track must be "
                                   "integers.") from None
            part = row.get("split") or "train"
            if part not in ("train", "query", "gallery"):
                raise DatasetError(f"{csv_path}:{lineno}: split {part!r} must be train, query or gallery.")
            key = os.path.normpath(rec.path)
            if key in first_line:
                raise DatasetError(f"{csv_path}:{lineno}: {row['path']} is listed again (first on line "
                                   f"{first_line[key]}): a crop counted twice would weigh double. Fix: keep one row "
                                   "per crop.")
            first_line[key] = lineno
            getattr(split, part).append(rec)
    if not first_line:
        raise DatasetError(f"{csv_path}: an empty manifest (a header and no rows). Fix: add one row per crop "
                           "('path,camid,...'), or let `progreid crops` write it from videos.")
    return split


CLASS_FOLDERS = {"person", "persons", "pedestrian", "pedestrians", "people"}  # a tracker's class-name level
FRAME_IN_NAME = re.compile(r"(?:^|.*[_-])(?:frame|f)[_-]?(\d+)", re.IGNORECASE)


def _natural_key(name: str) -> list:
    """``cam2`` before ``cam10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _frame_of(stem: str) -> int | None:
    """A frame number where the name carries one: ``000451``, ``frame_451``, ``f451``; else None."""
    if stem.isdigit():
        return int(stem)
    m = FRAME_IN_NAME.fullmatch(stem)
    return int(m.group(1)) if m else None


@register("folders")
def load_folders(root: Path) -> Split:
    """Crops as people have them: images anywhere below ``root``, the folders saying what is known.

    - images directly in ``root`` (any names): one camera, no identities;
    - ``<camera>/...``: each first-level folder (any name: ``cam1``, ``c2``, ``entrance``) is a camera;
      folders below it are sequences;
    - a folder with an integer name that holds images is a tracker's track id, as trackers save crops
      (MOTChallenge-style ``crops/<track>/``; BoxMOT/YOLO's ``crops/[<video>/]person/<track>/<frame>.jpg``,
      where a class-name folder such as ``person`` is skipped and each video is a camera);
    - the frame is read from a name that is a number or ends in ``frame_N``/``fN``; otherwise none.
    Camera ids are 1.. in natural order of the folder names, kept in ``Split.camera_names``.
    """
    root = Path(root)
    _check_root(root)
    found: list[tuple[tuple[str, ...], int | None, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=_natural_key)
        rel = Path(dirpath).relative_to(root).parts
        images = sorted((f for f in filenames if Path(f).suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not images:
            continue
        dirs = [d for d in rel if d.lower() not in CLASS_FOLDERS]
        track = int(dirs.pop()) if dirs and dirs[-1].isdigit() else None
        found.extend((tuple(dirs), track, Path(dirpath) / f) for f in images)
    if not found:
        raise DatasetError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or below it. "
                           "Fix: point --data at the folder of crops.")
    cameras = sorted({d[0] if d else "" for d, _, _ in found}, key=_natural_key)  # "": images in root itself
    camera_of = {name: i for i, name in enumerate(cameras, 1)}
    sequences: dict[tuple[str, ...], int] = {}
    split = Split(name=root.name, camera_names={i: n or root.name for n, i in camera_of.items()})
    for dirs, track, path in found:
        camid = camera_of[dirs[0] if dirs else ""]
        sequence = sequences.setdefault(dirs, sum(1 for k in sequences if k[:1] == dirs[:1])) if len(dirs) > 1 else 0
        split.train.append(Record(str(path), UNLABELED, camid, sequence, _frame_of(path.stem), track))
    return split


def detect_layout(root: Path) -> str:
    """Guess the layout from the folder's contents (manifest, list files, or Market-style names)."""
    root = Path(root)
    if root.suffix.lower() != ".csv":
        _check_root(root)
    if root.suffix.lower() == ".csv" or (root / MANIFEST_NAME).is_file():
        return "csv"
    if (root / "list_train.txt").is_file() or (root / "list_query.txt").is_file():
        return "msmt17"
    for sub in MARKET_PARTS.values():
        folder = root / sub
        if folder.is_dir():
            names = [p.name for p in _image_files(folder)[:50]]
            for layout, pattern in (("market1501", MARKET_RE), ("dukemtmc", DUKE_RE), ("cuhk03", CUHK03_RE)):
                if names and all(pattern.fullmatch(n) for n in names):
                    return layout
    if any((root / sub).is_dir() for sub in MARKET_PARTS.values()):
        raise DatasetError(
            f"{root}: has {', '.join(d for d in MARKET_PARTS.values() if (root / d).is_dir())}/ but its image names "
            "are none of Market-1501's, DukeMTMC-reID's or CUHK03's. Fix: pass --layout one of "
            f"{sorted(LAYOUTS)} (folders: read every image below, each first-level folder a camera)."
        )
    if any(Path(f).suffix.lower() in IMAGE_SUFFIXES for _, _, files in os.walk(root) for f in files):
        return "folders"
    raise DatasetError(
        f"{root}: cannot tell the dataset layout, and no images are in it or below it. Expected a folder of crops "
        "(one folder per camera, optionally per track), bounding_box_train/, query/, bounding_box_test/ "
        f"(Market-1501, DukeMTMC-reID, CUHK03 names), MSMT17 list files, or {MANIFEST_NAME}. "
        f"Fix: pass --layout one of {sorted(LAYOUTS)}."
    )


def load_dataset(root: str | Path, layout: str = "auto") -> Split:
    """Load ``root`` with ``layout`` (``auto`` detects it)."""
    root = Path(root).expanduser().absolute()
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose one of {['auto', *sorted(LAYOUTS)]}.")
    return LAYOUTS[layout](root)


def require_parts(split: Split, *parts: str) -> None:
    """Fail clearly when a part the command needs (e.g. query, gallery) is empty or missing."""
    missing = [p for p in parts if not getattr(split, p)]
    if missing:
        hints = ", ".join(f"{p} ({MARKET_PARTS[p]}/)" for p in missing)
        raise DatasetError(f"dataset {split.name!r} has no images for: {hints}. Fix: add them or point --data elsewhere.")
