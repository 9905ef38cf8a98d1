import numpy as np
import pytest

from progreid.cluster import assign, kmeans
from progreid.cluster.centers import center_shift, update_centers
from progreid.evaluation.clustering import nmi, pair_precision, purity


def blobs(n_per: int = 40, k: int = 6, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, dim)) * 10
    truth = np.repeat(np.arange(k), n_per)
    return (centers[truth] + rng.standard_normal((len(truth), dim))).astype(np.float32), truth


def test_kmeans_recovers_a_known_clustering_and_is_deterministic():
    x, truth = blobs()
    a = kmeans(x, 6, seed=3)
    b = kmeans(x, 6, seed=3)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.centers, b.centers)
    assert purity(a.labels, truth) == 1.0 and nmi(a.labels, truth) == pytest.approx(1.0)
    expected = sum(((x[a.labels == c] - a.centers[c]) ** 2).sum() for c in range(6))
    assert a.inertia == pytest.approx(expected, rel=1e-4)


def test_kmeans_matches_sklearn_inertia_on_harder_data():
    sklearn = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 8)).astype(np.float32)  # no cluster structure: many iterations
    ours = kmeans(x, 20, seed=0)
    ref = sklearn.KMeans(20, init="k-means++", n_init=1, max_iter=300, random_state=0).fit(x)
    assert ours.inertia <= ref.inertia_ * 1.02


def test_kmeans_handles_k_equal_n_and_rejects_too_many_clusters():
    x = np.eye(4, dtype=np.float32)
    r = kmeans(x, 4)
    assert sorted(r.labels.tolist()) == [0, 1, 2, 3] and r.inertia == pytest.approx(0, abs=1e-5)
    with pytest.raises(ValueError):
        kmeans(x, 5)


def test_assign_takes_the_most_cosine_similar_center():
    centers = np.array([[1, 0], [0, 1]], np.float32)
    labels, sim = assign(np.array([[5, 1], [0.2, 3], [1, 1.1]], np.float32), centers)
    assert labels.tolist() == [0, 1, 1]
    assert sim[0] == pytest.approx(5 / np.hypot(5, 1))


