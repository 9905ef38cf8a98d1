"""Cluster contrast's parts against their definitions: Jaccard distance, DBSCAN, auto eps, the memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from progreid.cluster.density import auto_eps, dbscan, within
from progreid.cluster.jaccard import jaccard_distance, knn
from progreid.memory import ClusterMemory, centroids


def dense_jaccard_reference(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Cluster Contrast's compute_jaccard_distance written out densely and literally (the oracle)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    sim = x @ x.T
    np.fill_diagonal(sim, 2)
    rank = np.argsort(-sim, axis=1, kind="stable")[:, :k1]  # k1 columns, itself first

    def reciprocal(i, k):
        forward = rank[i, :k + 1]
        return forward[np.where(rank[forward, :k + 1] == i)[0]]

    nn_k1 = [reciprocal(i, k1) for i in range(n)]
    nn_half = [reciprocal(i, int(np.around(k1 / 2))) for i in range(n)]
    V = np.zeros((n, n), np.float32)
    for i in range(n):
        expansion = nn_k1[i]
        for cand in nn_k1[i]:
            c = nn_half[cand]
            if len(np.intersect1d(c, nn_k1[i])) > 2 / 3 * len(c):
                expansion = np.append(expansion, c)
        expansion = np.unique(expansion)
        w = np.exp(-(2 - 2 * x[i] @ x[expansion].T))
        V[i, expansion] = w / w.sum()
    V = np.stack([V[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.zeros((n, n), np.float32)
    for i in range(n):
        m = np.minimum(V[i][None, :], V).sum(1)
        jac[i] = 1 - m / (2 - m)
    return np.maximum(jac, 0)


def blobs(n_ids: int, per_id: int, dim: int = 16, noise: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), per_id)
    x = rng.standard_normal((n_ids, dim))[ids] + noise * rng.standard_normal((len(ids), dim))
    return x.astype(np.float32), ids


@pytest.mark.parametrize("k1,k2", [(30, 6), (10, 1)])
def test_sparse_jaccard_equals_the_dense_reference(k1, k2):
    x, _ = blobs(15, 12, noise=0.7)
    sparse = jaccard_distance(x, k1, k2)
    dense = np.ones((len(x), len(x)), np.float32)
    coo = sparse.tocoo()
    dense[coo.row, coo.col] = coo.data
    ref = dense_jaccard_reference(x, k1, k2)
    np.testing.assert_allclose(dense, ref, atol=1e-5)
    assert sparse.nnz < len(x) ** 2 and np.all(sparse.diagonal() == 0)


@pytest.mark.parametrize("k1,k2,chunk", [(30, 6, 1 << 16), (20, 6, 37), (10, 1, 7)])
def test_the_array_encoding_equals_the_per_crop_loop(k1, k2, chunk):
    """``expanded_neighbourhoods`` (sparse products, no loop per crop) against the per-crop form it replaced."""
    from progreid.cluster.jaccard import expanded_neighbourhoods, knn, row_dots
    from progreid.cluster.jaccard_reference import expanded_neighbourhoods_per_crop

    x, _ = blobs(40, 12, noise=0.8)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rank, _ = knn(x, k1 + 1)
    scale = np.random.default_rng(0).uniform(0.5, 2, len(x))  # a per-row distance, as re-ranking's
    for distance in (lambda i, j: 2 - 2 * row_dots(x, i, j), lambda i, j: (1 - row_dots(x, i, j)) / scale[i]):
        fast = expanded_neighbourhoods(rank, k1, k2, distance, chunk=chunk)
        slow = expanded_neighbourhoods_per_crop(rank, k1, k2, distance)
        assert (fast != 0).toarray().tolist() == (slow != 0).toarray().tolist()  # the same members
        np.testing.assert_allclose(fast.toarray(), slow.toarray(), rtol=1e-5, atol=1e-8)


def test_sparse_jaccard_chunks_give_the_same_matrix():
    import scipy.sparse as sp

    from progreid.cluster.jaccard import min_overlap_distance

    V = sp.random(60, 60, density=0.2, random_state=1, format="csr", dtype=np.float32)
    V = sp.diags(1 / np.maximum(np.asarray(V.sum(1)).ravel(), 1e-6)) @ V
    V = V.tocsr().astype(np.float32)
    one = min_overlap_distance(V, chunk_entries=1 << 30).toarray()
    many = min_overlap_distance(V, chunk_entries=50).toarray()
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_knn_lists_itself_first_even_among_duplicates():
    x = np.array([[1, 0], [1, 0], [0, 1], [0.9, 0.1]], np.float32)
    idx, sim = knn(x, 3)
    assert idx[:, 0].tolist() == [0, 1, 2, 3] and np.allclose(sim[:, 0], 1)
    assert set(idx[0, 1:]) == {1, 3}


def test_dbscan_on_hand_made_points():
    # two tight groups of 5 (0.1 and 0.2 apart inside), one lone point; pairs not stored are far apart
    import scipy.sparse as sp

    d = np.zeros((11, 11), np.float32)
    d[:5, :5] = 0.1
    d[5:10, 5:10] = 0.2
    dist = sp.csr_matrix(d)
    labels = dbscan(dist, 0.3, 4)
    assert labels[:5].tolist() == [0] * 5 and labels[5:10].tolist() == [1] * 5 and labels[10] == -1
    assert (dbscan(dist, 0.15, 4)[5:10] == -1).all()  # 0.2 apart: too far for eps 0.15


def test_auto_eps_finds_the_radius_with_the_most_clusters_and_pruning_keeps_labels():
    x, ids = blobs(20, 10, noise=0.6, seed=3)
    dist = jaccard_distance(x, 20, 6)
    eps, counts = auto_eps(dist, 4)
    assert counts[eps] == max(counts.values())
    labels = dbscan(dist, eps, 4)
    assert 14 <= labels.max() + 1 <= 26  # about the 20 identities, without knowing there are 20
    assert (dbscan(within(dist, 0.85), eps, 4) == labels).all()


def test_k_auto_is_the_default_counts_the_identities_once_and_fails_clearly_on_featureless_data():
    from types import SimpleNamespace

    from progreid.config import load_config
    from progreid.engine.stages.pseudo_label import chosen_k
    from progreid.errors import ProgReIDError

    x, _ = blobs(20, 10, noise=0.6, seed=3)
    cfg = load_config("pul", "quick", overrides=["cluster.k1=20"])
    assert cfg.cluster.k == "auto"
    ctx = SimpleNamespace(cfg=cfg, device=torch.device("cpu"))
    state = SimpleNamespace(arrays={})
    k, info = chosen_k(ctx, state, x)
    assert 14 <= k <= 26 and info == {"k_auto": k}  # 20 identities, never told
    # estimated once, from the first round's features: later rounds (and a resume) keep it
    assert chosen_k(ctx, state, np.repeat(x[:1], len(x), 0))[0] == k
    with pytest.raises(ProgReIDError, match="cluster.k auto.*Fix: give cluster.k a number"):
        chosen_k(ctx, SimpleNamespace(arrays={}), np.random.default_rng(0).standard_normal((12, 16)).astype(np.float32))


def test_memory_update_and_loss_follow_their_formulas():
    mem0 = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    mem = ClusterMemory(mem0, temperature=0.1, momentum=0.2)
    f = torch.tensor([[0.0, 2.0], [3.0, 4.0], [1.0, 1.0]])
    y = torch.tensor([0, 2, 0])
    logits = torch.nn.functional.normalize(f, dim=1) @ torch.tensor(mem0).T / 0.1
    assert torch.allclose(mem.loss(f, y), torch.nn.functional.cross_entropy(logits, y))
    mem.update(f, y)

    def step(m, x):
        v = 0.2 * m + 0.8 * x / np.linalg.norm(x)
        return v / np.linalg.norm(v)

    expected0 = step(step(mem0[0], f[0].numpy()), f[2].numpy())  # in batch order, sample by sample
    np.testing.assert_allclose(mem.entries[0].numpy(), expected0, atol=1e-6)
    np.testing.assert_allclose(mem.entries[2].numpy(), step(mem0[2], f[1].numpy()), atol=1e-6)
    np.testing.assert_allclose(mem.entries[1].numpy(), mem0[1])  # untouched: no sample of cluster 1


def test_centroids_are_normalised_means_of_normalised_features():
    f = np.array([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0]], np.float32)
    c = centroids(f, np.array([0, 0, 1]))
    np.testing.assert_allclose(c[0], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(c[1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)


def test_camera_aware_memory_follows_caps_loss_written_out_per_camera_and_sample():
    """Proxies per (cluster, camera) from centroids; the loss against CAP's released form, looped literally:
    per camera, InfoNCE over that camera's proxies + 0.5 x (all proxies of the cluster as positives, the
    hardest other proxies as negatives), each camera's mean, summed."""
    from progreid.memory import CameraAwareMemory, camera_proxies

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((40, 8)).astype(np.float32)
    classes = rng.integers(0, 5, 40)
    cams = rng.integers(0, 3, 40)
    mem = CameraAwareMemory(camera_proxies(feats, classes, cams), temperature=0.1, hard_negatives=4)
    pairs = sorted({(int(c), int(m)) for c, m in zip(classes, cams)})
    assert len(mem.entries) == len(pairs)
    assert [pairs[p] for p in mem.sample_proxy] == list(zip(classes.tolist(), cams.tolist()))
    np.testing.assert_allclose(mem.entries[mem.sample_proxy[0]].numpy(),
                               centroids(feats, mem.sample_proxy)[mem.sample_proxy[0]], atol=1e-6)

    batch = rng.choice(40, 12, replace=False)
    f = torch.as_tensor(rng.standard_normal((12, 8)).astype(np.float32))
    targets = torch.as_tensor(mem.sample_proxy[batch])
    got = mem.loss(f, targets)
    sims = torch.nn.functional.normalize(f, dim=1) @ mem.entries.T / 0.1
    pc = np.array([p[0] for p in pairs])
    pm = np.array([p[1] for p in pairs])
    want = 0.0
    for cam in np.unique(cams[batch]):
        rows = np.flatnonzero(cams[batch] == cam)
        total = 0.0
        for r in rows:
            own = int(targets[r])
            mine = np.flatnonzero(pm == cam)
            total += -torch.log_softmax(sims[r, mine], 0)[list(mine).index(own)]
            pos = np.flatnonzero(pc == pc[own])
            neg = np.flatnonzero(pc != pc[own])
            hard = neg[np.argsort(-sims[r, neg].numpy())[:4]]
            logp = torch.log_softmax(sims[r, np.r_[pos, hard]], 0)[:len(pos)]
            total += 0.5 * -logp.mean()
        want += total / len(rows)
    assert torch.allclose(got, torch.as_tensor(want, dtype=got.dtype), atol=1e-4)


