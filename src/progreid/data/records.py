"""The unit of data: one image crop with what is known about it.

A dataset is a plain list of records per split (torchreid's habit): no class hierarchy,
so a user's own camera network is just another way to build the lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

UNLABELED = -2  # pid of an image whose identity is unknown (never a real id)
DISTRACTOR = 0  # Market-1501: id 0 marks distractors, kept in the gallery as negatives


@dataclass(frozen=True)
class Record:
    """One image. ``frame`` counts within (camid, sequence); ``None`` when unknown. ``track`` is a
    tracker's id within (camid, sequence): crops sharing it are one person whatever their frame gap."""

    path: str
    pid: int
    camid: int
    sequence: int = 0
    frame: int | None = None
    track: int | None = None


@dataclass
class Split:
    """A dataset: train (the unlabeled target, or a labeled source), query and gallery."""

    name: str
    train: list[Record] = field(default_factory=list)
    query: list[Record] = field(default_factory=list)
    gallery: list[Record] = field(default_factory=list)
    camera_names: dict[int, str] = field(default_factory=dict)  # camera id -> the folder it was read from

    def parts(self) -> dict[str, list[Record]]:
        return {"train": self.train, "query": self.query, "gallery": self.gallery}

    @property
    def has_frames(self) -> bool:
        return bool(self.train) and all(r.frame is not None for r in self.train)

    def statistics(self) -> list[tuple[str, int, int, int]]:
        """(part, identities, images, cameras) rows; unlabeled images count no identity."""
        rows = []
        for part, recs in self.parts().items():
            ids = {r.pid for r in recs if r.pid != UNLABELED}
            rows.append((part, len(ids), len(recs), len({r.camid for r in recs})))
        return rows

    def format_statistics(self) -> str:
        lines = [f"Dataset {self.name}", f"  {'subset':<8} {'ids':>6} {'images':>8} {'cameras':>8}"]
        for part, n_ids, n_img, n_cam in self.statistics():
            lines.append(f"  {part:<8} {n_ids:>6} {n_img:>8} {n_cam:>8}")
        if self.camera_names:
            lines.append("  cameras: " + ", ".join(f"{i}={n}" for i, n in sorted(self.camera_names.items())))
        cams = {r.camid for r in self.train}
        if len(cams) == 1:
            lines.append("  one camera: camera-aware steps fall back to one entry per cluster; cross-camera "
                         "diagnostics are skipped (a folder per camera gives them)")
        if self.train and not self.has_frames:
            lines.append("  no frame numbers: tcul/tcc (temporal) cannot run; pul, sul, cc can")
        tracks = sum(r.track is not None for r in self.train)
        if tracks:
            lines.append(f"  tracks: {len({(r.camid, r.sequence, r.track) for r in self.train if r.track is not None})} "
                         f"(from track-id folders, {tracks} crops)")
        if not (self.query and self.gallery):
            lines.append("  no query/gallery: no mAP is measured; `progreid verify` estimates it from a few confirmed matches")
        return "\n".join(lines)


def without_labels(records: Iterable[Record]) -> list[Record]:
    """Delete identities at load (OpenUnReID's habit) so no label can leak into training."""
    return [replace(r, pid=UNLABELED) for r in records]


def relabel(records: Sequence[Record]) -> tuple[list[int], int]:
    """Map raw pids to contiguous class indices 0..C-1 (in sorted-pid order)."""
    pids = sorted({r.pid for r in records})
    index = {p: i for i, p in enumerate(pids)}
    return [index[r.pid] for r in records], len(pids)
