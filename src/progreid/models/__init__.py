"""Backbones (OSNet with torchreid keys, ResNet with torchvision keys) and checkpoint I/O."""

from progreid.models.checkpoint import load_weights, save_weights
from progreid.models.factory import ARCHS, build_model, load_model

__all__ = ["ARCHS", "build_model", "load_model", "load_weights", "save_weights"]
