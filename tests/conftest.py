"""Shared fixtures: tiny on-disk datasets and the path to ../shared/data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the real data in ../shared/data beside the repository")
    return path


SMALL = ["data.height=64", "data.width=32"]  # the synthetic network's image size


@pytest.fixture(scope="session")
def network(tmp_path_factory):
    """A synthetic camera network (48 ids, 4 cameras) and a source model trained on its source half:
    (paths of source/ and target/, weights)."""
    from progreid.config import load_config
    from progreid.data.synth import generate_network
    from progreid.engine.source import train_source

    root = tmp_path_factory.mktemp("net")
    paths = generate_network(root, num_ids=48, num_cameras=4, seed=0)
    cfg = load_config("train", "quick", overrides=[*SMALL, f"data.source={paths['source']}", "train.epochs=8"])
    train_source(cfg, root / "src", progress=False, log=lambda s: None)
    return paths, root / "src" / "model.safetensors"


def write_image(path: Path, color=(128, 64, 32), size=(64, 128)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    arr = np.clip(np.array(color)[None, None, :] + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    Image.fromarray(arr.astype(np.uint8)).save(path)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never touch the user's image cache."""
    monkeypatch.setenv("PROGREID_CACHE", str(tmp_path_factory.mktemp("cache")))


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for the tests that take one (tests/test_device.py): "
                     "cpu, cuda, cuda:1 ... (benchmarks/gpu_check.sh runs them on cuda)")


@pytest.fixture(scope="session")
def device(request):
    """The device the device tests run on; a CUDA device the machine lacks skips them, saying so."""
    import torch

    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--device {name}: this machine has no CUDA device")
    return torch.device(name)
