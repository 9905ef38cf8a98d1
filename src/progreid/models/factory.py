"""Build an embedding network by name.

Every model maps a float image batch (N, 3, H, W) to features (N, D) and exposes
``feature_dim``. The identity classifier is not part of it: training owns the classifier
(PUL re-creates it every round; TCUL has none).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from progreid.errors import ProgReIDError
from progreid.models.checkpoint import load_weights
from progreid.models.osnet import OSNET_CHANNELS, build_osnet
from progreid.models.resnet import build_resnet

ARCHS = sorted([*OSNET_CHANNELS, "resnet18", "resnet50"])


class EmbeddingHead(nn.Module):
    """Linear-BN-ReLU projection of pooled ResNet features, like OSNet's ``fc`` block."""

    def __init__(self, backbone: nn.Module, dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Linear(backbone.feature_dim, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True))
        self.feature_dim = dim

    def forward(self, x):
        return self.head(self.backbone(x))


def build_model(arch: str, feature_dim: int = 512, last_stride: int = 1, embedding_dim: int = 0) -> nn.Module:
    """``arch`` in :data:`ARCHS`. ResNets take ``last_stride`` and an optional ``embedding_dim`` head."""
    if arch in OSNET_CHANNELS:
        return build_osnet(arch, feature_dim)
    if arch in ("resnet18", "resnet50"):
        net = build_resnet(arch, last_stride)
        return EmbeddingHead(net, embedding_dim) if embedding_dim > 0 else net
    raise ProgReIDError(f"unknown --arch {arch!r}; choose one of {ARCHS}.")


def load_model(arch: str, weights: str | Path | None = None, **kwargs) -> nn.Module:
    """Build ``arch`` (``kwargs`` as :func:`build_model`) and load ``weights`` strictly (classifier rows dropped)."""
    model = build_model(arch, **kwargs)
    if weights:
        load_weights(model, weights, arch)
    return model
