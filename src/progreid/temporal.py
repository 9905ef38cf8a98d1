"""Temporal continuity from unlabeled crops: how far apart in frames one person's crops are, and
which pairs of crops are surely one person (TCUL's observation, made exact where it can be).

- ``calibrate_frame_window``: per camera, from the frame gaps between each crop and its nearest
  neighbour in feature space among the crops of its own camera and sequence. Those nearest
  neighbours are mostly the same person's next crop (MSMT17 OSNet features on Market-1501: 92%,
  and ~100% below a 400-frame gap), so the median gap is the camera's crop spacing along a track;
  the window is ``TRACK_STEPS`` of them. Where a camera visit holds one or two crops (every 4th crop
  of a Market-1501 track), most nearest neighbours are other people, the median gap is the
  chance gap of the recording and that window spans it (66,000 frames, must-links 53% right):
  so there the window is cut back to the largest gap at which nearest neighbours are more than
  ``1 / CHANCE_SHARE`` times as common as pairs of crops that look different (issue 27). Both
  scale with the frame rate and the crop sampling: frame numbers x5 give a window x5 and the same
  decisions.
- ``must_links``: pairs in one camera and sequence, within the window, that are mutual k-nearest
  neighbours: 99.8% the same person there (k = 10; BENCHMARKS.md).
- ``blend_along_links``: each crop's feature blended with the mean of its must-linked group: a track's
  average appearance is steadier across cameras than any one crop (cross-camera nearest neighbour
  the same person: 69% -> 74% on Market-1501 at blend 0.5).
- Tracker tracks (a manifest's ``track`` column, written by ``progreid crops``) are this evidence
  made exact: one camera's crops of one track are linked whatever their frame gap, and a camera
  with tracks takes its window from the frame gaps along them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from progreid.data.records import Record

TRACK_STEPS = 4  # a window spans this many crop spacings of a track
CHANCE_SHARE = 0.1  # ... if at most 10% as many unlike pairs as nearest neighbours are that close


def record_arrays(records: list[Record]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cameras, sequences, frames) of ``records`` as int64 arrays; frame -1 where a record has none."""
    cams = np.array([r.camid for r in records], np.int64)
    seqs = np.array([r.sequence for r in records], np.int64)
    frames = np.array([-1 if r.frame is None else r.frame for r in records], np.int64)
    return cams, seqs, frames


def track_groups(records: list[Record]) -> np.ndarray:
    """One integer per record naming its (camera, sequence, track); -1 where the record has no track."""
    keys: dict[tuple[int, int, int], int] = {}
    out = np.full(len(records), -1, np.int64)
    for i, r in enumerate(records):
        if r.track is not None:
            out[i] = keys.setdefault((r.camid, r.sequence, r.track), len(keys))
    return out


def _track_gaps(records: list[Record]) -> dict[int, np.ndarray]:
    """{camera: frame gaps between consecutive crops of one track} for cameras whose crops carry tracks."""
    groups = track_groups(records)
    cams, _, frames = record_arrays(records)
    has = np.flatnonzero((groups >= 0) & (frames >= 0))
    order = has[np.lexsort((frames[has], groups[has]))]
    same = groups[order][1:] == groups[order][:-1]
    gaps = np.diff(frames[order])[same]
    cam_of_gap = cams[order][1:][same]
    return {int(c): gaps[cam_of_gap == c] for c in np.unique(cam_of_gap)}


def calibrate_frame_window(features: np.ndarray, records: list[Record], steps: int = TRACK_STEPS) -> dict[int, int]:
    """{camera: window in frames}; a camera with too few same-sequence pairs gets the median of the others.

    A camera whose crops carry tracks takes the gaps along its tracks (exact); others the gaps to
    each crop's nearest neighbour in feature space within its camera and sequence, the window cut
    back by ``_beyond_chance`` where such gaps are as common between crops that look different."""
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(features, np.float32)), dim=1)
    cams, seqs, frames = record_arrays(records)
    gaps: dict[int, list[np.ndarray]] = {c: [g] for c, g in _track_gaps(records).items() if len(g) >= 10}
    tracked = set(gaps)
    unlike: dict[int, list[np.ndarray]] = {}
    for cam in np.unique(cams):
        if int(cam) in tracked:
            continue
        for seq in np.unique(seqs[cams == cam]):
            members = np.flatnonzero((cams == cam) & (seqs == seq) & (frames >= 0))
            if len(members) < 2:
                continue
            sim = x[members] @ x[members].T
            sim.fill_diagonal_(-2)
            nn = members[sim.argmax(1).numpy()]
            gaps.setdefault(int(cam), []).append(np.abs(frames[members] - frames[nn]))
            unlike.setdefault(int(cam), []).append(_unlike_gaps(sim, frames[members]))
    window = {}
    for cam, g in gaps.items():
        g = np.concatenate(g)
        if len(g) < 10:
            continue
        window[cam] = int(steps * max(np.median(g), 1))
        if cam not in tracked:
            window[cam] = _beyond_chance(window[cam], g, np.concatenate(unlike[cam]))
    fallback = int(np.median(list(window.values()))) if window else 0
    return {int(c): window.get(int(c), fallback) for c in np.unique(cams)}


