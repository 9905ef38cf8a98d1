"""Cut person crops from camera videos along a tracker's tracks, into a dataset progreid adapts on.

One call handles a list of cameras (video, tracks, camera id). Per track, a crop every ``stride``
(the first box, then the first box at least ``stride`` after the last one taken, so tracks with gaps
are sampled evenly). ``stride`` is in seconds by default ("0.4s"), turned into frames with each
video's own frame rate, so cameras at 25 and 60 fps give crops at the same pace; a plain number is
frames; boxes are clipped to the frame, and boxes smaller than
``min_height`` after clipping are dropped. The folder gets ``images/c{cam}s{seq}/...jpg`` and a
``manifest.csv`` (``path,camid,frame,sequence,track``) that the ``csv`` layout reads.

Footage added later (another day) appends: each new video of a camera becomes its next sequence
(frame and track numbers restart per video), rows already in the manifest stay, and a video already
cut (same path, size and camera) is skipped. Each camera is committed on its own (crops renamed into
place, then the manifest rewritten atomically), so a failure on one camera loses nothing already done.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from PIL import Image

from progreid.data.layouts import MANIFEST_COLUMNS, MANIFEST_NAME
from progreid.errors import DatasetError
from progreid.footage import DEFAULT_STRIDE
from progreid.footage.tracks import Box, read_tracks
from progreid.footage.video import iter_frames, video_fps
from progreid.models.checkpoint import atomic_write

SOURCES_NAME = "crops.json"  # what was cut from which video: lets a later call append and skip repeats


@dataclass(frozen=True)
class CameraFootage:
    video: Path
    tracks: Path
    camera: int


@dataclass
class CutSummary:
    """What happened to one camera's boxes (each box is counted once, in the first column that applies)."""

    camera: int
    video: str
    sequence: int = 0
    boxes: int = 0          # lines in the track file
    tracks: int = 0
    crops: int = 0          # written
    clipped: int = 0        # written, after clipping to the frame
    too_small: int = 0      # under --min-height once clipped
    outside: int = 0        # no pixel inside the frame
    beyond_video: int = 0   # frame number past the video's end
    skipped_between: int = 0  # boxes between two sampled frames (--stride)
    stride_frames: int = 0  # --stride in this video's frames
    status: str = "cut"     # cut | already cut


@dataclass
class CropResult:
    out: Path
    manifest: Path
    cameras: list[CutSummary] = field(default_factory=list)

    def table(self) -> str:
        cols = ("camera", "sequence", "stride_frames", "tracks", "boxes", "crops", "clipped", "too_small", "outside",
                "beyond_video", "status")
        lines = ["  ".join(f"{c:>12}" for c in cols)]
        for s in self.cameras:
            lines.append("  ".join(f"{getattr(s, c)!s:>12}" for c in cols))
        return "\n".join(lines)


def read_listing(path: str | Path) -> list[CameraFootage]:
    """Cameras from a YAML list (``- {video: ..., tracks: ..., camera: 1}``) or a CSV with header
    ``video,tracks,camera``; relative paths are relative to the listing's folder."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: camera listing not found.")
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        else:
            rows = yaml.safe_load(path.read_text())
            rows = rows.get("cameras", rows) if isinstance(rows, dict) else rows
    except (yaml.YAMLError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot be parsed ({exc}).") from None
    if not isinstance(rows, list) or not rows:
        raise DatasetError(f"{path}: expected a list of cameras, each with video, tracks and camera.")
    cameras = []
    for n, row in enumerate(rows, 1):
        try:
            cameras.append(CameraFootage(path.parent / str(row["video"]).strip(), path.parent / str(row["tracks"]).strip(),
                                         int(row["camera"])))
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{path}: entry {n} ({row!r}) needs video, tracks and an integer camera.") from None
    return cameras


def sample_track_boxes(boxes: list[Box], stride: int) -> tuple[list[Box], int]:
    """(boxes to crop, boxes left between sampled frames): per track, frames at least ``stride`` apart."""
    by_track: dict[int, list[Box]] = {}
    for b in boxes:
        by_track.setdefault(b.track, []).append(b)
    taken, between = [], 0
    for track_boxes in by_track.values():
        last = None
        for b in sorted(track_boxes, key=lambda b: b.frame):
            if last is None or b.frame >= last + stride:
                taken.append(b)
                last = b.frame
            else:
                between += 1
    return taken, between


def clip_box(b: Box, width: int, height: int) -> tuple[int, int, int, int, bool] | None:
    """(x0, y0, x1, y1, clipped) in pixels, or None when no pixel of the box lies in the frame."""
    x0, y0 = round(b.left), round(b.top)
    x1, y1 = round(b.left + b.width), round(b.top + b.height)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    return cx0, cy0, cx1, cy1, (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)


def _read_manifest_rows(manifest: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not manifest.is_file():
        return ["path", "camid", "frame", "sequence", "track"], []
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        if "path" not in header or "camid" not in header or any(h not in MANIFEST_COLUMNS for h in header):
            raise DatasetError(f"{manifest}: an existing manifest with header {header}; expected columns of "
                               f"{list(MANIFEST_COLUMNS)}. Fix: choose another --out folder.")
        rows = list(reader)
    for col in ("frame", "sequence", "track"):
        if col not in header:
            header.append(col)
    return header, rows


def _write_manifest(manifest: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, header, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    atomic_write(manifest, write)


def _video_key(video: Path) -> dict[str, object]:
    return {"video": str(video.resolve()), "bytes": video.stat().st_size}


def parse_stride(stride: int | float | str) -> tuple[float, str]:
    """``stride`` as (amount, unit): "0.4s" -> (0.4, "s"), 10 or "10" -> (10, "frames")."""
    text = str(stride).strip().lower()
    unit = "s" if text.endswith("s") else "frames"
    try:
        amount = float(text[:-1] if unit == "s" else text)
    except ValueError:
        amount = -1.0
    if amount <= 0 or (unit == "frames" and amount != int(amount)):
        raise DatasetError(f"--stride {stride!r}: give seconds (e.g. 0.4s) or a whole number of frames (e.g. 10).")
    return amount, unit


def stride_in_frames(stride: int | float | str, video: Path) -> int:
    """``stride`` in ``video``'s frames (seconds are converted with its frame rate)."""
    amount, unit = parse_stride(stride)
    if unit == "frames":
        return int(amount)
    fps = video_fps(video)
    if fps is None:
        raise DatasetError(f"{video}: the video does not state its frame rate, so --stride {stride} (seconds) "
                           "cannot be turned into frames. Fix: give --stride in frames (e.g. --stride 10).")
    return max(1, round(amount * fps))


