"""The steps that run on an accelerator where there is one, checked on the device ``--device`` names
(CPU by default; ``benchmarks/gpu_check.sh`` runs them on CUDA): each against the CPU result, or, for a
whole round, the round's own invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from progreid.models import build_model

from conftest import SMALL


def test_extraction_on_the_device_matches_the_cpu(device):
    from progreid.engine.extract import extract_features

    torch.manual_seed(0)
    model = build_model("osnet_x0_25")
    images = np.random.default_rng(0).integers(0, 255, (12, 64, 32, 3), dtype=np.uint8)
    cpu = extract_features(model, images, device="cpu", progress=False)
    dev = extract_features(model, images, device=device, progress=False)
    cos = (cpu * dev).sum(1) / np.linalg.norm(cpu, axis=1) / np.linalg.norm(dev, axis=1)
    assert cos.min() > 0.999  # bf16 autocast on CUDA, fp32 on CPU


def test_kmeans_and_knn_on_the_device_match_the_cpu(device):
    from progreid.cluster import kmeans
    from progreid.cluster.jaccard import knn

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((20, 16))[rng.integers(0, 20, 400)] + 0.1 * rng.standard_normal((400, 16))).astype(
        np.float32)
    a, b = kmeans(x, 20, seed=0, device="cpu"), kmeans(x, 20, seed=0, device=device)
    assert abs(a.inertia - b.inertia) <= 1e-3 * a.inertia
    assert (knn(x, 10, device="cpu")[0] == knn(x, 10, device=device)[0]).mean() > 0.99


def test_a_cc_round_on_the_device_trains_and_tests(network, device, tmp_path):
    from progreid.config import load_config
    from progreid.engine.adapt import adapt

    paths, weights = network
    cfg = load_config("cc", "quick", overrides=[*SMALL, f"data.target={paths['target']}", f"model.weights={weights}",
                                                "train.epochs=1", "loop.max_rounds=1", "train.p=8",
                                                f"device={device}"])
    rows = adapt(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert rows[1]["reliable"] > 0 and np.isfinite(rows[1]["train_loss"]) and "mAP" in rows[1]