def test_human_links_join_split_people_and_cannot_links_take_a_crop_out():
    """A confirmed group ties two clusters into one (one person seen twice), a group DBSCAN leaves as
    outliers becomes a cluster, and a crop shown as a different person leaves the query's cluster."""
    from progreid.cluster.constraints import PairConstraints, constrain_distance, enforce

    x, ids = blobs(6, 8, noise=0.3, seed=1)
    x = np.concatenate([x, np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)])
    ids = np.r_[ids, -1, -1]  # two lone crops DBSCAN leaves out
    dist = jaccard_distance(x, 20, 6)
    plain = dbscan(dist, 0.5, 4)
    a0, a2 = np.flatnonzero(ids == 0)[0], np.flatnonzero(ids == 2)[0]
    assert (plain[-2:] == -1).all() and plain[a0] != plain[a2] and plain.max() == 5
    groups = np.full(len(x), -1)
    groups[[a0, a2]] = 0        # "the same person": clusters 0 and 2 are one
    groups[-2:] = 1             # the two outliers confirmed as one person
    shown_not_clicked = np.flatnonzero(ids == 0)[1]
    c = PairConstraints(groups, np.array([[a0, shown_not_clicked]]))
    labels, info = enforce(dbscan(constrain_distance(dist, c), 0.5, 4), c)
    assert (labels[(ids == 0) | (ids == 2)] == labels[a0]).sum() == 15  # both clusters joined, but ...
    assert labels[shown_not_clicked] == -1 and info["cannot_link_crops_out"] == 1  # ... the crop said to differ
    assert labels[-1] == labels[-2] >= 0 and info["groups_as_new_clusters"] == 1
    assert labels.max() == 5 and set(labels[ids == 4]) == {labels[np.flatnonzero(ids == 4)[0]]}  # 6 -1 +1 clusters
    assert info["human_groups"] == 2 and info["cannot_links"] == 1