def _unlike_gaps(sim: torch.Tensor, frames: np.ndarray, per_crop: int = 10) -> np.ndarray:
    """Frame gaps from each crop to ``per_crop`` crops evenly spread over the less similar half of its
    camera and sequence: pairs that are mostly different people, so their gaps are when others pass."""
    order = sim.argsort(1).numpy()[:, 1:]  # ascending; the crop itself (its diagonal is -2) first, dropped
    half = max(len(frames) // 2, 1)
    ranks = np.unique(np.linspace(0, half - 1, min(per_crop, half)).astype(int))
    return np.abs(frames[:, None] - frames[order[:, ranks]]).ravel()


def _beyond_chance(window: int, gaps: np.ndarray, unlike: np.ndarray) -> int:
    """``window``, or where crops that look different are more than ``CHANCE_SHARE`` as often that close
    as nearest neighbours (a nearest neighbour there is as likely anyone in the recording as a track's
    next crop), the largest nearest-neighbour gap (of 101 quantiles) where they are not; 1 if none."""
    g, u = np.sort(gaps), np.sort(unlike)

    def passes(c: float) -> bool:
        return np.searchsorted(u, c, "right") / len(u) <= CHANCE_SHARE * np.searchsorted(g, c, "right") / len(g)

    if passes(window):
        return window
    below = [int(c) for c in np.unique(np.quantile(g, np.linspace(0, 1, 101), method="lower")) if c < window]
    return max([c for c in below if passes(c)] or [1])


def must_links(features: np.ndarray, records: list[Record], window: dict[int, int], k: int = 10,
               chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) with i < j: same camera and sequence, at most ``window[camera]`` frames apart, and each
    among the other's ``k`` nearest neighbours (cosine, over all crops); and every crop of a track
    linked to its track's first crop (one link per crop is enough for DBSCAN to join them)."""
    from progreid.cluster.jaccard import knn

    cams, seqs, frames = record_arrays(records)
    idx, _ = knn(features, k + 1, chunk)
    n = len(idx)
    near = sp.csr_matrix((np.ones(n * (idx.shape[1] - 1), np.int8),
                          (np.repeat(np.arange(n), idx.shape[1] - 1), idx[:, 1:].ravel())), shape=(n, n))
    mutual = near.multiply(near.T).tocoo()  # both directions present
    i, j = mutual.row.astype(np.int64), mutual.col.astype(np.int64)
    win = np.array([window.get(int(c), 0) for c in cams])
    keep = (i < j) & (cams[i] == cams[j]) & (seqs[i] == seqs[j]) & (frames[i] >= 0) & (frames[j] >= 0) \
        & (np.abs(frames[i] - frames[j]) <= win[i])
    ti, tj = _track_links(records)
    pairs = np.unique(np.stack([np.concatenate([i[keep], ti]), np.concatenate([j[keep], tj])], 1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _track_links(records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    groups = track_groups(records)
    has = np.flatnonzero(groups >= 0)
    if not len(has):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = {}
    for i in has:  # ascending, so the first crop seen is the smallest index
        first.setdefault(groups[i], i)
    heads = np.array([first[g] for g in groups[has]], np.int64)
    keep = heads != has
    return heads[keep], has[keep]


def parse_frame_window(value: str) -> int:
    """``select.frame_window`` as a number of frames (``auto`` is resolved by the run context)."""
    from progreid.errors import ProgReIDError

    if not str(value).isdigit():
        raise ProgReIDError(f"select.frame_window {value!r}: use auto or a whole number of frames.")
    return int(value)


def blend_along_links(features: np.ndarray, i: np.ndarray, j: np.ndarray, blend: float) -> np.ndarray:
    """L2-normalised ``(1 - blend) * own + blend * mean of the crop's linked group`` (connected
    components of the links (i, j)), on L2-normalised ``features``; unlinked crops keep their own direction."""
    from scipy.sparse.csgraph import connected_components

    n = len(features)
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    if blend <= 0 or not len(i):
        return x
    groups, group = connected_components(sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    member = sp.csr_matrix((np.ones(n, x.dtype), (group, np.arange(n))), shape=(groups, n))
    sums = np.asarray(member @ x)[group]  # each crop's group sum (a sparse product: linear in N)
    out = (1 - blend) * x + blend * sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return out / np.linalg.norm(out, axis=1, keepdims=True)
