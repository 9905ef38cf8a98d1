import numpy as np
import pytest

from progreid.evaluation import evaluate_features, evaluate_ranking, pairwise_distance
from progreid.evaluation.reference import evaluate_reference
from progreid.evaluation.rerank import re_ranking


def test_hand_worked_example_with_junk_and_unmatched_query():
    # query 0: id 1 cam 0. Gallery sorted by distance: [id1 cam0 (junk: same id+cam), id2, id1 cam1, id3, id1 cam2]
    # -> after removing junk: [neg, match, neg, match]: ranks 2 and 4, AP = (1/2 + 2/4)/2 = 0.5, INP = 2/4.
    # query 1: id 9 has no gallery entry -> skipped and counted.
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5],
                     [0.1, 0.2, 0.3, 0.4, 0.5]])
    g_pids = [1, 2, 1, 3, 1]
    g_cams = [0, 0, 1, 0, 2]
    m = evaluate_ranking(dist, [1, 9], g_pids, [0, 0], g_cams, max_rank=4)
    assert m.num_valid == 1 and m.num_skipped == 1
    assert m.cmc.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert m.mAP == pytest.approx(0.5)
    assert m.mINP == pytest.approx(0.5)
    assert m.as_percent()["rank1"] == 0.0 and m.as_percent()["rank5"] == 100.0


def test_perfect_and_worst_rankings():
    dist = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    m = evaluate_ranking(dist, [1, 1], [1, 2, 3], [0, 0], [1, 1, 1])
    # query 0: match first (AP 1); query 1: match last of 3 (AP 1/3)
    assert m.ap.tolist() == pytest.approx([1.0, 1 / 3])
    assert m.rank(1) == 0.5 and m.rank(3) == 1.0


def test_ties_rank_negatives_first():
    m = evaluate_ranking(np.array([[0.5, 0.5]]), [1], [1, 2], [0], [1, 1])
    assert m.rank(1) == 0.0 and m.mAP == pytest.approx(0.5)


def test_all_queries_without_match_is_an_error():
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate_ranking(np.zeros((1, 2)), [1], [2, 3], [0], [0, 0])


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_per_query_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    nq, ng, ids = 300, 2000, 60
    q_pids, g_pids = rng.integers(0, ids, nq), rng.integers(0, ids, ng)
    q_cams, g_cams = rng.integers(0, 4, nq), rng.integers(0, 4, ng)
    centers = rng.standard_normal((ids, 16))
    qf = centers[q_pids] + rng.standard_normal((nq, 16))
    gf = centers[g_pids] + rng.standard_normal((ng, 16))
    dist = pairwise_distance(qf, gf).numpy()
    from_feats = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, chunk_size=50)
    assert from_feats.mAP == pytest.approx(evaluate_reference(dist, q_pids, g_pids, q_cams, g_cams).mAP, abs=1e-9)
    dist[0, :5] = dist[0, 5]  # some exact ties
    ref = evaluate_reference(dist, q_pids, g_pids, q_cams, g_cams)
    for chunk in (0, 7, 300):
        fast = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, chunk_size=chunk)
        np.testing.assert_allclose(fast.cmc, ref.cmc)
        np.testing.assert_allclose(fast.ap, ref.ap, atol=1e-12)
        assert fast.mINP == pytest.approx(ref.mINP) and fast.num_skipped == ref.num_skipped


def test_euclidean_and_cosine_agree_on_normalised_features():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((20, 8)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    cos = pairwise_distance(f[:5], f[5:], "cosine").numpy()
    euc = pairwise_distance(f[:5], f[5:], "euclidean").numpy()
    np.testing.assert_allclose(euc, 2 * cos, atol=1e-5)


def test_reranking_keeps_well_separated_ranking_and_shape():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(10), 6)
    centers = rng.standard_normal((10, 32)) * 5
    feats = centers[ids] + rng.standard_normal((60, 32)) * 0.3
    q = np.arange(0, 60, 6)
    g = np.setdiff1d(np.arange(60), q)
    cams_q, cams_g = np.zeros(len(q)), np.ones(len(g))
    d = re_ranking(feats[q], feats[g], k1=5, k2=3)
    assert d.shape == (len(q), len(g))
    m = evaluate_ranking(d, ids[q], ids[g], cams_q, cams_g)
    assert m.rank(1) == 1.0 and m.mAP > 0.99


