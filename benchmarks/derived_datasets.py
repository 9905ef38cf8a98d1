"""Manifests of camera networks unlike the benchmark datasets, derived from them (no image is copied):

    python benchmarks/derived_datasets.py frames 5 ../shared/data/market1501-mini runs/market_frames_x5
        every frame number x5 (the same footage at 5x the frame rate, or crops cut 5x further apart)
    python benchmarks/derived_datasets.py crops 4 ../shared/data/cuhk03-mini runs/cuhk03_4crops
        at most 4 training crops per person (seeded), query and gallery unchanged

    python benchmarks/derived_datasets.py suite runs/networks
        the camera networks unlike market1501-mini that tcc and cc are checked on (issue 27), each a
        folder under OUT: market_every2 / market_every4 (every 2nd / 4th crop of each track: sparser
        sampling), market_frames_third (frame numbers / 3: denser sampling in frames), market_cams2 /
        market_cams3 (cameras 1-2 / 1-3 only, test split included), market_long_visits (the people with at
        least 5 crops in each of at least 2 cameras: ~8 crops per camera visit, 21 per person, as
        DukeMTMC-reID's), synthetic_long (a synthetic network, 8 cameras, 8-16 crops per visit), and
        footage_tracks (synthetic footage cut by `progreid crops`: tracker tracks, 3 cameras)

Each writes OUT/manifest.csv (absolute paths; identities kept for the diagnostics only: the
unsupervised methods delete them at load) for ``progreid adapt --target OUT``. A "track" of
market1501-mini is one person's crops in one camera and sequence, in frame order (the identities are
read to build the network, never by a method).
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter, defaultdict
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


def every_nth_of_track(records: list[Record], n: int) -> list[Record]:
    """The 1st, (n+1)th, ... crop of each (person, camera, sequence) run in frame order."""
    tracks: dict[tuple[int, int, int], list[Record]] = defaultdict(list)
    for r in records:
        tracks[(r.pid, r.camid, r.sequence)].append(r)
    kept = {id(r) for t in tracks.values() for r in sorted(t, key=lambda r: r.frame)[::n]}
    return [r for r in records if id(r) in kept]


def long_visits(records: list[Record], at_least: int = 5, visits: int = 2) -> list[Record]:
    """The crops of the people with at least ``at_least`` crops in each of at least ``visits`` cameras
    (only those cameras' crops)."""
    count = Counter((r.pid, r.camid) for r in records)
    long = {k for k, v in count.items() if v >= at_least}
    people = {p for p, n in Counter(p for p, _ in long).items() if n >= visits}
    return [r for r in records if r.pid in people and (r.pid, r.camid) in long]


def suite(data: Path, out: Path) -> None:
    split = load_dataset(data)
    parts = split.parts()
    cams = lambda recs, keep: [r for r in recs if r.camid in keep]  # noqa: E731
    nets = {
        "market_every2": {**parts, "train": every_nth_of_track(split.train, 2)},
        "market_every4": {**parts, "train": every_nth_of_track(split.train, 4)},
        "market_frames_third": {k: [Record(r.path, r.pid, r.camid, r.sequence, r.frame // 3, r.track) for r in v]
                                for k, v in parts.items()},
        "market_cams2": {k: cams(v, {1, 2}) for k, v in parts.items()},
        "market_cams3": {k: cams(v, {1, 2, 3}) for k, v in parts.items()},
        "market_long_visits": {**parts, "train": long_visits(split.train)},
    }
    for name, net in nets.items():
        report(write_manifest(out / name, net), net)
    synthetic_long(out / "synthetic_long")
    footage_tracks(out / "footage_tracks")


def synthetic_long(out: Path) -> None:
    """A synthetic network (``progreid synth``'s generator) with long camera visits, at 128x64."""
    from progreid.data.synth import generate_domain

    generate_domain(out, "target", num_ids=240, num_cameras=8, images_per_visit=(8, 16), seed=3, size=(128, 64))
    report(out, load_dataset(out).parts())


def footage_tracks(out: Path) -> None:
    """``progreid synth --footage`` cut by ``progreid crops``: tracker tracks in a manifest; the synthetic
    tracker's id is the true person, kept as pid (diagnostics and the test split: every other person)."""
    from progreid.data.layouts import load_manifest
    from progreid.footage.crops import cut_crops, read_listing
    from progreid.footage.synth import write_footage

    listing = write_footage(out / "footage", cameras=3, people=60, person_frames=48, seed=5)
    cut_crops(read_listing(listing), out / "crops", stride=4)
    crops = load_manifest(out / "crops").train
    people = sorted({r.track for r in crops})
    test = set(people[1::2])
    train = [Record(r.path, r.track, r.camid, r.sequence, r.frame, r.track) for r in crops if r.track not in test]
    query, gallery, seen = [], [], set()
    for r in sorted((r for r in crops if r.track in test), key=lambda r: (r.track, r.camid, r.frame)):
        rec = Record(r.path, r.track, r.camid, r.sequence, r.frame, r.track)
        (gallery if (r.track, r.camid) in seen else query).append(rec)
        seen.add((r.track, r.camid))
    net = {"train": train, "query": query, "gallery": gallery}
    report(write_manifest(out, net), net)


def report(path: Path, parts: dict[str, list[Record]]) -> None:
    n_ids = len({r.pid for r in parts["train"]})
    print(f"{path}: {len(parts['train'])} training crops of {n_ids} people "
          f"({len(parts['train']) / max(n_ids, 1):.1f} each), {len({r.camid for r in parts['train']})} cameras, "
          f"{len(parts['query'])} query, {len(parts['gallery'])} gallery")


MARKET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "market1501-mini"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="kind", required=True)
    for kind, what in (("frames", "the factor"), ("crops", "crops per person")):
        one = sub.add_parser(kind)
        one.add_argument("number", type=int, help=what)
        one.add_argument("data")
        one.add_argument("out")
    many = sub.add_parser("suite")
    many.add_argument("out")
    many.add_argument("--data", default=str(MARKET))
    args = p.parse_args()
    if args.kind == "suite":
        suite(Path(args.data), Path(args.out))
        return
    split = load_dataset(args.data)
    if args.kind == "frames":
        parts = {k: scale_frames(v, args.number) for k, v in split.parts().items()}
    else:
        parts = {"train": at_most_per_id(split.train, args.number), "query": split.query, "gallery": split.gallery}
    report(write_manifest(Path(args.out), parts), parts)


if __name__ == "__main__":
    main()
