"""Torchreid's weights file: a plain ``state_dict`` with torchreid's key names, named after its arch.

progreid's OSNet and ResNet carry torchreid's (and torchvision's) parameter names, so the state dict
is written as is, without the identity classifier (its classes were pseudo-labels of one run).
Torchreid's ``load_pretrained_weights`` and BoxMOT's ReID backends load such a file, and pick the
network from the file name (``osnet_x0_25_<name>.pt``), as BoxMOT's model factory does.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from progreid.errors import ProgReIDError
from progreid.export.source import ExportSource
from progreid.models.checkpoint import atomic_write
from progreid.models.pooling import pooling_of


def write_torchreid(src: ExportSource, out: str | Path) -> Path:
    """Write ``src``'s weights for torchreid/BoxMOT into the file ``out`` (named by ``export.naming``)."""
    if src.arch.startswith("resnet") and not src.bare_resnet:
        raise ProgReIDError(f"{src.weights}: a ResNet with a BN neck or embedding head has no torchreid "
                            "counterpart (torchreid's resnet builders pool straight to the classifier). "
                            "Fix: export --format onnx or torchscript, which keep the whole network.")
    if pooling_of(src.model.state_dict()) == "gem":
        raise ProgReIDError(f"{src.weights}: was trained with GeM pooling (model.pooling=gem); torchreid's "
                            f"{src.arch} pools by average, so a tracker loading this state dict would compute other "
                            "features. Fix: export --format onnx or torchscript, which keep the whole network.")
    if src.arch.startswith("resnet") and src.last_stride != 2:
        warnings.warn(f"torchreid builds {src.arch} with last_stride=2; this model was trained with last_stride="
                      f"{src.last_stride}: build it with last_stride={src.last_stride} there for identical features.",
                      stacklevel=2)
    out = Path(out)
    state = {k: v.detach().cpu().contiguous() for k, v in src.model.state_dict().items()}
    atomic_write(out, lambda tmp: torch.save(state, tmp))
    return out
