"""RLCC's label ensembling (label_ensemble.py): the consensus, the soft labels, the class logits."""

from __future__ import annotations

import numpy as np
import torch

from progreid.label_ensemble import SoftLabels, consensus, soft_label_loss
from progreid.memory import CameraAwareMemory, camera_proxies


def test_consensus_is_the_iou_of_the_two_clusterings_normalised_per_last_round_cluster():
    previous = np.array([0, 0, 0, 1, 1, -1, 2])
    current = np.array([0, 0, 1, 1, 1, 1, -1])
    c = consensus(previous, current).toarray()
    # cluster 0 then: crops {0,1,2}; now 0 = {0,1}, 1 = {2,3,4,5}: IoU 2/3 and 1/6, normalised
    np.testing.assert_allclose(c[0], np.array([2 / 3, 1 / 6]) / (2 / 3 + 1 / 6))
    np.testing.assert_allclose(c[1], [0, 1])  # {3,4} inside now-1: IoU 2/4, alone in its row
    np.testing.assert_allclose(c[2], [0, 0])  # its only crop is an outlier now: it goes nowhere


def test_soft_labels_follow_rlccs_formula_written_out_per_crop():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((7, 8)).astype(np.float32)
    centers = rng.standard_normal((3, 8)).astype(np.float32)
    previous = np.array([0, 0, 0, 1, 1, -1, 2])
    current = np.array([0, 0, 1, 1, 1, 1, 0])
    soft = SoftLabels(f, previous, centers, current, alpha=0.9, temperature=30).rows(torch.arange(7)).numpy()
    c = consensus(previous, current).toarray()
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    cn = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    for i in range(7):
        logits = 30 * fn[i] @ cn.T
        q = np.exp(logits - logits.max())
        q /= q.sum()
        if previous[i] >= 0:
            q = 0.9 * np.eye(3)[previous[i]] + 0.1 * q
        np.testing.assert_allclose(soft[i], q @ c, rtol=1e-4, atol=1e-6)
    logits = torch.randn(7, 2)
    expected = -(torch.as_tensor(soft) * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.isclose(soft_label_loss(logits, torch.as_tensor(soft)), expected)


def test_a_camera_aware_memorys_cluster_logit_is_the_mean_of_its_proxies_logits():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 6)).astype(np.float32)
    classes = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    cams = np.array([0, 1, 1, 2, 0, 0, 1, 2, 2, 0, 1, 1])
    memory = CameraAwareMemory(camera_proxies(x, classes, cams), temperature=0.05)
    f = torch.randn(4, 6)
    logits = memory.class_logits(f)
    sims = torch.nn.functional.normalize(f, dim=1) @ memory.entries.T / 0.05
    for k in range(3):
        torch.testing.assert_close(logits[:, k], sims[:, memory.proxy_class == k].mean(1))
