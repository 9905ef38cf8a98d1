"""Read a tracker's output in the MOTChallenge text format: ``frame,id,left,top,width,height,conf,...``.

Frames count from 1, as in MOTChallenge files and the trackers that write them (BoxMOT, FairMOT,
ByteTrack's ``--save-txt``). Only the first six fields are used; separators may be commas or
whitespace. A malformed line is an error naming the file and line, never a silent skip: a
truncated file means a tracker run went wrong and the user should know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from progreid.errors import DatasetError


@dataclass(frozen=True)
class Box:
    frame: int    # 1-based frame number in the video
    track: int    # the tracker's id
    left: float
    top: float
    width: float
    height: float


def read_tracks(path: str | Path) -> list[Box]:
    """Every box of ``path``, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: track file not found. Fix: check the tracks path (MOTChallenge text, "
                           "one 'frame,id,left,top,width,height,conf,...' line per box).")
    boxes = []
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.replace(",", " ").split()
            try:
                if len(fields) < 6:
                    raise ValueError("fewer than 6 fields")
                values = [float(v) for v in fields[:6]]
                if not all(math.isfinite(v) for v in values):
                    raise ValueError("a value that is not a finite number (nan or inf)")
                frame, track = int(values[0]), int(values[1])
                left, top, width, height = values[2:6]
                if frame < 1:
                    raise ValueError(f"frame {frame} < 1 (MOTChallenge frames count from 1)")
            except ValueError as exc:
                raise DatasetError(f"{path}:{lineno}: malformed track line {text[:80]!r} ({exc}). Expected "
                                   "MOTChallenge text: frame,id,left,top,width,height,conf,... "
                                   "Fix: repair or remove that line.") from None
            boxes.append(Box(frame, track, left, top, width, height))
    return boxes
