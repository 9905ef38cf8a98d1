"""Temporal continuity from unlabeled crops: the calibrated frame window and the must-link rule."""

from __future__ import annotations

from dataclasses import replace
from unittest.mock import patch

import numpy as np
import scipy.sparse as sp

from progreid.data.records import UNLABELED, Record
from progreid.cluster.density import LINKED, with_links
from progreid.temporal import TRACK_STEPS, blend_along_links, calibrate_frame_window, must_links


def tracks(spacings: dict[int, int], people: int = 6, crops: int = 5, seed: int = 0):
    """Each camera sees each person once, as a track of ``crops`` crops ``spacing`` frames apart whose
    look drifts gradually (pose, light); tracks are far apart in time, people far apart in looks."""
    rng = np.random.default_rng(seed)
    looks = rng.standard_normal((people, 32)) * 3
    feats, recs = [], []
    for cam, spacing in spacings.items():
        for p in range(people):
            start = 10_000 * p + 137 * cam
            drift = np.cumsum(0.3 * rng.standard_normal((crops, 32)), axis=0)
            for c in range(crops):
                feats.append(looks[p] + drift[c])
                recs.append(Record(f"c{cam}_p{p}_{c}.jpg", UNLABELED, cam, 0, start + spacing * c))
    return np.array(feats, np.float32), recs


def test_frame_window_is_calibrated_per_camera_from_the_crop_spacing():
    feats, recs = tracks({1: 10, 2: 40})
    assert calibrate_frame_window(feats, recs) == {1: TRACK_STEPS * 10, 2: TRACK_STEPS * 40}
    # the same footage at 5x the frame rate: the window follows
    fast = [Record(r.path, r.pid, r.camid, r.sequence, r.frame * 5) for r in recs]
    assert calibrate_frame_window(feats, fast) == {1: TRACK_STEPS * 50, 2: TRACK_STEPS * 200}


def test_where_most_crops_are_single_sightings_the_window_stops_where_chance_gaps_begin():
    """Sparse sampling (issue 27: every 4th crop of a Market-1501 track): 6 people tracked 10 frames apart
    among 60 passers-by seen once, at random frames and looks. Most crops' nearest neighbours are then
    anyone, and 4x the median gap spans the recording (there must-links were 53% right); crops that look
    different are as often that close, so the window is cut back to where they are not: links 88% right
    against 54% with the uncut window (on market_every4: 96% against 53%)."""
    feats, recs = tracks({1: 10}, people=6, crops=5)
    rng = np.random.default_rng(1)
    passers = rng.standard_normal((60, feats.shape[1])).astype(np.float32) * 3
    frames = rng.integers(0, 60_000, 60)
    recs = recs + [Record(f"c1_p{100 + k}_0.jpg", UNLABELED, 1, 0, int(f)) for k, f in enumerate(frames)]
    feats = np.concatenate([feats, passers])
    window = calibrate_frame_window(feats, recs)
    with patch("progreid.temporal.CHANCE_SHARE", 1.0):  # no cut: 4x the median nearest-neighbour gap
        uncut = calibrate_frame_window(feats, recs)
    assert 10 <= window[1] < uncut[1] / 5
    person = np.array([int(r.path.split("_p")[1].split("_")[0]) for r in recs])
    i, j = must_links(feats, recs, window, k=3)
    cut_right = (person[i] == person[j]).mean()
    i, j = must_links(feats, recs, uncut, k=3)
    assert cut_right > 0.8 and (person[i] == person[j]).mean() < 0.6  # here 0.88 against 0.54


