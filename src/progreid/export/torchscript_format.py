"""TorchScript export (a traced module): for C++ or Python deployments that take a whole network but not ONNX.

torch 2.13 warns that ``torch.jit`` is deprecated, so this format is for trackers that still load it (BoxMOT's
``.torchscript`` backend); ONNX is the lasting deployment format."""

from __future__ import annotations

from pathlib import Path

import torch

from progreid.export.source import ExportSource
from progreid.models.checkpoint import atomic_write


def write_torchscript(src: ExportSource, out: str | Path) -> Path:
    out = Path(out)  # named by export.naming: .torchscript, the suffix BoxMOT's backend picker knows
    traced = torch.jit.trace(src.model.eval().cpu(), torch.zeros(2, 3, *src.size))
    atomic_write(out, lambda tmp: traced.save(tmp))
    return out
