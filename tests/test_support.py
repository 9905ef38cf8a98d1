"""ISE's support samples and label-preserving loss, against the formulas of the authors' code written out."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from progreid.memory import CameraAwareMemory, ClusterMemory, camera_proxies, centroids
from progreid.support import ise_loss, label_preserving_loss, support_lambda, support_samples


def test_the_interpolation_degree_grows_from_zero_to_half_the_base():
    steps = [support_lambda(p, 1.0) for p in np.linspace(0, 1, 11)]
    assert steps[0] == 0 and math.isclose(steps[-1], 0.5) and all(a < b for a, b in zip(steps, steps[1:]))
    assert math.isclose(support_lambda(1.0, 2.0), 1.0) and support_lambda(3.0) == support_lambda(1.0)


def test_a_support_moves_from_its_cluster_toward_the_nearest_other_one():
    torch.manual_seed(0)
    centers = F.normalize(torch.randn(5, 16), dim=1)
    classes = torch.tensor([0, 1, 2, 3, 4, 0])
    f = F.normalize(centers[classes] + 0.3 * torch.randn(6, 16), dim=1)
    assert torch.allclose(support_samples(f, classes, centers, 0.0), f, atol=1e-6)  # lambda 0: the sample itself
    s = support_samples(f, classes, centers, 0.5)
    others = (f @ centers.T).masked_fill(F.one_hot(classes, 5).bool(), -2)
    nearest = others.argmax(1)
    expected = F.normalize(f + 0.25 * (centers[nearest] - centers[classes]), dim=1)
    assert torch.allclose(s, expected, atol=1e-6)
    rows = torch.arange(6)
    assert torch.all((s @ centers.T)[rows, nearest] > (f @ centers.T)[rows, nearest])
    assert torch.all((s @ centers.T)[rows, classes] < (f @ centers.T)[rows, classes])


def test_label_preserving_loss_equals_the_per_sample_loop_of_the_reference():
    torch.manual_seed(1)
    classes = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    f = F.normalize(torch.randn(7, 8), dim=1)
    s = F.normalize(torch.randn(7, 8), dim=1)
    exp = torch.exp(f @ s.T / 0.6)
    expected = 0.0
    for i in range(7):
        pos = exp[i][classes == classes[i]].min()
        neg = sum(exp[i][classes == c].max() for c in classes.unique() if c != classes[i])
        expected += -torch.log(pos / (pos + neg + 1e-6) + 1e-6)
    assert torch.allclose(label_preserving_loss(f, s, classes, 0.6), expected / 7, atol=1e-5)


def test_ise_loss_trains_through_either_memory_and_adds_to_the_plain_loss():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(12, 16)).astype(np.float32)
    classes = np.repeat(np.arange(4), 3)
    cameras = np.tile([0, 1, 1], 4)
    proxies = camera_proxies(feats, classes, cameras)
    for memory, targets in ((ClusterMemory(centroids(feats, classes)), classes),
                            (CameraAwareMemory(proxies), proxies.sample_proxy)):
        f = torch.tensor(feats, requires_grad=True)
        t = torch.as_tensor(targets)
        assert torch.equal(memory.classes(t), torch.as_tensor(classes))
        assert memory.class_centers().shape == (4, 16)
        loss = ise_loss(memory, f, t, 0.3)
        loss.backward()
        assert torch.isfinite(loss) and f.grad.abs().sum() > 0
        with torch.no_grad():
            plain = memory.loss(f, t)
        assert not torch.isclose(loss, plain)  # the supports and the LP term change the loss
