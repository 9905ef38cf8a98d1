"""The crops a person is asked about, fixed once per ``--out`` so answers stay comparable.

Queries are drawn at random (seeded), stratified over cameras, so that the estimate is unbiased for
the crops' population; a query's candidates come from *other* cameras (a re-ID model is for crossing
cameras: a same-camera neighbour is usually the same track's next crop). With one camera the
candidates come from other sequences, then from other tracks; with neither, only the query itself is
left out, which the session says. With several models the top-k lists are merged and shuffled, so
the page never says which model found a crop (a blind, paired comparison).

``--simulate`` on a labeled benchmark folder (query/ + bounding_box_test/) draws queries from the
query split and candidates from the gallery under the Market-1501 protocol (same person in the same
camera and junk left out), so its estimate is comparable with ``progreid evaluate``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from progreid.data.records import UNLABELED, Record, Split
from progreid.errors import ProgReIDError

SESSION_FILE = "session.json"
JUNK = -1  # Market-1501's junk images: never a candidate


@dataclass
class Query:
    query: int                    # index into Session.images
    shown: list[int]              # the merged, shuffled candidates the page shows
    ranked: list[list[int]]       # per model: its top-k candidates, best first


@dataclass
class Session:
    data: str
    mode: str                     # "crops" (unlabeled crops) or "benchmark" (query vs gallery, Market protocol)
    models: list[str]             # the weights (or run folders) compared, in --weights order
    top_k: int
    seed: int
    exclusion: str                # what a query's candidates leave out
    images: list[str]
    queries: list[Query] = field(default_factory=list)

    def save(self, folder: Path) -> Path:
        from progreid.models.checkpoint import atomic_write

        path = Path(folder) / SESSION_FILE
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(asdict(self))))
        return path


def load_session(folder: str | Path) -> Session:
    path = Path(folder) / SESSION_FILE
    if not path.is_file():
        raise ProgReIDError(f"{folder}: no {SESSION_FILE}, so not a verify folder. Fix: start one with "
                            "`progreid verify --data DIR --weights W --out DIR`.")
    try:
        raw = json.loads(path.read_text())
        raw["queries"] = [Query(**q) for q in raw["queries"]]
        return Session(**raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise ProgReIDError(f"{path}: not a verify session progreid can read ({exc}). Fix: use another --out; "
                            "the answers in verify.jsonl beside it are kept.") from None


def stratified_sample(cameras: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices drawn without replacement, each camera's share proportional to its crops (largest
    remainders), in random order."""
    values, counts = np.unique(cameras, return_counts=True)
    n = min(n, len(cameras))
    quota = counts * n / counts.sum()
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: n - take.sum()]:
        take[i] += 1
    picked = [rng.choice(np.flatnonzero(cameras == cam), t, replace=False) for cam, t in zip(values, take) if t]
    out = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    return rng.permutation(out)


def candidate_mask(q: Record, pool: list[Record], mode: str, exclusion: str) -> np.ndarray:
    """True where a pool crop may be shown as a candidate for query ``q``."""
    cams = np.array([r.camid for r in pool])
    if mode == "benchmark":  # Market-1501: drop the same person in the same camera, and junk
        pids = np.array([r.pid for r in pool])
        return ~(((pids == q.pid) & (cams == q.camid)) | (pids == JUNK))
    if exclusion == "camera":
        return cams != q.camid
    if exclusion == "sequence":
        return np.array([(r.camid, r.sequence) != (q.camid, q.sequence) for r in pool])
    if exclusion == "track":
        return np.array([(r.camid, r.sequence, r.track) != (q.camid, q.sequence, q.track) for r in pool])
    return np.array([r.path != q.path for r in pool])


def choose_exclusion(records: list[Record]) -> str:
    """The strictest separation the crops allow: camera, else sequence, else track, else only itself."""
    if len({r.camid for r in records}) > 1:
        return "camera"
    if len({(r.camid, r.sequence) for r in records}) > 1:
        return "sequence"
    if any(r.track is not None for r in records) and len({r.track for r in records}) > 1:
        return "track"
    return "self"


EXCLUSION_NOTE = {
    "camera": "candidates come from other cameras",
    "sequence": "one camera: candidates come from its other sequences",
    "track": "one camera and sequence: candidates come from other tracks",
    "self": "one camera, no sequences or tracks: candidates are any other crop, so near-duplicates of the query "
            "rank high (a folder per camera avoids that)",
}


def query_and_pool(split: Split, simulate: bool, train_crops: bool = False) -> tuple[list[Record], list[Record], str]:
    """(query candidates, candidate pool, mode). ``train_crops``: the train split's crops (what adapt
    trains on) even where a labeled test split exists."""
    if simulate and split.query and split.gallery and not train_crops:
        return split.query, split.gallery, "benchmark"
    crops = split.train or [*split.query, *split.gallery]
    if not crops:
        raise ProgReIDError(f"{split.name}: no crops to verify on. Fix: point --data at a folder of crops.")
    return crops, crops, "crops"


def rank_candidates(features: list[tuple[np.ndarray, np.ndarray]], queries: np.ndarray, masks: list[np.ndarray],
                    top_k: int) -> list[list[list[int]]]:
    """Per query, per model: the top-k pool indices by cosine similarity among the allowed candidates.
    ``features``: per model (query-side features, pool features), L2-normalised."""
    out = []
    for qi, (q, mask) in enumerate(zip(queries, masks)):
        allowed = np.flatnonzero(mask)
        lists = []
        for qf, pf in features:
            sim = pf[allowed] @ qf[q]
            order = np.argsort(-sim, kind="stable")[:top_k]
            lists.append([int(i) for i in allowed[order]])
        out.append(lists)
    return out


def merge_shown(ranked: list[list[int]], rng: np.random.Generator) -> list[int]:
    """The union of the models' lists in random order: the page cannot tell which model found what."""
    union = sorted({i for lst in ranked for i in lst})
    return [int(i) for i in rng.permutation(union)] if union else []


def valid_pid(pid: int) -> bool:
    return pid not in (UNLABELED, JUNK)
