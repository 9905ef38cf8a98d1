"""Manifests of camera networks unlike the benchmark datasets, derived from them (no image is copied):

    python benchmarks/derived_datasets.py frames 5 ../shared/data/market1501-mini runs/market_frames_x5
        every frame number x5 (the same footage at 5x the frame rate, or crops cut 5x further apart)
    python benchmarks/derived_datasets.py crops 4 ../shared/data/cuhk03-mini runs/cuhk03_4crops
        at most 4 training crops per person (seeded), query and gallery unchanged

Each writes OUT/manifest.csv (absolute paths; identities kept for the diagnostics only: the
unsupervised methods delete them at load) for ``progreid adapt --target OUT``.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from progreid.data.layouts import MANIFEST_COLUMNS, load_dataset
from progreid.data.records import Record


def write_manifest(out: Path, parts: dict[str, list[Record]]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "manifest.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        for split, records in parts.items():
            for r in records:
                w.writerow([str(Path(r.path).resolve()), r.camid, r.pid, "" if r.frame is None else r.frame,
                            r.sequence, "" if r.track is None else r.track, split])
    return path


def scale_frames(records: list[Record], factor: int) -> list[Record]:
    return [Record(r.path, r.pid, r.camid, r.sequence, None if r.frame is None else r.frame * factor, r.track) for r in records]


def at_most_per_id(records: list[Record], n: int, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    by_id: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_id[r.pid].append(i)
    keep = sorted(j for idx in by_id.values() for j in rng.choice(idx, size=min(n, len(idx)), replace=False))
    return [records[j] for j in keep]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["frames", "crops"])
    p.add_argument("number", type=int, help="frames: the factor; crops: crops per person")
    p.add_argument("data")
    p.add_argument("out")
    args = p.parse_args()
    split = load_dataset(args.data)
    if args.kind == "frames":
        parts = {k: scale_frames(v, args.number) for k, v in split.parts().items()}
    else:
        parts = {"train": at_most_per_id(split.train, args.number), "query": split.query, "gallery": split.gallery}
    path = write_manifest(Path(args.out), parts)
    n_ids = len({r.pid for r in parts["train"]})
    print(f"{path}: {len(parts['train'])} training crops of {n_ids} people, "
          f"{len(parts['query'])} query, {len(parts['gallery'])} gallery")


if __name__ == "__main__":
    main()
