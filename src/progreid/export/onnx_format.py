"""ONNX export with a dynamic batch axis, its preprocessing written into the model's metadata and into
the ``<file>.onnx.metadata.json`` sidecar BoxMOT reads (its ``reid/core/artifacts.py``: schema 1,
``model_name``, ``img_size``, ``preprocess`` "resize"), and a check against torch through onnxruntime."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import torch

from progreid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, preprocess
from progreid.errors import ProgReIDError
from progreid.export.source import ExportSource
from progreid.models.checkpoint import atomic_write

INPUT, OUTPUT = "images", "features"


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ProgReIDError(f"ONNX export needs {module}. Fix: pip install 'progreid[export]'.") from None


def metadata(src: ExportSource) -> dict[str, str]:
    h, w = src.size
    return {"producer": "progreid", "arch": src.arch, "input_name": INPUT, "input_size": f"{h}x{w}",
            "input_layout": "NCHW float32 RGB", "input_scale": "1/255",
            "mean": json.dumps(list(IMAGENET_MEAN)), "std": json.dumps(list(IMAGENET_STD)),
            "preprocess": f"resize to {h}x{w} (bilinear), RGB, x/255, (x - mean) / std per channel",
            "output": f"{OUTPUT}: (batch, {src.model.feature_dim}) float32, compare by cosine"}


def sidecar_path(path: str | Path) -> Path:
    """Where BoxMOT looks for an exported model's facts: ``model.onnx`` -> ``model.onnx.metadata.json``."""
    path = Path(path)
    return path.with_name(f"{path.name}.metadata.json")


def sidecar(src: ExportSource) -> dict[str, object]:
    """The same preprocessing facts as the model's metadata, in the keys BoxMOT's sidecar reader uses."""
    h, w = src.size
    return {"schema_version": 1, "producer": "progreid", "model_name": src.arch, "num_classes": 0,
            "preprocess": "resize", "img_size": [h, w], "model_kwargs": {"img_size": [h, w]},
            "input_name": INPUT, "output_name": OUTPUT, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
            "input_layout": "NCHW float32 RGB, x/255 then (x - mean) / std", "feature_dim": src.model.feature_dim}


def write_onnx(src: ExportSource, out: str | Path, opset: int = 17) -> Path:
    onnx = _require("onnx")
    out = Path(out)
    model = src.model.eval().cpu()
    dummy = torch.zeros(2, 3, *src.size)
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}

    def write(tmp: str) -> None:
        torch.onnx.export(model, (dummy,), tmp, input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, **kwargs)
        proto = onnx.load(tmp)
        for key, value in metadata(src).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)

    atomic_write(out, write)
    atomic_write(sidecar_path(out), lambda tmp: Path(tmp).write_text(json.dumps(sidecar(src), indent=2) + "\n"))
    return out


def input_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from the model's input shape (fixed; only the batch axis is dynamic)."""
    ort = _require("onnxruntime")
    try:
        shape = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
        return int(shape[2]), int(shape[3])
    except Exception as exc:
        raise ProgReIDError(f"{path}: not an ONNX image model progreid can run ({exc}). "
                            "Fix: pass a file written by `progreid export --format onnx`.") from None


def onnx_features(path: str | Path, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Features of uint8 (N, H, W, 3) crops through onnxruntime, preprocessed as the metadata says."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = [session.run([OUTPUT], {INPUT: preprocess(images[s:s + batch_size]).contiguous().numpy()})[0]
           for s in range(0, len(images), batch_size)]
    return np.concatenate(out)


def max_difference(src: ExportSource, path: str | Path, images: np.ndarray) -> float:
    """Largest absolute difference between onnxruntime's and torch's features of ``images``."""
    from progreid.engine.extract import extract_features

    ref = extract_features(src.model, images, device="cpu", progress=False)
    return float(np.abs(onnx_features(path, images) - ref).max())