def test_center_update_follows_the_formula():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 4)).astype(np.float32)
    feats = rng.standard_normal((7, 4)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 1, 0, 0])
    lam, beta = 0.5, 2.0
    new = update_centers(centers, feats, labels, lam, beta)
    for k in range(3):
        members = feats[labels == k]
        step = sum(centers[k] - f for f in members) / (beta + len(members)) if len(members) else 0
        np.testing.assert_allclose(new[k], centers[k] - lam * step, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(new[2], centers[2])  # empty cluster stays
    assert center_shift(centers, new) > 0


def test_diagnostics_on_a_hand_made_labelling():
    pred = np.array([0, 0, 0, 1, 1, 2])
    truth = np.array([7, 7, 8, 8, 8, 9])
    assert purity(pred, truth) == pytest.approx(5 / 6)
    # pairs sharing a pseudo-label: cluster 0 has 3 (1 true), cluster 1 has 1 (1 true)
    assert pair_precision(pred, truth) == pytest.approx(2 / 4)
    assert nmi(truth, truth) == pytest.approx(1.0)


def test_identity_cosines_average_the_reliable_pairs_by_true_identity():
    from progreid.evaluation.clustering import identity_cosines

    f = np.array([[1, 0], [1, 0], [0, 1], [0.6, 0.8], [-1, 0]], np.float32)
    truth = np.array([0, 0, 1, 1, 2])
    reliable = np.array([True, True, True, True, False])  # the last one is never counted
    got = identity_cosines(f, reliable, truth)
    assert got["reliable_cos_same_id"] == pytest.approx((1 + 0.8) / 2)  # pairs (0,1) and (2,3)
    assert got["reliable_cos_different_id"] == pytest.approx((0 + 0.6 + 0 + 0.6) / 4)  # {0,1} x {2,3}
    assert identity_cosines(f, reliable, None) == {} and identity_cosines(f, reliable, -np.ones(5, int)) == {}


def test_cameras_per_cluster_counts_distinct_cameras_of_reliable_members():
    from progreid.evaluation.clustering import cameras_per_cluster

    labels = np.array([0, 0, 0, 1, 1, 2])
    cams = np.array([1, 2, 2, 3, 3, 1])
    reliable = np.array([True, True, True, True, True, True])
    assert cameras_per_cluster(labels, cams, reliable) == pytest.approx((2 + 1) / 2)  # cluster 2 has one member
    reliable[1] = reliable[2] = False
    assert np.isnan(cameras_per_cluster(labels[:1], cams[:1], reliable[:1]))


def test_the_scalable_kmeans_and_knn_stay_close_to_the_exact_ones():
    """The variants a million crops switch to (random seeding, IVF assignment; IVF k-NN), on small
    features with identity structure, against the exact ones from the same seed."""
    from progreid.cluster.jaccard import knn

    rng = np.random.default_rng(0)
    ids = rng.standard_normal((60, 32)).astype(np.float32)
    x = (ids[rng.integers(0, 60, 3000)] + 0.3 * rng.standard_normal((3000, 32))).astype(np.float32)
    exact = kmeans(x, 60, seed=0, init="random", assign="exact")
    approx = kmeans(x, 60, seed=0, init="random", assign="ivf")
    assert (approx.init, approx.assign) == ("random", "ivf") and approx.inertia <= 1.01 * exact.inertia
    # enough centers that each point probes only some cells (800 centers: 12 cells of ~64, 8 probed),
    # on unit rows (inner-product probing) and on raw rows (L2 probing)
    many = rng.standard_normal((800, 32)).astype(np.float32)
    y = (many[rng.integers(0, 800, 12000)] + 0.2 * rng.standard_normal((12000, 32))).astype(np.float32)
    for rows in (y, y / np.linalg.norm(y, axis=1, keepdims=True)):
        e = kmeans(rows, 800, seed=0, init="random", assign="exact", max_iter=10)
        a = kmeans(rows, 800, seed=0, init="random", assign="ivf", max_iter=10)
        assert a.inertia <= 1.01 * e.inertia
    assert kmeans(x[:500], 20, seed=0).init == "k-means++"  # small data keeps k-means++ and exact assignment
    e_idx, _ = knn(x, 10, method="exact")
    a_idx, a_sim = knn(x, 10, method="ivf")
    assert (a_idx[:, 0] == np.arange(len(x))).all() and np.allclose(a_sim[:, 0], 1)
    recall = np.mean([len(np.intersect1d(a[1:], e[1:])) / 9 for a, e in zip(a_idx, e_idx)])
    assert recall >= 0.95


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_the_inverted_file_is_exact_when_every_cell_is_probed_and_misses_only_unprobed_cells(metric):
    """Probing all cells must give the brute-force answer (scores and order); probing one cell must
    give the best among that cell's points and nothing from elsewhere."""
    import torch

    from progreid.cluster.ivf import InvertedFile, nearest_cells, search

    rng = np.random.default_rng(1)
    pts = torch.as_tensor(rng.standard_normal((300, 8)).astype(np.float32))
    qs = torch.as_tensor(rng.standard_normal((50, 8)).astype(np.float32))
    if metric == "ip":
        pts, qs = torch.nn.functional.normalize(pts, dim=1), torch.nn.functional.normalize(qs, dim=1)
    cells = kmeans(pts.numpy(), 7, seed=0)
    ivf = InvertedFile.build(torch.as_tensor(cells.centers), torch.as_tensor(cells.labels))
    brute = qs @ pts.T if metric == "ip" else 2 * qs @ pts.T - (pts * pts).sum(1)
    want_v, want_i = brute.topk(5, dim=1)
    v, i = search(qs, pts, ivf, nearest_cells(qs, ivf.centers, 7, metric=metric), 5, metric=metric)
    assert torch.equal(i, want_i) and torch.allclose(v, want_v, atol=1e-5)

    one = nearest_cells(qs, ivf.centers, 1, metric=metric)
    v1, i1 = search(qs, pts, ivf, one, 5, metric=metric)
    for q in range(len(qs)):
        inside = torch.as_tensor(np.flatnonzero(cells.labels == int(one[q, 0])))
        best = brute[q, inside].topk(min(5, len(inside)))
        assert torch.equal(i1[q, :len(inside)], inside[best.indices])
        assert (i1[q, len(inside):] == -1).all()


def test_kmeans_warm_start_takes_given_centers_and_checks_their_shape():
    import torch

    x, _ = blobs()
    done = kmeans(x, 6, seed=3)
    again = kmeans(x, 6, init=torch.as_tensor(done.centers))
    assert again.init == "given" and again.n_iter == 1 and np.array_equal(again.labels, done.labels)
    with pytest.raises(ValueError, match="initial centers"):
        kmeans(x, 5, init=torch.as_tensor(done.centers))
