"""Label-free signals: what a model's features on unlabeled crops say without any labels."""

import numpy as np

from progreid.evaluation.label_free import label_free_score, label_free_signals


def _crops(by_person: bool, people: int = 40, cams: int = 3, seed: int = 0):
    """Each person seen once per camera; features follow the person (a good model) or the camera (a bad one)."""
    rng = np.random.default_rng(seed)
    person_code = rng.normal(size=(people, 16))
    camera_code = rng.normal(size=(cams, 16)) * 3
    feats, cameras = [], []
    for p in range(people):
        for c in range(cams):
            base = person_code[p] if by_person else camera_code[c] + 0.3 * person_code[p]
            feats.append(base + 0.05 * rng.normal(size=16))
            cameras.append(c)
    return np.array(feats), np.array(cameras)


def test_features_that_follow_people_score_above_features_that_follow_cameras():
    good = label_free_signals(*_crops(by_person=True))
    bad = label_free_signals(*_crops(by_person=False))
    assert good["label_free_cycle"] > 0.9 and good["label_free_cycle"] > bad["label_free_cycle"]
    assert good["label_free_cross_camera"] > 1.0 > bad["label_free_cross_camera"]
    assert label_free_score(good) == good["label_free_cross_camera"] > label_free_score(bad)


def test_one_camera_gives_no_signal_rather_than_a_wrong_one():
    feats, _ = _crops(by_person=True)
    assert label_free_signals(feats, np.zeros(len(feats), int)) == {}
    assert label_free_score({}) is None


def test_a_sample_gives_the_same_signal_twice():
    feats, cams = _crops(by_person=True, people=60)
    assert label_free_signals(feats, cams, sample=100, seed=3) == label_free_signals(feats, cams, sample=100, seed=3)
