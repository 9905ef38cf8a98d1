"""The label-free over-segmentation signals a density round reports (issue 27's guard), on hand-made
features of people seen by two cameras: a clustering that splits a person by camera leaves a cluster
pair as alike across cameras as one cluster's two cameras are; the clustering by person leaves none;
a track cut in two shows as two clusters per track."""

from __future__ import annotations

import numpy as np

from progreid.evaluation.oversegmentation import oversegmentation_signals


def people_in_two_cameras(seed: int = 0):
    """Five people, 10 crops each in each camera; people 3 and 4 change more between cameras."""
    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((5, 32))
    person = np.repeat(np.arange(5), 20)
    camera = np.tile(np.repeat([0, 1], 10), 5)
    change = np.where(person >= 3, 1.5, 0.5)[:, None] * rng.standard_normal((5, 2, 32))[person, camera]
    x = centers[person] + change + 0.3 * rng.standard_normal((100, 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    track = person * 2 + camera  # one tracker track per person and camera
    return x.astype(np.float32), person, camera, track


def test_a_person_split_by_camera_shows_as_look_alike_cluster_pairs():
    x, person, camera, track = people_in_two_cameras()
    split = np.where(person < 3, person * 2 + camera, person + 3)  # people 0-2 split by camera: 8 clusters
    by_camera = oversegmentation_signals(x, split, camera, track)
    assert by_camera["split_camera_pairs"] == 3
    assert by_camera["clusters_per_track"] == 1.0
    assert oversegmentation_signals(x, person, camera, track)["split_camera_pairs"] == 0


def test_a_track_cut_in_two_and_one_camera_or_no_tracks_say_what_they_can():
    x, person, camera, track = people_in_two_cameras(1)
    cut = person.copy()
    cut[np.flatnonzero(track == 0)[:5]] = 5  # half of one track in a cluster of its own
    assert oversegmentation_signals(x, cut, camera, track)["clusters_per_track"] == round(11 / 10, 3)
    assert oversegmentation_signals(x, person, np.zeros(100, int), np.full(100, -1)) == {}  # nothing to see
