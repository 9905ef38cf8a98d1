"""Exports round-trip: torchreid files load strictly and give the same features; ONNX agrees with
torch within 1e-4 on real crops, for any batch size; the rank page lists every query."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from progreid import api
from progreid.data.images import image_files, load_images
from progreid.engine.extract import extract_features
from progreid.errors import ProgReIDError
from progreid.models import build_model, load_model, save_weights
from progreid.models.checkpoint import read_state_dict

from conftest import shared_path, write_image


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    model = build_model("osnet_x0_25")
    with torch.no_grad():  # BN statistics other than the init's, so a lost buffer would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "adapted.safetensors"
    save_weights(model, path)
    return path


def crops(tmp_path, n: int = 6):
    folder = tmp_path / "crops"
    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(folder / f"{i}.jpg", tuple(int(v) for v in rng.integers(0, 255, 3)))
    return folder


def test_torchreid_file_loads_strictly_and_gives_the_same_features(weights, tmp_path):
    out = api.export(weights, "torchreid", tmp_path / "out", arch="osnet_x0_25")["path"]
    assert out.name == "osnet_x0_25_adapted.pt"  # the arch in the name: BoxMOT picks the network from it
    state = torch.load(out, map_location="cpu", weights_only=True)  # a plain state dict of tensors
    assert all(isinstance(v, torch.Tensor) for v in state.values()) and not any(k.startswith("classifier") for k in state)
    images = load_images([str(p) for p in image_files(crops(tmp_path))], (256, 128), use_cache=False, progress=False)
    before = extract_features(load_model("osnet_x0_25", weights), images, progress=False)
    after = extract_features(load_model("osnet_x0_25", out), images, progress=False)  # strict key check inside
    np.testing.assert_array_equal(before, after)


def test_the_shipped_torchreid_weights_survive_a_round_trip(tmp_path):
    src = shared_path("weights", "osnet_x0_25_msmt17.pth")
    out = api.export(src, "torchreid", tmp_path / "osnet_x0_25_again.pt", arch="osnet_x0_25")["path"]
    original, again = read_state_dict(src), read_state_dict(out)
    assert set(again) == {k for k in original if not k.startswith("classifier.")}
    assert all(torch.equal(original[k], again[k]) for k in again)


def test_torchreid_export_refuses_what_torchreid_cannot_hold(weights, tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", bn_neck=True)
    path = tmp_path / "neck.safetensors"
    save_weights(model, path)
    from progreid.export.source import load_export_source
    from progreid.export.torchreid_format import write_torchreid

    src = load_export_source(path, "resnet18")  # the neck is read from the keys
    assert not src.bare_resnet
    with pytest.raises(ProgReIDError, match="onnx"):
        write_torchreid(src, tmp_path)
    with pytest.raises(ProgReIDError, match="must contain the architecture"):
        api.export(weights, "torchreid", tmp_path / "mine.pt", arch="osnet_x0_25")
    with pytest.raises(ProgReIDError, match="--arch"):
        api.export(path, "torchreid", tmp_path)


@pytest.mark.parametrize("real", [False, True], ids=["synthetic crops", "market1501-mini crops"])
def test_onnx_agrees_with_torch_for_any_batch(weights, tmp_path, real):
    pytest.importorskip("onnxruntime", reason="onnxruntime (the export extra) is not installed")
    folder = shared_path("market1501-mini", "query") if real else crops(tmp_path)
    done = api.export(weights, "onnx", tmp_path / "out", arch="osnet_x0_25", check_images=folder)
    assert done["max_abs_difference"] <= 1e-4 and "crops of" in done["checked_on"]
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(done["path"])).metadata_props}
    assert meta["input_size"] == "256x128" and meta["arch"] == "osnet_x0_25" and "mean" in meta
    side = json.loads(Path(f"{done['path']}.metadata.json").read_text())  # where BoxMOT reads preprocessing
    assert done["sidecar"] == Path(f"{done['path']}.metadata.json")
    assert side["model_name"] == "osnet_x0_25" and side["img_size"] == [256, 128] and side["preprocess"] == "resize"
    assert side["mean"] == json.loads(meta["mean"]) and side["schema_version"] == 1
    from progreid.export.onnx_format import onnx_features

    images = load_images([str(p) for p in image_files(folder)][:5], (256, 128), use_cache=False, progress=False)
    ref = extract_features(load_model("osnet_x0_25", weights), images, progress=False)
    for batch in (1, 5):  # the batch axis is dynamic
        assert np.abs(onnx_features(done["path"], images, batch_size=batch) - ref).max() <= 1e-4


def test_torchscript_gives_the_same_features(weights, tmp_path):
    path = api.export(weights, "torchscript", tmp_path / "out", arch="osnet_x0_25")["path"]
    x = torch.rand(3, 3, 256, 128)
    with torch.no_grad():
        np.testing.assert_allclose(torch.jit.load(str(path))(x).numpy(),
                                   load_model("osnet_x0_25", weights).eval()(x).numpy(), atol=1e-5)


def test_rank_page_shows_every_query_with_its_top_gallery(weights, tmp_path):
    folder = crops(tmp_path, 5)
    page = api.rank(weights, folder, folder, tmp_path / "rank.html", arch="osnet_x0_25", top=3, progress=False)
    text = page.read_text()
    assert text.count('class="row ranked"') == 5 and text.count("<figure") == 5 * 4
    assert "1: 0.00" in text  # each query finds itself first in a gallery that holds it


# BoxMOT 25's ReID loader, as its source reads (boxmot/reid/core/formats.py, registry.py, base_backend.py):
# the backend is chosen by suffix; the network by the first architecture name found in the file name;
# a ``.pt`` named like a stock model is downloaded or taken from its own cache instead of the file given.
BOXMOT_SUFFIX_BACKEND = {".pt": "pytorch", ".torchscript": "torchscript", ".onnx": "onnx"}
BOXMOT_ARCHS = ("osnet_x0_25", "osnet_x0_5", "osnet_x0_75", "osnet_x1_0", "osnet_ain_x1_0", "osnet_ibn_x1_0",
                "resnet50", "mobilenetv2_x1_0", "lmbn_n", "clip")


def boxmot_would_load(path) -> tuple[str, str]:
    """(backend, architecture) BoxMOT picks for ``path``, or an AssertionError saying why it would not."""
    from progreid.export.naming import is_stock_name

    path = Path(path)
    assert path.suffix in BOXMOT_SUFFIX_BACKEND, f"BoxMOT refuses the suffix {path.suffix}"
    archs = [a for a in BOXMOT_ARCHS if a in path.name]
    assert archs, f"BoxMOT finds no architecture in {path.name}"
    assert not is_stock_name(path), f"BoxMOT would use its own {path.name}"
    if path.suffix == ".onnx":  # the preprocessing BoxMOT reads sits beside the model
        assert Path(f"{path}.metadata.json").is_file()
    return BOXMOT_SUFFIX_BACKEND[path.suffix], max(archs, key=len)


@pytest.mark.parametrize("fmt,backend", [("torchreid", "pytorch"), ("torchscript", "torchscript"), ("onnx", "onnx")])
def test_exports_follow_boxmot_loader_rules(weights, tmp_path, fmt, backend):
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="onnx (the export extra) is not installed")
    done = api.export(weights, fmt, tmp_path / "out", arch="osnet_x0_25")
    assert boxmot_would_load(done["path"]) == (backend, "osnet_x0_25")


@pytest.mark.parametrize("fmt,name,fix", [
    ("torchscript", "osnet_x0_25_mine.pt", "osnet_x0_25_mine.torchscript"),
    ("torchscript", "osnet_x0_25_mine.ts", "osnet_x0_25_mine.torchscript"),
    ("torchreid", "osnet_x0_25_mine.pth", "osnet_x0_25_mine.pt"),
    ("torchreid", "osnet_x0_25_msmt17.pt", "osnet_x0_25_msmt17_adapted.pt"),
    ("onnx", "osnet_x0_25_market1501.onnx", "osnet_x0_25_market1501_adapted.onnx"),
])
def test_names_boxmot_would_misread_are_refused_with_the_name_to_use(weights, tmp_path, fmt, name, fix):
    with pytest.raises(ProgReIDError, match=f"Fix: --out .*{fix}"):
        api.export(weights, fmt, tmp_path / name, arch="osnet_x0_25")
    assert not (tmp_path / name).exists()


def test_a_chosen_name_that_is_a_stock_name_is_renamed_saying_why(tmp_path):
    from progreid.export.naming import export_path

    path, note = export_path("torchreid", tmp_path, "osnet_x0_25", "osnet_x0_25_msmt17")
    assert path.name == "osnet_x0_25_msmt17_adapted.pt" and "stock model" in note
    assert boxmot_would_load(path) == ("pytorch", "osnet_x0_25")


def test_best_estimate_picks_the_finished_round_with_the_highest_label_free_score(tmp_path):
    from progreid.engine.rundir import RunDir
    from progreid.export.source import best_estimate_round

    # label_free_score as written by a run made under the earlier definition (the cycle consistency),
    # which would pick round 3; the score is recomputed from the row's signals (the cross-camera share)
    rows = [{"round": 0, "label_free_cross_camera": 0.9, "label_free_score": 0.9},
            {"round": 1, "label_free_cross_camera": 0.41, "label_free_score": 0.2},
            {"round": 2, "label_free_cross_camera": 0.47, "label_free_score": 0.2},
            {"round": 3, "label_free_cross_camera": 0.45, "label_free_score": 0.3},
            {"round": 4, "label_free_cross_camera": 0.52}]  # round 4 has not finished: not a candidate
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert best_estimate_round(RunDir(tmp_path), last=3) == (2, 0.47)  # round 0 is the original model
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"round": 1}) + "\n")  # one camera: no score
    with pytest.raises(ProgReIDError, match="--round N"):
        best_estimate_round(RunDir(tmp_path), last=1)


def test_a_gem_network_is_not_exported_as_a_torchreid_file_that_would_pool_by_average(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "gem.safetensors"
    save_weights(build_model("osnet_x0_25", pooling="gem"), path)
    with pytest.raises(ProgReIDError, match="GeM.*onnx"):
        api.export(path, "torchreid", tmp_path / "out", arch="osnet_x0_25")
    script = api.export(path, "torchscript", tmp_path / "out", arch="osnet_x0_25")["path"]
    assert script.exists()  # the formats that keep the whole network still work