def cut_crops(cameras: list[CameraFootage], out: str | Path, stride: int | str = DEFAULT_STRIDE,
              min_height: int = 40, quality: int = 95) -> CropResult:
    """Cut every camera's crops into ``out`` (appending to what is there); see the module docstring."""
    parse_stride(stride)
    if min_height < 1:
        raise DatasetError(f"--min-height {min_height} must be at least 1.")
    seen: dict[int, Path] = {}
    for cam in cameras:
        if cam.camera in seen:
            raise DatasetError(f"camera {cam.camera} is listed twice ({seen[cam.camera]} and {cam.video}). "
                               "Fix: give each camera one line per call; add another day's video in a later call.")
        seen[cam.camera] = cam.video
        for p, what in ((cam.video, "video"), (cam.tracks, "track file")):
            if not p.is_file():
                raise DatasetError(f"{p}: {what} of camera {cam.camera} not found. Fix: check the path.")
    boxes = {cam.camera: read_tracks(cam.tracks) for cam in cameras}  # every track file checked before any work
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST_NAME
    sources_file = out / SOURCES_NAME
    sources = json.loads(sources_file.read_text()) if sources_file.is_file() else []
    result = CropResult(out, manifest)
    for cam in cameras:
        header, rows = _read_manifest_rows(manifest)
        key = _video_key(cam.video)
        if any(s["camera"] == cam.camera and s["video"] == key["video"] and s["bytes"] == key["bytes"]
               for s in sources):
            result.cameras.append(CutSummary(cam.camera, str(cam.video), status="already cut"))
            continue
        used = [int(r["sequence"] or 0) for r in rows if int(r["camid"]) == cam.camera] + \
               [s["sequence"] for s in sources if s["camera"] == cam.camera]
        summary = CutSummary(cam.camera, str(cam.video), sequence=max(used, default=0) + 1,
                             stride_frames=stride_in_frames(stride, cam.video))
        new_rows = _cut_camera(cam, boxes[cam.camera], out, summary, summary.stride_frames, min_height, quality)
        _write_manifest(manifest, header, rows + new_rows)
        sources.append({**key, "camera": cam.camera, "sequence": summary.sequence, "tracks": str(cam.tracks),
                        "stride": str(stride), "min_height": min_height, "summary": asdict(summary)})
        atomic_write(sources_file, lambda tmp: Path(tmp).write_text(json.dumps(sources, indent=2) + "\n"))
        result.cameras.append(summary)
    return result


def _cut_camera(cam: CameraFootage, boxes: list[Box], out: Path, summary: CutSummary, stride: int, min_height: int,
                quality: int) -> list[dict[str, str]]:
    """Write one camera's crops into a staging folder, then move it into place; return its manifest rows."""
    summary.boxes, summary.tracks = len(boxes), len({b.track for b in boxes})
    taken, summary.skipped_between = sample_track_boxes(boxes, stride)
    by_frame: dict[int, list[Box]] = {}
    for b in taken:
        by_frame.setdefault(b.frame, []).append(b)
    name = f"c{cam.camera}s{summary.sequence}"
    final, staging = out / "images" / name, out / "images" / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rows, decoded = [], 0
    try:
        for number, image in iter_frames(cam.video, max(by_frame, default=0)):
            decoded = number
            for b in by_frame.get(number, ()):
                box = clip_box(b, image.shape[1], image.shape[0])
                if box is None:
                    summary.outside += 1
                    continue
                x0, y0, x1, y1, clipped = box
                if y1 - y0 < min_height:
                    summary.too_small += 1
                    continue
                file = f"{name}_t{b.track:06d}_f{b.frame:07d}.jpg"
                Image.fromarray(image[y0:y1, x0:x1]).save(staging / file, quality=quality)
                summary.crops += 1
                summary.clipped += int(clipped)
                rows.append({"path": f"images/{name}/{file}", "camid": str(cam.camera), "frame": str(b.frame),
                             "sequence": str(summary.sequence), "track": str(b.track)})
        summary.beyond_video = sum(len(v) for f, v in by_frame.items() if f > decoded)
        if final.exists():
            shutil.rmtree(final)  # left by a call that died before its manifest was written: not in the manifest
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return rows