@pytest.mark.parametrize("decimals,scale", [(1, 1.0), (2, 1e-4), (3, 1e4)])
def test_exact_under_heavy_ties_and_any_distance_scale(decimals, scale):
    """Coarsely rounded distances put many negatives in the same histogram bin as a match."""
    rng = np.random.default_rng(decimals)
    nq, ng = 120, 3000
    q_pids, g_pids = rng.integers(0, 40, nq), rng.integers(0, 40, ng)
    q_cams, g_cams = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    dist = np.round(rng.random((nq, ng)), decimals) * scale
    ref = evaluate_reference(dist, q_pids, g_pids, q_cams, g_cams)
    fast = evaluate_ranking(dist, q_pids, g_pids, q_cams, g_cams, chunk_size=37)
    np.testing.assert_allclose(fast.cmc, ref.cmc)
    np.testing.assert_allclose(fast.ap, ref.ap, rtol=1e-12)
    assert fast.mINP == pytest.approx(ref.mINP, rel=1e-12)


def test_sparse_reranking_equals_the_dense_reference_code():
    """The any-size re-ranking (sparse V and overlaps, row chunks) against the authors' dense form."""
    from progreid.evaluation.rerank import re_ranked_rows

    rng = np.random.default_rng(3)
    ids = rng.integers(0, 25, 400)
    feats = (rng.standard_normal((25, 16))[ids] + 0.6 * rng.standard_normal((400, 16))).astype(np.float32)
    qf, gf = feats[:60], feats[60:]
    dense = re_ranking(qf, gf, k1=12, k2=4)
    rows = re_ranked_rows(qf, gf, k1=12, k2=4, chunk=97)
    sparse = np.concatenate([rows(s, min(s + 25, 60)).numpy() for s in range(0, 60, 25)])
    plain = pairwise_distance(qf, gf).numpy()
    assert (np.argsort(dense, 1)[:, :5] != np.argsort(plain, 1)[:, :5]).any()  # the Jaccard part reorders
    np.testing.assert_allclose(sparse, dense, atol=2e-5)


def test_evaluation_re_ranks_large_sets_through_the_sparse_path(monkeypatch):
    """Past DENSE_LIMIT images, evaluation takes the sparse re-ranking: same metrics as the dense one;
    a metric it does not implement is refused with the fix."""
    from progreid.data.records import Record, Split
    from progreid.engine import evaluate as ev

    rng = np.random.default_rng(5)
    ids = rng.integers(0, 20, 300)
    feats = (rng.standard_normal((20, 16))[ids] + 0.7 * rng.standard_normal((300, 16))).astype(np.float32)
    cams = rng.integers(0, 3, 300)
    recs = [Record(path=f"{i}.jpg", pid=int(p), camid=int(c)) for i, (p, c) in enumerate(zip(ids, cams))]
    split = Split(name="synthetic", query=recs[:50], gallery=recs[50:])
    dense = ev.evaluate_arrays(feats[:50], feats[50:], split, ev.EvalOptions(rerank=True))
    monkeypatch.setattr(ev, "DENSE_LIMIT", 100)
    sparse = ev.evaluate_arrays(feats[:50], feats[50:], split, ev.EvalOptions(rerank=True))
    assert sparse.mAP == pytest.approx(dense.mAP, abs=1e-6) and np.allclose(sparse.cmc, dense.cmc)
    with pytest.raises(ValueError, match="--metric cosine"):
        ev.evaluate_arrays(feats[:50], feats[50:], split, ev.EvalOptions(rerank=True, metric="euclidean"))