def test_must_links_need_camera_sequence_window_and_mutual_neighbours():
    feats, recs = tracks({1: 10}, people=3, crops=4)
    i, j = must_links(feats, recs, {1: 40}, k=3)
    pairs = set(zip(i.tolist(), j.tolist()))
    same_person = {(a, b) for a in range(12) for b in range(a + 1, 12) if a // 4 == b // 4}
    assert pairs and pairs <= same_person  # only within a track
    assert len(must_links(feats, recs, {1: 5}, k=3)[0]) == 0  # crops 10 frames apart: outside a 5-frame window
    other_seq = [Record(r.path, r.pid, r.camid, n % 2, r.frame) for n, r in enumerate(recs)]
    i2, j2 = must_links(feats, other_seq, {1: 40}, k=3)
    assert all(other_seq[a].sequence == other_seq[b].sequence for a, b in zip(i2, j2)) and len(i2) < len(i)
    # a crop whose nearest crops do not list it back (an odd look: occlusion, a detector error) gets no link
    odd = feats.copy()
    odd[0] = 50 * np.random.default_rng(1).standard_normal(32)
    i3, j3 = must_links(odd, recs, {1: 10_000}, k=3)
    assert 0 not in set(i3.tolist()) | set(j3.tolist()) and len(i3) > 0


def test_linked_pairs_get_a_stored_near_zero_distance():
    d = sp.csr_matrix(np.array([[0, 0.7, 0], [0.7, 0, 0.9], [0, 0.9, 0]], np.float32))
    out = with_links(d, np.array([0, 0]), np.array([2, 2])).toarray()  # (0, 2) listed twice, was not stored
    assert out[0, 2] == out[2, 0] == np.float32(LINKED) and out[0, 1] == np.float32(0.7) and out[1, 2] == np.float32(0.9)


def with_tracks(recs: list[Record]) -> list[Record]:
    """The same crops with the tracker's id: one track per (camera, person) of ``tracks``."""
    return [replace(r, track=int(r.path.split("_p")[1].split("_")[0])) for r in recs]


def test_a_camera_with_tracks_takes_its_window_from_the_gaps_along_them():
    feats, recs = tracks({1: 10, 2: 40}, people=4, crops=6)
    # features that say nothing (noise): only the tracks can tell the spacing
    noise = np.random.default_rng(3).standard_normal(feats.shape).astype(np.float32)
    assert calibrate_frame_window(noise, with_tracks(recs)) == {1: TRACK_STEPS * 10, 2: TRACK_STEPS * 40}


def test_one_tracks_crops_are_linked_whatever_their_frame_gap():
    feats, recs = tracks({1: 500}, people=3, crops=4)  # crops 500 frames apart, a 40-frame window
    assert len(must_links(feats, recs, {1: 40}, k=3)[0]) == 0
    i, j = must_links(feats, with_tracks(recs), {1: 40}, k=3)
    pairs = set(zip(i.tolist(), j.tolist()))
    # every crop reaches its track's first crop, and no link crosses tracks
    assert pairs == {(4 * p, 4 * p + c) for p in range(3) for c in range(1, 4)}


def test_on_frames_x5_a_calibrated_window_keeps_every_decision_and_a_fixed_one_does_not():
    """TCUL's selection on the same crops with frame numbers x5 (the x5 copy of issue 12): identical with
    `auto`; with a fixed window, x5 frames make the decisions a 5x smaller window makes."""
    from progreid.select import select_temporal

    feats, recs = tracks({1: 10, 2: 40}, people=4, crops=6)
    fast = [replace(r, frame=r.frame * 5) for r in recs]
    labels = np.array([int(r.path.split("_p")[1][0]) for r in recs])
    centers = np.stack([feats[labels == k].mean(0) for k in range(4)])
    auto = select_temporal(feats, labels, centers, recs, calibrate_frame_window(feats, recs)).reliable
    auto_fast = select_temporal(feats, labels, centers, fast, calibrate_frame_window(feats, fast)).reliable
    assert np.array_equal(auto, auto_fast) and auto.mean() > 0.8
    fixed = select_temporal(feats, labels, centers, recs, 100).reliable
    fixed_fast = select_temporal(feats, labels, centers, fast, 100).reliable
    assert np.array_equal(fixed_fast, select_temporal(feats, labels, centers, recs, 20).reliable)
    assert fixed_fast.sum() < fixed.sum()


def test_blending_along_links_moves_a_crop_toward_its_linked_groups_mean_only():
    x = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 2]], np.float32)  # 0-1-2 linked in a chain, 3 alone
    i, j = np.array([0, 1]), np.array([1, 2])
    out = blend_along_links(x, i, j, 0.5)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    group_mean = unit[:3].sum(0) / np.linalg.norm(unit[:3].sum(0))
    expected = 0.5 * unit[0] + 0.5 * group_mean
    assert np.allclose(out[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(out[3], [0, 0, 1])  # unlinked: its own direction
    assert np.allclose(blend_along_links(x, i, j, 0.0), unit) and np.allclose(np.linalg.norm(out, axis=1), 1)
    assert np.allclose(blend_along_links(x, i, j, 1.0)[:3], group_mean, atol=1e-6)  # all of a group alike


def test_links_as_merge_join_the_clusters_a_track_spans_and_never_split_or_pull_in_outliers():
    """cluster.link_as=merge: a person's track cut by DBSCAN into two clusters becomes one; a link to an
    outlier leaves it out; clusters no link touches keep their crops."""
    from progreid.engine.stages.pseudo_label import merge_linked_clusters

    labels = np.array([0, 0, 1, 1, 2, 2, -1, 3])
    i, j = np.array([1, 3, 6]), np.array([2, 4, 7])  # track 0-1-2-3-4 crosses clusters 0, 1, 2; 6 (an outlier) -> 7
    merged, removed = merge_linked_clusters(labels, i, j)
    assert merged.tolist() == [0, 0, 0, 0, 0, 0, -1, 1] and removed == 2
    same, none = merge_linked_clusters(labels, np.array([0]), np.array([1]))  # within one cluster: nothing to do
    assert same.tolist() == labels.tolist() and none == 0
