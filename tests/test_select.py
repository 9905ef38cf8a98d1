from dataclasses import replace

import numpy as np
import pytest

from progreid.data.records import UNLABELED, Record
from progreid.errors import ProgReIDError
from progreid.select import center_samples, select_all, select_similarity, select_temporal


def test_similarity_selection_on_hand_made_features():
    # cluster 0 around (1, 0); cluster 1 around (0, 1)
    feats = np.array([[1.0, 0.0], [0.95, 0.05], [0.6, 0.8], [0.0, 1.0], [0.1, 0.99], [0.9, 0.1]], np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    centers = np.array([[0.85, 0.28], [0.33, 0.7]], np.float32)
    idx = center_samples(feats, labels, centers, "euclidean")
    assert idx.tolist() == [1, 4]  # nearest members to each centroid
    sel = select_similarity(feats, labels, centers, 0.85)
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    expected = [cos(feats[i], feats[idx[labels[i]]]) > 0.85 for i in range(6)]
    expected[1] = expected[4] = True
    assert sel.reliable.tolist() == expected == [True, True, False, True, True, False]


def test_every_cluster_keeps_its_center_even_with_an_impossible_threshold():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((30, 5)).astype(np.float32)
    labels = np.arange(30) % 5
    centers = np.stack([feats[labels == k].mean(0) for k in range(5)])
    sel = select_similarity(feats, labels, centers, 1.1)
    assert sel.reliable.sum() == 5 and set(labels[sel.reliable]) == set(range(5))
    assert select_all(feats, labels, centers).reliable.all()


def rec(cam: int, seq: int, frame: int | None) -> Record:
    return Record("x.jpg", UNLABELED, cam, seq, frame)


def test_temporal_selection_respects_camera_sequence_and_window():
    center = np.array([[1.0, 0.0]], np.float32)
    # all in cluster 0. Camera 1: the most central sample (index 0) is at frame 500 of sequence 1.
    feats = np.array([[1, 0], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]], np.float32)
    records = [rec(1, 1, 500), rec(1, 1, 580), rec(1, 1, 601), rec(1, 2, 500),  # seq 2: counter restarted
               rec(2, 1, 9000), rec(2, 1, 9100)]  # camera 2 has its own temporary center (index 4)
    labels = np.zeros(6, np.int64)
    sel = select_temporal(feats, labels, center, records, 100)
    assert sel.reliable.tolist() == [True, True, False, False, True, True]
    sel = select_temporal(feats, labels, center, records, 50)
    assert sel.reliable.tolist() == [True, False, False, False, True, False]


def test_temporal_selection_keeps_the_head_tracks_crops_at_any_frame_gap():
    center = np.array([[1.0, 0.0]], np.float32)
    feats = np.array([[1, 0], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], np.float32)
    records = [replace(rec(1, 1, 500), track=7), replace(rec(1, 1, 5000), track=7),  # the head's track, far on
               replace(rec(1, 1, 520), track=8), rec(1, 1, 530)]  # another track, and no track, both near
    sel = select_temporal(feats, np.zeros(4, np.int64), center, records, 100)
    assert sel.reliable.tolist() == [True, True, True, True] and sel.info["reliable_by_track_only"] == 1
    assert select_temporal(feats, np.zeros(4, np.int64), center, records, 10).reliable.tolist() == [True, True, False, False]


def test_temporal_selection_without_frames_names_the_field_and_the_alternatives():
    with pytest.raises(ProgReIDError, match=r"frame.*sul.*pul"):
        select_temporal(np.ones((2, 2), np.float32), np.zeros(2, np.int64), np.ones((1, 2), np.float32),
                        [rec(1, 0, None), rec(1, 0, None)], 100)


def test_the_three_similarity_references_on_features_where_they_disagree():
    """Cluster 0's center (1, 0) is not its center sample (0.8, 0.6): SUL's rule (cos to the
    center) and PUL's (cos to the center sample) keep different samples; PUL's released code keeps
    a sample near *another* cluster's center sample too, with its own label."""
    s = np.sqrt(0.5)
    feats = np.array([[0.8, 0.6], [0.8, -0.6], [s, s], [0.0, 1.0], [0.05, 1.0]], np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    centers = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    # center samples by cosine: cluster 0 -> sample 0 (tie with 1, first wins), cluster 1 -> sample 3
    idx = center_samples(feats, labels, centers, "cosine")
    assert idx.tolist() == [0, 3]
    sul = select_similarity(feats, labels, centers, 0.79, "cosine", reference="center")
    assert sul.reliable.tolist() == [True, True, False, True, True]  # cos to (1,0): .8 .8 .71; to (0,1): 1 .999
    pul = select_similarity(feats, labels, centers, 0.79, "cosine", reference="center_sample")
    assert pul.reliable.tolist() == [True, False, True, True, True]  # to (0.8, 0.6): 1, .28, .99
    feats2 = feats.copy()
    feats2[2] = [0.3, 0.954]  # a cluster-0 member: cos 0.81 to its center sample, 0.954 to cluster 1's
    a = select_similarity(feats2, labels, centers, 0.9, "cosine", reference="any_center_sample")
    o = select_similarity(feats2, labels, centers, 0.9, "cosine", reference="center_sample")
    assert a.reliable[2] and not o.reliable[2]  # kept through another cluster's center sample ...
    assert labels[2] == 0  # ... and it trains with its own k-means label (the loop uses labels as given)
    with pytest.raises(ProgReIDError, match="select.reference"):
        select_similarity(feats, labels, centers, 0.5, reference="median")