def test_eps_update_first_keeps_the_first_rounds_radius_as_the_features_tighten():
    from types import SimpleNamespace

    from progreid.config import ClusterConfig
    from progreid.engine.stages.pseudo_label import density_radius

    loose, _ = blobs(20, 10, noise=0.9, seed=3)
    tight, _ = blobs(20, 10, noise=0.3, seed=3)  # the same people after training: tighter clusters
    d_loose, d_tight = jaccard_distance(loose, 20, 6), jaccard_distance(tight, 20, 6)
    every, first = auto_eps(d_loose, 4)[0], auto_eps(d_tight, 4)[0]
    assert every != first  # the most-clusters radius moves with the features

    def ctx(update):
        return SimpleNamespace(cfg=SimpleNamespace(cluster=ClusterConfig(eps="auto", eps_update=update)))

    state = SimpleNamespace(arrays={})
    assert density_radius(ctx("first"), state, d_loose) == every
    assert density_radius(ctx("first"), state, d_tight) == every  # kept: in the run state, so resume keeps it too
    assert state.arrays["eps"].tolist() == [every]
    assert density_radius(ctx("every"), SimpleNamespace(arrays={}), d_tight) == first
    assert density_radius(ctx("first"), SimpleNamespace(arrays={}), d_tight) == first
    fixed = SimpleNamespace(cfg=SimpleNamespace(cluster=ClusterConfig(eps="0.4")))
    assert density_radius(fixed, SimpleNamespace(arrays={}), d_tight) == 0.4


def test_epoch_length_crops_trains_the_pools_crops_whatever_the_cluster_count():
    from types import SimpleNamespace

    from progreid.config import TrainConfig
    from progreid.engine.stages.fine_tune import epoch_batches

    def ctx(length, pool):
        return SimpleNamespace(cfg=SimpleNamespace(train=TrainConfig(p=16, k=4, epoch_length=length)), pool=np.arange(pool))

    assert epoch_batches(ctx("clusters", 4109)) == 0  # every cluster once: the sampler's own length
    assert epoch_batches(ctx("crops", 4109)) == 65  # ceil(4109 / 64), with 252 clusters or 422
    assert epoch_batches(ctx("crops", 64)) == 1
