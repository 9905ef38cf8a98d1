"""CA-Jaccard (cluster/camera_jaccard.py) against a dense per-crop form of its definition."""

from __future__ import annotations

import numpy as np
import pytest

from progreid.cluster.camera_jaccard import camera_jaccard_distance, camera_ranks
from progreid.cluster.jaccard import jaccard_distance


def dense_camera_jaccard(x: np.ndarray, cams: np.ndarray, k1_intra: int, k1_inter: int,
                         k2_intra: int, k2_inter: int) -> np.ndarray:
    """Written out per crop as in CA-Jaccard's paper (CKRNNs + CLQE): squared distances, each crop's
    ranking within its camera and among the others, reciprocal sets of each, their union weighted by
    softmax(-d), rows averaged over the nearest of both lists, then 1 - m / (2 - m)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    d = 2 - 2 * x @ x.T
    same = cams[:, None] == cams[None, :]
    intra = np.argsort(np.where(same, d, np.inf) - 10 * np.eye(n), axis=1, kind="stable")
    inter = np.argsort(np.where(same, np.inf, d), axis=1, kind="stable")

    def reciprocal(rank, i, k):
        forward = rank[i, :k + 1]
        return [j for j in forward if i in rank[j, :k + 1]]

    V = np.zeros((n, n))
    for i in range(n):
        members = sorted(set(reciprocal(intra, i, k1_intra)) | set(reciprocal(inter, i, k1_inter)))
        w = np.exp(-d[i, members])
        V[i, members] = w / w.sum()
    V = np.stack([V[np.r_[intra[i, :k2_intra], inter[i, :k2_inter]]].mean(0) for i in range(n)])
    jac = np.empty((n, n))
    for i in range(n):
        m = np.minimum(V[i][None, :], V).sum(1)
        jac[i] = 1 - m / (2 - m)
    return np.maximum(jac, 0)


def two_camera_people(n_ids: int = 12, per_camera: int = 6, camera_shift: float = 1.5, seed: int = 0):
    """People seen by two cameras, each camera adding its own offset to every crop (a lighting bias)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), 2 * per_camera)
    cams = np.tile(np.repeat([0, 1], per_camera), n_ids)
    bias = camera_shift * rng.standard_normal((2, 16))
    x = rng.standard_normal((n_ids, 16))[ids] + bias[cams] + 0.4 * rng.standard_normal((len(ids), 16))
    return x.astype(np.float32), ids, cams


@pytest.mark.parametrize("k", [(5, 20, 3, 3), (3, 7, 2, 4)])
def test_sparse_camera_jaccard_equals_the_dense_definition(k):
    x, _, cams = two_camera_people()
    sparse = camera_jaccard_distance(x, cams, *k)
    dense = np.ones((len(x), len(x)), np.float32)
    coo = sparse.tocoo()
    dense[coo.row, coo.col] = coo.data
    np.testing.assert_allclose(dense, dense_camera_jaccard(x, cams, *k), atol=1e-5)
    assert np.all(sparse.diagonal() == 0)


def test_camera_ranks_keep_each_list_to_its_cameras_and_pad_short_ones():
    x, _, cams = two_camera_people(n_ids=3, per_camera=2)
    cams = cams.copy()
    cams[0] = 7  # a camera that saw one crop
    intra, inter = camera_ranks(x, cams, 4, 5)
    assert np.all(intra[:, 0] == np.arange(len(x)))
    assert np.all(cams[intra] == cams[:, None])
    assert np.all(intra[0] == 0)  # nothing else in its camera: itself, repeated
    assert np.all(cams[inter] != cams[:, None])


def test_camera_jaccard_brings_a_persons_two_camera_views_closer_than_plain_jaccard():
    """The case it is for: a camera bias larger than the differences between people makes the plain
    neighbours all same-camera; CA-Jaccard's share of other-camera neighbours finds the other view."""
    x, ids, cams = two_camera_people(camera_shift=3.0)
    same_person_other_camera = (ids[:, None] == ids[None, :]) & (cams[:, None] != cams[None, :])

    def mean_distance(dist):
        dense = np.ones(dist.shape, np.float32)
        coo = dist.tocoo()
        dense[coo.row, coo.col] = coo.data
        return dense[same_person_other_camera].mean()

    assert mean_distance(camera_jaccard_distance(x, cams)) < mean_distance(jaccard_distance(x, 30, 6)) - 0.1


def test_the_stage_uses_camera_jaccard_where_asked_and_plain_jaccard_for_one_camera():
    from types import SimpleNamespace

    from progreid.config import ClusterConfig
    from progreid.engine.stages.pseudo_label import appearance_distance

    x, _, cams = two_camera_people()

    def ctx(cameras, distance, k1_intra="auto"):
        return SimpleNamespace(cfg=SimpleNamespace(cluster=ClusterConfig(distance=distance, k1_intra=k1_intra)),
                               pool_cameras=cameras, device="cpu")

    def state():
        return SimpleNamespace(arrays={})

    camera_aware, info = appearance_distance(ctx(cams, "camera_jaccard", "7"), state(), x)
    assert info == {"distance": "camera_jaccard", "k1_intra": 7}
    assert (camera_aware != camera_jaccard_distance(x, cams, k1_intra=7)).nnz == 0
    one_camera, info = appearance_distance(ctx(np.zeros_like(cams), "camera_jaccard"), state(), x)
    assert info == {"distance": "jaccard (one camera)"} and (one_camera != jaccard_distance(x, 30, 6)).nnz == 0
    assert appearance_distance(ctx(cams, "jaccard"), state(), x)[1] == {}


def test_k1_intra_auto_follows_the_crops_of_a_camera_visit_and_is_kept():
    """auto: at least the authors' 5, more where each camera sees a person in more crops (a dense track)."""
    from types import SimpleNamespace

    from progreid.config import ClusterConfig
    from progreid.engine.stages.pseudo_label import intra_camera_neighbours

    def chosen(per_camera):
        x, _, cams = two_camera_people(n_ids=10, per_camera=per_camera, camera_shift=0.3)
        st = SimpleNamespace(arrays={})
        c = SimpleNamespace(cfg=SimpleNamespace(cluster=ClusterConfig(distance="camera_jaccard")), pool_cameras=cams,
                            device="cpu")
        k = intra_camera_neighbours(c, st, x)
        assert intra_camera_neighbours(c, st, x[::-1].copy()) == k == int(st.arrays["k1_intra"][0])  # kept
        return k

    assert chosen(3) == 5  # the authors' value where visits are short (Market-1501: 3 crops per camera and person)
    assert chosen(8) == 8 and chosen(14) == 14


def test_camera_ranks_are_the_same_in_any_chunk_size():
    x, _, cams = two_camera_people()
    whole = camera_ranks(x, cams, 6, 21)
    for a, b in zip(whole, camera_ranks(x, cams, 6, 21, chunk=7)):
        np.testing.assert_array_equal(a, b)
