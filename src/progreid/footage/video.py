"""Decode a video's frames in order with PyAV (FFmpeg's own decoders, in a pinned wheel).

Frames are numbered from 1 to match MOTChallenge track files. Decoding stops after the last frame
anyone needs, so cutting the first minute of a long video reads only that minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from progreid.errors import DatasetError


def _av():
    try:
        import av
    except ImportError:
        raise DatasetError("reading videos needs PyAV. Fix: pip install 'progreid[video]'.") from None
    return av


def _open(path: Path):
    """The container of ``path``; a file FFmpeg cannot open is a DatasetError naming it and the fix."""
    av = _av()
    if not path.is_file():
        raise DatasetError(f"{path}: video not found. Fix: check the video path.")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise DatasetError(f"{path}: cannot be opened as a video ({exc}). Fix: re-encode it (e.g. ffmpeg -i in "
                           "-c:v libx264 out.mp4) or drop it from the list.") from None
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):  # FFmpeg reads a JPEG or PNG as a one-frame "video"
        container.close()
        raise DatasetError(f"{path}: is a still image ({fmt}), not a video. Fix: pass the camera's video file "
                           "(.mp4, .avi, .mkv ...); crops you already have are a dataset as they are "
                           "(`progreid datasets --data FOLDER`).")
    return container


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise DatasetError(f"{path}: holds no video stream. Fix: pass the camera's video file.")
    return container.streams.video[0]


def video_fps(path: str | Path) -> float | None:
    """The video stream's frame rate (frames per second), or None where the container does not say."""
    with _open(Path(path)) as container:
        stream = _video_stream(container, Path(path))
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate and float(rate) > 0 else None


def iter_frames(path: str | Path, last: int) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number from 1, RGB uint8 array (H, W, 3)) for frames 1..``last`` (fewer if the video ends)."""
    av = _av()
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        number = 0
        try:
            for frame in container.decode(stream):
                number += 1
                yield number, frame.to_ndarray(format="rgb24")
                if number >= last:
                    return
        except av.FFmpegError as exc:
            raise DatasetError(f"{path}: decoding failed after frame {number} ({exc}). Fix: re-encode or "
                               "replace the video; crops of cameras already finished are kept.") from None
