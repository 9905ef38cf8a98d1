import itertools

import numpy as np
import pytest
import torch

from progreid.data.sampler import pk_batches, shuffled_batches
from progreid.losses import batch_hard_triplet, cross_entropy_smooth


def brute_force_triplet(f: torch.Tensor, y: torch.Tensor, margin: float) -> float:
    losses = []
    for a in range(len(y)):
        pos = [torch.dist(f[a], f[p]).item() for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [torch.dist(f[a], f[n]).item() for n in range(len(y)) if y[n] != y[a]]
        if pos and neg:
            losses.append(max(0.0, max(pos) - min(neg) + margin))
    return float(np.mean(losses))


@pytest.mark.parametrize("seed", range(3))
def test_batch_hard_triplet_equals_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(12, 5, generator=g)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])  # label 4 has no positive
    assert batch_hard_triplet(f, y, 0.5).item() == pytest.approx(brute_force_triplet(f, y, 0.5), rel=1e-4)


def test_triplet_is_differentiable_and_zero_for_separated_classes():
    f = torch.tensor([[0.0, 0], [0, 0.1], [10, 10], [10, 10.1]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    loss = batch_hard_triplet(f, y, 0.5)
    loss.backward()
    assert loss.item() == 0.0 and f.grad is not None


def test_label_smoothing_matches_its_definition():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    eps = 0.1
    logp = torch.log_softmax(logits, 1)[0]
    expected = -((1 - eps) * logp[0] + eps / 3 * logp.sum())
    assert cross_entropy_smooth(logits, torch.tensor([0]), eps).item() == pytest.approx(expected.item(), rel=1e-5)


def test_pk_sampler_invariants():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 8 + [3] * 1 + [4] * 9 + [5] * 12 + [-1] * 4)
    rng = np.random.default_rng(0)
    batches = list(pk_batches(labels, p=2, k=4, rng=rng))
    seen = set()
    for b in batches:
        assert len(b) == 8
        labs = labels[b]
        assert len(set(labs)) == 2 and all((labs == lab).sum() == 4 for lab in set(labs))
        assert -1 not in labs
        seen |= set(labs.tolist())
    # label 3 (one image) cannot form a positive pair; label 1 (3 < K images) is sampled with replacement
    assert 3 not in seen and len(batches) == 2  # 5 usable labels, P=2 -> 2 full batches
    skip = [set(labels[b]) for b in pk_batches(labels, 2, 4, np.random.default_rng(0), small="skip")]
    assert all(1 not in s and 3 not in s for s in skip)


def test_shuffled_batches_cover_each_index_once():
    batches = list(shuffled_batches(10, 3, np.random.default_rng(0)))
    flat = list(itertools.chain.from_iterable(batches))
    assert len(batches) == 3 and len(set(flat)) == 9


def test_frozen_modules_keep_weights_and_bn_statistics():
    from progreid.config import TrainConfig
    from progreid.engine.fit import fit
    from progreid.errors import ProgReIDError
    from progreid.models import build_model

    model = build_model("osnet_x0_25")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = np.random.default_rng(0).integers(0, 255, (16, 64, 32, 3), dtype=np.uint8)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.01, freeze="conv1,conv2")
    fit(model, images, np.arange(16), np.arange(16) % 4, cfg, torch.device("cpu"), 0, progress=False)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("conv1.", "conv2.")))
    assert not torch.equal(before["conv4.0.conv1.conv.weight"], after["conv4.0.conv1.conv.weight"])
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again for the next round
    with pytest.raises(ProgReIDError, match="top-level modules"):
        fit(model, images, np.arange(16), np.arange(16) % 4, TrainConfig(epochs=1, batch_size=8, freeze="layer9"),
            torch.device("cpu"), 0, progress=False)


def test_shuffled_batches_never_yield_a_single_image():
    assert [len(b) for b in shuffled_batches(1, 32, np.random.default_rng(0))] == []
    assert [len(b) for b in shuffled_batches(5, 32, np.random.default_rng(0))] == [5]
    assert [len(b) for b in shuffled_batches(33, 32, np.random.default_rng(0), drop_last=False)] == [32]


def test_pk_sampler_falls_back_to_one_small_batch_when_labels_are_few():
    labels = np.array([0, 0, 1, 1, 1, 2])  # two usable labels (2 has one image), P = 16
    batches = list(pk_batches(labels, p=16, k=4, rng=np.random.default_rng(0)))
    assert len(batches) == 1 and sorted(set(labels[batches[0]])) == [0, 1] and len(batches[0]) == 8
    assert list(pk_batches(np.array([0, 0, 1]), p=16, k=4, rng=np.random.default_rng(0))) == []


def test_pk_sampler_with_a_fixed_length_cycles_the_labels_in_fresh_orders():
    labels = np.repeat(np.arange(6), 5)  # 6 labels, P = 2: 3 batches per pass over the labels
    batches = list(pk_batches(labels, p=2, k=4, rng=np.random.default_rng(0), num_batches=7))
    assert len(batches) == 7 and all(len(set(labels[b])) == 2 and len(b) == 8 for b in batches)
    passes = [sorted(np.unique(labels[np.concatenate(batches[s:s + 3])])) for s in (0, 3)]
    assert passes == [list(range(6))] * 2  # every label once per pass, then again
    orders = [[int(labels[b[0]]) for b in batches[s:s + 3]] for s in (0, 3)]
    assert orders[0] != orders[1]
    assert list(pk_batches(np.array([0, 1, 2]), p=2, k=4, rng=np.random.default_rng(0), num_batches=5)) == []
