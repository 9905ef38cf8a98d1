"""Build an embedding network by name.

Every model maps a float image batch (N, 3, H, W) to features (N, D) and exposes
``feature_dim``. The identity classifier is not part of it: training owns the classifier
(PUL re-creates it every round; TCUL has none).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from progreid.errors import ProgReIDError
from progreid.models.checkpoint import load_weights, read_state_dict
from progreid.models.osnet import OSNET_CHANNELS, build_osnet
from progreid.models.pooling import pooling_of
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


class BNNeck(nn.Module):
    """BatchNorm on pooled ResNet features, bias fixed at 0 (the BNNeck of Luo et al.'s strong
    baseline, which Cluster Contrast keeps): contrastive and metric losses train on features
    normalised per dimension rather than on raw pooled activations."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.neck = nn.BatchNorm1d(backbone.feature_dim)
        self.neck.bias.requires_grad_(False)
        self.feature_dim = backbone.feature_dim

    def forward(self, x):
        return self.neck(self.backbone(x))


def build_model(arch: str, feature_dim: int = 512, last_stride: int = 1, embedding_dim: int = 0,
                bn_neck: bool = False, pooling: str = "avg", gem_p: float = 3.0) -> nn.Module:
    """``arch`` in :data:`ARCHS`. ResNets take ``last_stride``, an optional ``embedding_dim`` head, and
    ``bn_neck`` (a BN on the pooled features; OSNet's ``fc`` block already ends with one); every arch takes
    ``pooling`` (``avg`` or ``gem`` from exponent ``gem_p``: models/pooling.py)."""
    if arch in OSNET_CHANNELS:
        return build_osnet(arch, feature_dim, pooling, gem_p)
    if arch in ("resnet18", "resnet50"):
        net = build_resnet(arch, last_stride, pooling, gem_p)
        if embedding_dim > 0:
            return EmbeddingHead(net, embedding_dim)
        return BNNeck(net) if bn_neck else net
    raise ProgReIDError(f"unknown --arch {arch!r}; choose one of {ARCHS}.")


def load_model(arch: str, weights: str | Path | None = None, **kwargs) -> nn.Module:
    """Build ``arch`` (``kwargs`` as :func:`build_model`) and load ``weights`` strictly (classifier rows dropped).

    Without a ``pooling`` argument the network pools as ``weights`` were trained to (GeM if they hold its
    exponent), so an adapted checkpoint evaluates, extracts and exports as it was trained."""
    state = read_state_dict(weights) if weights else None
    if kwargs.get("pooling") is None:
        kwargs["pooling"] = pooling_of(state) if state is not None else "avg"
    model = build_model(arch, **kwargs)
    if weights:
        load_weights(model, weights, arch, state)
    return model
